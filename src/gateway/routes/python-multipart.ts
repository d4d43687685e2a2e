/**
 * The multipart upload of Python's fal_client (files over 100 MiB), authenticated by the token from
 * `storage/auth/token`:
 *
 *   POST {base}/files/upload/multipart          (X-Fal-File-Name, Content-Type) → {access_url, uploadId}
 *   PUT  {access_url}/multipart/{uploadId}/{n}  part bytes → ETag header
 *   POST {access_url}/multipart/{uploadId}/complete  {parts: [{partNumber, etag}]}
 *
 * The client builds the part and completion URLs from `access_url` alone, so they carry the object
 * key in their path. The upload id is therefore a signed ticket for that key and the upload's
 * metadata: a token holder can only write parts of an upload the server started, under the key it
 * chose, never over another object. The ticket also names the API key the upload is charged to
 * (its storage quota, src/storage/storage-quota.ts); its parts together are held to the file limit.
 * @module
 */
import { randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { PlatformError } from "../../core/errors.js";
import { partEntryId } from "../../storage/storage-quota.js";
import { multipartOf } from "../../storage/storage.js";
import type { GatewayContext } from "../context.js";
import { uploadTtlOf } from "../fal-headers.js";
import { MultipartCompleteBody } from "../multipart-parts.js";
import { takeRawBodies } from "../raw-bodies.js";
import { uploadKey } from "../upload-keys.js";
import { closingOnQuota, stagedPartEntry, storageQuotaOf } from "../upload-quota.js";
import { baseUrlOf, filesBaseOf } from "../wire.js";

/** A multipart upload may take long over a slow link; its ticket stays valid for a day. */
const TICKET_TTL_SECONDS = 24 * 3600;

/** `kid`: the API key the upload is charged to (its storage quota); tickets from before it was added have none. */
const TicketMeta = z.object({ ct: z.string(), name: z.string(), ttl: z.number().int().positive().optional(), n: z.string(), kid: z.string().optional() });
type TicketMeta = z.infer<typeof TicketMeta>;

/** `{key}/multipart/{uploadId}/{part | "complete"}` out of the wildcard of `/files/*`. */
const MULTIPART_PATH = /^(.+)\/multipart\/([A-Za-z0-9_-]+\.[0-9]+\.[A-Za-z0-9_-]+)\/([0-9]+|complete)$/;

function issueTicket(ctx: GatewayContext, key: string, meta: TicketMeta): string {
  const encoded = Buffer.from(JSON.stringify(meta)).toString("base64url");
  const signed = new URLSearchParams(ctx.urlSigner.sign("PUT", `py-multipart:${key}?${encoded}`, Math.floor(Date.now() / 1000) + TICKET_TTL_SECONDS));
  return `${encoded}.${signed.get("expires") ?? ""}.${signed.get("sig") ?? ""}`;
}

function readTicket(ctx: GatewayContext, key: string, uploadId: string): TicketMeta {
  const [encoded = "", expires = "", sig = ""] = uploadId.split(".");
  ctx.urlSigner.verify("PUT", `py-multipart:${key}?${encoded}`, { expires, sig });
  return TicketMeta.parse(JSON.parse(Buffer.from(encoded, "base64url").toString("utf8")));
}

/** The ticket is too long for a storage upload id; its random part identifies the upload. */
function storageUploadId(meta: TicketMeta): string {
  return `py-${meta.n}`;
}

function parsePath(request: FastifyRequest): { key: string; uploadId: string; last: string } | null {
  const match = MULTIPART_PATH.exec((request.params as { "*": string })["*"]);
  if (!match) return null;
  const [, key = "", uploadId = "", last = ""] = match;
  return { key, uploadId, last };
}

function requireToken(request: FastifyRequest): string {
  if (!request.principal) throw new PlatformError("ERR_UNAUTHORIZED");
  return request.principal.keyId;
}

/**
 * The start and the parts take raw bodies, in a scope of their own without body parsers; the
 * completion takes JSON, where the JSON parser is.
 */
export function registerPythonMultipartRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  registerCompleteRoute(app, ctx);
  app.register(async (uploads) => {
    takeRawBodies(uploads);
    registerUploadRoutes(uploads, ctx);
  });
}

function registerUploadRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.post("/files/upload/multipart", async (request, reply) => {
    const keyId = requireToken(request);
    const contentType = String(request.headers["content-type"] ?? "application/octet-stream").split(";")[0]?.trim() || "application/octet-stream";
    const nameHeader = request.headers["x-fal-file-name"];
    const { key, fileName } = uploadKey(Array.isArray(nameHeader) ? nameHeader[0] : nameHeader, contentType);
    const ttl = uploadTtlOf(request);
    // The random part makes every ticket distinct, also for two uploads of one name.
    const uploadId = issueTicket(ctx, key, { ct: contentType, name: fileName, n: randomBytes(9).toString("base64url"), ...(ttl ? { ttl } : {}), kid: keyId });
    // The client PUTs its parts under this URL, so it stays on the API's origin even with
    // --files-url (that origin takes no uploads); reading it there redirects to the files origin.
    await reply.send({ access_url: `${baseUrlOf(request, ctx.config.publicUrl)}/files/${key}`, uploadId });
  });

  const quota = storageQuotaOf(ctx);
  app.put("/files/*", async (request, reply) => {
    const target = parsePath(request);
    if (!target || target.last === "complete") throw new PlatformError("ERR_PATH_NOT_FOUND");
    const keyId = requireToken(request);
    const meta = readTicket(ctx, target.key, target.uploadId);
    const n = Number(target.last);
    if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new PlatformError("ERR_BAD_REQUEST", { message: "partNumber must be 1..10000" });
    const announced = request.headers["content-length"] === undefined ? null : Number(request.headers["content-length"]);
    if (announced !== null && announced > ctx.config.limits.maxFileBytes) {
      throw new PlatformError("ERR_FILE_TOO_LARGE", { message: `Uploads are limited to ${ctx.config.limits.maxFileBytes} bytes` });
    }
    const maxBytes = ctx.config.limits.maxFileBytes;
    const uploadId = storageUploadId(meta);
    // maxBytes caps the upload's staged parts together (the driver counts them), not each part.
    const part = await closingOnQuota(request, reply, () =>
      quota.charge(
        meta.kid ?? keyId,
        { announced, maxBytes, replaces: partEntryId(uploadId, n) },
        (limit) => multipartOf(ctx.storage).putPart(target.key, uploadId, n, limit(request.raw), maxBytes),
        (stored) => stagedPartEntry(uploadId, n, stored.size),
      ),
    );
    await reply.header("etag", part.etag).send({ partNumber: n, etag: part.etag });
  });
}

function registerCompleteRoute(app: FastifyInstance, ctx: GatewayContext): void {
  app.post("/files/*", async (request, reply) => {
    const target = parsePath(request);
    if (!target || target.last !== "complete") throw new PlatformError("ERR_PATH_NOT_FOUND");
    const keyId = requireToken(request);
    const meta = readTicket(ctx, target.key, target.uploadId);
    const parsed = MultipartCompleteBody.safeParse(request.body);
    if (!parsed.success) throw new PlatformError("ERR_BAD_REQUEST", { message: "Expected {parts: [{partNumber, etag}]}" });
    const stored = await multipartOf(ctx.storage).completeMultipart(target.key, storageUploadId(meta), parsed.data.parts, {
      contentType: meta.ct,
      fileName: meta.name,
      maxBytes: ctx.config.limits.maxFileBytes,
      ...(meta.ttl ? { expiresInSeconds: meta.ttl } : {}),
    });
    // The parts were charged as they came; the file takes their place.
    await storageQuotaOf(ctx).record(meta.kid ?? keyId, { id: stored.key, bytes: stored.size, uploadId: null, expiresAt: stored.expiresAt }, storageUploadId(meta));
    await reply.send({ access_url: `${filesBaseOf(request, ctx.config)}/files/${stored.key}`, file_size: stored.size });
  });
}
