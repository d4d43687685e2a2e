/**
 * `/files/`: serves stored files (with ranges) and takes uploads through pre-signed, expiring URLs
 * (single PUT and multipart), plus the token-authenticated upload Python's fal_client uses.
 * Request bodies stream into storage; nothing is held whole in memory.
 * @module
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { PlatformError } from "../../core/errors.js";
import type { ByteRange } from "../../storage/storage.js";
import type { GatewayContext } from "../context.js";
import { fileResponseHeaders } from "../file-response-headers.js";
import { SingleUseUploads } from "../single-use-uploads.js";
import { baseUrlOf } from "../wire.js";
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

function assertSizeAllowed(ctx: GatewayContext, request: FastifyRequest): void {
  const length = contentLength(request);
  // Refuse before reading a byte when the client announces too much.
  if (length !== null && length > ctx.config.limits.maxFileBytes) {
    throw new PlatformError("ERR_FILE_TOO_LARGE", { message: `Uploads are limited to ${ctx.config.limits.maxFileBytes} bytes` });
  }
}

export async function serveFile(ctx: GatewayContext, request: FastifyRequest, reply: FastifyReply, key: string): Promise<void> {
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
    ctx.urlSigner.verify("PUT", `multipart:${uploadId}?${signedMeta(query, ["ct", "name", "ttl", "key"])}`, query);
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
    await reply.send({ file_url: `${baseUrlOf(request, ctx.config.publicUrl)}/files/${stored.key}`, file_size: stored.size });
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

function registerUploadRoutes(app: FastifyInstance, ctx: GatewayContext, once: SingleUseUploads): void {
  // Single upload to the URL from `storage/upload/initiate`: the signature is the authorisation.
  app.put("/files/upload/*", { config: { anonymousBody: true } }, async (request, reply) => {
    const key = (request.params as { "*": string })["*"];
    const query = request.query as Record<string, string | undefined>;
    ctx.urlSigner.verify("PUT", `${key}?${signedMeta(query, ["ct", "name", "ttl"])}`, query);
    assertSizeAllowed(ctx, request);
    const ttl = query["ttl"] ? Number(query["ttl"]) : undefined;
    const release = await once.claim(key);
    const stored = await ctx.storage
      .put(key, request.raw, {
        // The type was signed with the URL: a PUT may not swap it (say, image/png for text/html).
        contentType: query["ct"] ?? contentTypeOf(request),
        fileName: query["name"] ?? "upload.bin",
        maxBytes: ctx.config.limits.maxFileBytes,
        ...(ttl ? { expiresInSeconds: ttl } : {}),
      })
      .finally(release);
    await reply.send({ file_url: `${baseUrlOf(request, ctx.config.publicUrl)}/files/${stored.key}`, file_size: stored.size });
  });

  app.put("/files/multipart/:uploadId/:partNumber", { config: { anonymousBody: true } }, async (request, reply) => {
    const { uploadId, partNumber } = request.params as { uploadId: string; partNumber: string };
    const query = request.query as Record<string, string | undefined>;
    ctx.urlSigner.verify("PUT", `multipart:${uploadId}?${signedMeta(query, ["ct", "name", "ttl", "key"])}`, query);
    const n = Number(partNumber);
    if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new PlatformError("ERR_BAD_REQUEST", { message: "partNumber must be 1..10000" });
    assertSizeAllowed(ctx, request);
    await once.assertUnused(query["key"] ?? "");
    const part = await ctx.storage.putPart(query["key"] ?? "", uploadId, n, request.raw, ctx.config.limits.maxFileBytes);
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
    await ctx.storage.put(key, request.raw, { contentType, fileName, maxBytes: ctx.config.limits.maxFileBytes, ...(ttl ? { expiresInSeconds: ttl } : {}) });
    await reply.send({ access_url: `${baseUrlOf(request, ctx.config.publicUrl)}/files/${key}` });
  };
  app.post("/files/upload", tokenUpload);
  app.post("/cdn/files/upload", tokenUpload);
}
