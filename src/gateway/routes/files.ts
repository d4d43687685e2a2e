/**
 * `/files/`: serves stored files (with ranges) and takes uploads through pre-signed, expiring URLs
 * (single PUT and multipart), plus the token-authenticated upload Python's fal_client uses.
 * Request bodies stream into storage; nothing is held whole in memory. Every upload is charged to an
 * API key's storage quota (the key its upload URL was signed for, or its token's key), see
 * src/storage/storage-quota.ts; a multipart upload's staged parts together are held to the file limit.
 * @module
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { PlatformError } from "../../core/errors.js";
import { partEntryId } from "../../storage/storage-quota.js";
import { multipartOf } from "../../storage/storage.js";
import type { GatewayContext } from "../context.js";
import { uploadTtlOf } from "../fal-headers.js";
import { MultipartCompleteBody } from "../multipart-parts.js";
import { takeRawBodies } from "../raw-bodies.js";
import { serveFile } from "../serve-file.js";
import { SingleUseUploads } from "../single-use-uploads.js";
import { uploadKey } from "../upload-keys.js";
import { closingOnQuota, stagedPartEntry, storageQuotaOf } from "../upload-quota.js";
import { filesBaseOf } from "../wire.js";

function signedMeta(query: Record<string, string | undefined>, keys: readonly string[]): string {
  const meta = new URLSearchParams();
  for (const k of keys) {
    const v = query[k];
    if (v !== undefined) meta.set(k, v);
  }
  return meta.toString();
}

function contentLength(request: FastifyRequest): number | null {
  const raw = request.headers["content-length"];
  return raw === undefined ? null : Number(raw);
}

function assertSizeAllowed(ctx: GatewayContext, request: FastifyRequest): void {
  const length = contentLength(request);
  // Refuse before reading a byte when the client announces too much.
  if (length !== null && length > ctx.config.limits.maxFileBytes) {
    throw new PlatformError("ERR_FILE_TOO_LARGE", { message: `Uploads are limited to ${ctx.config.limits.maxFileBytes} bytes` });
  }
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
    const stored = await multipartOf(ctx.storage)
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

  // Upload bodies of any content type (JSON files too) must reach storage unparsed.
  app.register(async (uploads) => {
    takeRawBodies(uploads);
    registerUploadRoutes(uploads, ctx, once);
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
        (limit) => multipartOf(ctx.storage).putPart(query["key"] ?? "", uploadId, n, limit(request.raw), maxBytes),
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
    const ttl = uploadTtlOf(request);
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
