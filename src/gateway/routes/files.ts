/**
 * `/files/`: serves stored files (with ranges) and takes uploads through pre-signed, expiring URLs
 * (single PUT and multipart), plus the token-authenticated upload Python's fal_client uses.
 * Request bodies stream into storage; nothing is held whole in memory. Every upload is charged to an
 * API key's storage quota (the key its upload URL was signed for, or its token's key), see
 * src/storage/storage-quota.ts; a multipart upload's staged parts together are held to the file limit.
 * @module
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { PlatformError, isPlatformError } from "../../core/errors.js";
import { isSpilledInputKey } from "../../storage/spilled-inputs.js";
import { STAGED_PART_TTL_MS, createStorageQuota, partEntryId, type StorageQuota } from "../../storage/storage-quota.js";
import type { ByteRange } from "../../storage/storage.js";
import type { GatewayContext } from "../context.js";
import { fileResponseHeaders } from "../file-response-headers.js";
import { closeAfterReply } from "../lingering-close.js";
import { SingleUseUploads } from "../single-use-uploads.js";
import { filesBaseOf } from "../wire.js";
import { MultipartCompleteBody } from "./multipart-parts.js";
import { registerPythonMultipartCompleteRoute, registerPythonMultipartUploadRoutes } from "./python-multipart.js";
import { lifecycleSeconds, uploadKey } from "./rest.js";

function signedMeta(query: Record<string, string | undefined>, keys: readonly string[]): string {
  const meta = new URLSearchParams();
  for (const k of keys) {
    const v = query[k];
    if (v !== undefined) meta.set(k, v);
  }
  return meta.toString();
}

/** Parses a single `bytes=` range against the object size (multi-range is not supported). */
export function parseRange(header: string, size: number): ByteRange | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return null;
  const [, a = "", b = ""] = m;
  if (a === "" && b === "") return null;
  let start: number;
  let end: number;
  if (a === "") {
    const suffix = Number(b);
    if (suffix === 0) throw new PlatformError("ERR_RANGE_NOT_SATISFIABLE");
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
  }
  if (start >= size || start > end) throw new PlatformError("ERR_RANGE_NOT_SATISFIABLE", { headers: { "content-range": `bytes */${size}` } });
  return { start, end };
}

function contentLength(request: FastifyRequest): number | null {
  const raw = request.headers["content-length"];
  return raw === undefined ? null : Number(raw);
}

const quotas = new WeakMap<GatewayContext, StorageQuota>();

/** The gateway's storage quota (storage-quota.ts): what each key keeps in storage, charged per upload. */
export function storageQuotaOf(ctx: GatewayContext): StorageQuota {
  let quota = quotas.get(ctx);
  if (!quota) {
    quota = createStorageQuota({ store: ctx.store, quotaBytes: ctx.config.limits.storageQuotaBytes ?? 0 });
    quotas.set(ctx, quota);
  }
  return quota;
}

/**
 * Runs an upload handler; a quota refusal of a body not read to its end closes the connection after
 * the answer, lingering so that the client reads it (as the gateway does for ERR_FILE_TOO_LARGE).
 */
export async function closingOnQuota<T>(request: FastifyRequest, reply: FastifyReply, handler: () => Promise<T>): Promise<T> {
  try {
    return await handler();
  } catch (err) {
    if (isPlatformError(err) && err.code === "ERR_STORAGE_QUOTA" && !request.raw.readableEnded) closeAfterReply(reply);
    throw err;
  }
}

/** A staged part as the quota records it: it counts until its upload completes or is idle for a day. */
export function stagedPartEntry(uploadId: string, partNumber: number, size: number): { id: string; bytes: number; uploadId: string; expiresAt: number } {
  return { id: partEntryId(uploadId, partNumber), bytes: size, uploadId, expiresAt: Date.now() + STAGED_PART_TTL_MS };
}

function assertSizeAllowed(ctx: GatewayContext, request: FastifyRequest): void {
  const length = contentLength(request);
  // Refuse before reading a byte when the client announces too much.
  if (length !== null && length > ctx.config.limits.maxFileBytes) {
    throw new PlatformError("ERR_FILE_TOO_LARGE", { message: `Uploads are limited to ${ctx.config.limits.maxFileBytes} bytes` });
  }
}

export async function serveFile(ctx: GatewayContext, request: FastifyRequest, reply: FastifyReply, key: string): Promise<void> {
  // Requests' large inputs kept in storage (spilled-inputs.ts) are never served: only their requests' runners get them.
  if (isSpilledInputKey(key)) throw new PlatformError("ERR_FILE_NOT_FOUND");
  const meta = await ctx.storage.head(key);
  if (!meta) throw new PlatformError("ERR_FILE_NOT_FOUND");
  const rangeHeader = request.headers.range;
  const range = rangeHeader ? parseRange(rangeHeader, meta.size) : null;
  const object = await ctx.storage.get(key, range ?? undefined);
  if (!object) throw new PlatformError("ERR_FILE_NOT_FOUND");
  reply.headers(fileResponseHeaders(meta.contentType, meta.fileName)).header("accept-ranges", "bytes").header("cache-control", "private, max-age=3600");
  if (range) {
    reply.code(206).header("content-range", `bytes ${range.start}-${range.end}/${meta.size}`).header("content-length", String(range.end - range.start + 1));
  } else {
    reply.header("content-length", String(meta.size));
  }
  if (request.method === "HEAD") {
    object.body.destroy();
    await reply.send();
    return;
  }
  await reply.send(object.body);
}



function contentTypeOf(request: FastifyRequest): string {
  return String(request.headers["content-type"] ?? "application/octet-stream").split(";")[0]?.trim() || "application/octet-stream";
}

export function registerFileRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const once = new SingleUseUploads(ctx.storage);
  app.route({
    method: ["GET", "HEAD"],
    url: "/files/*",
    handler: async (request, reply) => {
      const key = (request.params as { "*": string })["*"];
      await serveFile(ctx, request, reply, key);
    },
  });

  const verifyMultipart = (request: FastifyRequest): void => {
    const { uploadId } = request.params as { uploadId: string };
    const query = request.query as Record<string, string | undefined>;
    ctx.urlSigner.verify("PUT", `multipart:${uploadId}?${signedMeta(query, MULTIPART_SIGNED)}`, query);
  };
  // The signature is the authorisation: checked before the JSON body is read, not after.
  app.post("/files/multipart/:uploadId/complete", { config: { anonymousBody: true }, onRequest: async (request) => verifyMultipart(request) }, async (request, reply) => {
    const { uploadId } = request.params as { uploadId: string };
    const query = request.query as Record<string, string | undefined>;
    const parsed = MultipartCompleteBody.safeParse(request.body);
    if (!parsed.success) throw new PlatformError("ERR_BAD_REQUEST", { message: "Expected {parts: [{partNumber, etag}]}" });
    const ttl = query["ttl"] ? Number(query["ttl"]) : undefined;
    const release = await once.claim(query["key"] ?? "");
    const stored = await ctx.storage
      .completeMultipart(query["key"] ?? "", uploadId, parsed.data.parts, {
        contentType: query["ct"] ?? "application/octet-stream",
        fileName: query["name"] ?? "upload.bin",
        maxBytes: ctx.config.limits.maxFileBytes,
        ...(ttl ? { expiresInSeconds: ttl } : {}),
      })
      .finally(release);
    // The parts were charged as they came; the file takes their place.
    await storageQuotaOf(ctx).record(query["kid"] ?? null, { id: stored.key, bytes: stored.size, uploadId: null, expiresAt: stored.expiresAt }, uploadId);
    await reply.send({ file_url: `${filesBaseOf(request, ctx.config)}/files/${stored.key}`, file_size: stored.size });
  });

  registerPythonMultipartCompleteRoute(app, ctx);

  // Upload bodies of any content type (JSON files too) must reach storage unparsed.
  app.register(async (uploads) => {
    uploads.removeAllContentTypeParsers();
    uploads.addContentTypeParser("*", (_request, _payload, done) => done(null, undefined));
    registerUploadRoutes(uploads, ctx, once);
    registerPythonMultipartUploadRoutes(uploads, ctx);
  });
}

/**
 * The parameters an upload URL signs (rest.ts builds them in this order): content type, file name,
 * expiry, the object key of a multipart upload, and `kid`, the API key the upload is charged to.
 */
const SINGLE_SIGNED = ["ct", "name", "ttl", "kid"] as const;
const MULTIPART_SIGNED = ["ct", "name", "ttl", "key", "kid"] as const;

function registerUploadRoutes(app: FastifyInstance, ctx: GatewayContext, once: SingleUseUploads): void {
  const quota = storageQuotaOf(ctx);
  // Single upload to the URL from `storage/upload/initiate`: the signature is the authorisation.
  app.put("/files/upload/*", { config: { anonymousBody: true } }, async (request, reply) => {
    const key = (request.params as { "*": string })["*"];
    const query = request.query as Record<string, string | undefined>;
    ctx.urlSigner.verify("PUT", `${key}?${signedMeta(query, SINGLE_SIGNED)}`, query);
    assertSizeAllowed(ctx, request);
    const ttl = query["ttl"] ? Number(query["ttl"]) : undefined;
    const release = await once.claim(key);
    const maxBytes = ctx.config.limits.maxFileBytes;
    const stored = await closingOnQuota(request, reply, () =>
      quota.charge(
        query["kid"] ?? null,
        { announced: contentLength(request), maxBytes },
        (limit) =>
          ctx.storage.put(key, limit(request.raw), {
            // The type was signed with the URL: a PUT may not swap it (say, image/png for text/html).
            contentType: query["ct"] ?? contentTypeOf(request),
            fileName: query["name"] ?? "upload.bin",
            maxBytes,
            ...(ttl ? { expiresInSeconds: ttl } : {}),
          }),
        (meta) => ({ id: meta.key, bytes: meta.size, uploadId: null, expiresAt: meta.expiresAt }),
        (meta) => ctx.storage.delete(meta.key),
      ),
    ).finally(release);
    await reply.send({ file_url: `${filesBaseOf(request, ctx.config)}/files/${stored.key}`, file_size: stored.size });
  });

  app.put("/files/multipart/:uploadId/:partNumber", { config: { anonymousBody: true } }, async (request, reply) => {
    const { uploadId, partNumber } = request.params as { uploadId: string; partNumber: string };
    const query = request.query as Record<string, string | undefined>;
    ctx.urlSigner.verify("PUT", `multipart:${uploadId}?${signedMeta(query, MULTIPART_SIGNED)}`, query);
    const n = Number(partNumber);
    if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new PlatformError("ERR_BAD_REQUEST", { message: "partNumber must be 1..10000" });
    assertSizeAllowed(ctx, request);
    await once.assertUnused(query["key"] ?? "");
    const maxBytes = ctx.config.limits.maxFileBytes;
    // maxBytes caps the upload's staged parts together (the driver counts them), not each part.
    const part = await closingOnQuota(request, reply, () =>
      quota.charge(
        query["kid"] ?? null,
        { announced: contentLength(request), maxBytes, replaces: partEntryId(uploadId, n) },
        (limit) => ctx.storage.putPart(query["key"] ?? "", uploadId, n, limit(request.raw), maxBytes),
        (stored) => stagedPartEntry(uploadId, n, stored.size),
      ),
    );
    await reply.header("etag", part.etag).send({ partNumber: n, etag: part.etag });
  });

  // Python fal_client: POST {CDN_URL}/files/upload with the token from storage/auth/token.
  const tokenUpload = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!request.principal) throw new PlatformError("ERR_UNAUTHORIZED");
    assertSizeAllowed(ctx, request);
    const contentType = contentTypeOf(request);
    const nameHeader = request.headers["x-fal-file-name"];
    const { key, fileName } = uploadKey(Array.isArray(nameHeader) ? nameHeader[0] : nameHeader, contentType);
    const ttl = lifecycleSeconds(request.headers["x-fal-object-lifecycle"] ?? request.headers["x-fal-object-lifecycle-preference"]);
    const maxBytes = ctx.config.limits.maxFileBytes;
    await closingOnQuota(request, reply, () =>
      quota.charge(
        request.principal?.keyId ?? null,
        { announced: contentLength(request), maxBytes },
        (limit) => ctx.storage.put(key, limit(request.raw), { contentType, fileName, maxBytes, ...(ttl ? { expiresInSeconds: ttl } : {}) }),
        (meta) => ({ id: meta.key, bytes: meta.size, uploadId: null, expiresAt: meta.expiresAt }),
        (meta) => ctx.storage.delete(meta.key),
      ),
    );
    await reply.send({ access_url: `${filesBaseOf(request, ctx.config)}/files/${key}` });
  };
  app.post("/files/upload", tokenUpload);
  app.post("/cdn/files/upload", tokenUpload);
}
