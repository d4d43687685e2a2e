/**
 * fal's REST host (`rest.fal.ai`): short-lived tokens and storage upload initiation.
 * @module
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { PlatformError } from "../../core/errors.js";
import { UnparsedInput } from "../../core/unparsed-input.js";
import { requirePrincipal, type GatewayContext, type Principal } from "../context.js";
import type { FalCall } from "../fal-call.js";
import { FalHost } from "../fal-host.js";
import { uploadTtlOf } from "../fal-headers.js";
import { uploadKey } from "../upload-keys.js";
import { baseUrlOf, filesBaseOf } from "../wire.js";

/** How long an upload URL stays valid. */
export const UPLOAD_URL_TTL_SECONDS = 3600;

const TokenRequest = z.object({
  allowed_apps: z.array(z.string().min(1).max(200)).max(50).default([]),
  token_expiration: z.number().positive().max(86_400).optional(),
});

const InitiateRequest = z.object({
  content_type: z.string().max(200).default("application/octet-stream"),
  file_name: z.string().max(255).optional(),
});

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  // Through the proxy a large body is kept for an app call (json-body.ts); rest.fal.ai takes small ones only.
  if (body instanceof UnparsedInput) throw new PlatformError("ERR_BODY_TOO_LARGE", { message: "This call takes a small JSON body" });
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) {
    throw new PlatformError("ERR_VALIDATION", {
      fieldErrors: parsed.error.issues.map((i) => ({ loc: ["body", ...i.path.map(String)], msg: i.message, type: i.code })),
    });
  }
  return parsed.data;
}

/** A token can be handed to less trusted code (a browser, a Python upload): were it able to mint
 * tokens, it could give itself more apps and a longer life than it was issued with. */
function requireKeyCaller(call: FalCall): Principal {
  const principal = requirePrincipal(call.request);
  if (principal.allowedApps !== null) throw new PlatformError("ERR_FORBIDDEN", { message: "Tokens are issued for an API key, not for another token" });
  return principal;
}

async function issueToken(ctx: GatewayContext, call: FalCall): Promise<void> {
  const principal = requireKeyCaller(call);
  const body = parseBody(TokenRequest, call.request.body);
  const issued = ctx.tokens.issue({
    keyId: principal.keyId,
    scope: principal.scope,
    allowedApps: body.allowed_apps,
    ...(body.token_expiration !== undefined ? { ttlSec: body.token_expiration } : {}),
  });
  // fal answers with the bare token as a JSON string.
  await call.reply.code(201).type("application/json").send(JSON.stringify(issued.token));
}

/** Python's fal_client uploads to `{CDN}/files/upload` with this token. */
async function issueStorageToken(ctx: GatewayContext, call: FalCall): Promise<void> {
  const principal = requireKeyCaller(call);
  const issued = ctx.tokens.issue({ keyId: principal.keyId, scope: principal.scope, allowedApps: [], ttlSec: UPLOAD_URL_TTL_SECONDS });
  await call.reply.send({
    token: issued.token,
    token_type: "Bearer",
    base_url: baseUrlOf(call.request, ctx.config.publicUrl),
    expires_at: new Date(issued.claims.exp * 1000).toISOString(),
  });
}

/**
 * A signed upload URL: one PUT of the whole file, or (`multipart`) parts put one by one. Uploads go to
 * the API's origin; the files they make are read from the files origin, if any.
 */
async function initiateUpload(ctx: GatewayContext, call: FalCall, multipart: boolean): Promise<void> {
  const { request, reply } = call;
  const principal = requirePrincipal(request);
  const body = parseBody(InitiateRequest, request.body);
  const base = baseUrlOf(request, ctx.config.publicUrl);
  const filesBase = filesBaseOf(request, ctx.config);
  const expiresAt = Math.floor(Date.now() / 1000) + UPLOAD_URL_TTL_SECONDS;
  const { key, fileName } = uploadKey(body.file_name, body.content_type);
  const ttl = uploadTtlOf(request);
  const meta = new URLSearchParams({ ct: body.content_type, name: fileName, ...(ttl ? { ttl: String(ttl) } : {}) });
  // `kid` signs the key the upload is charged to (its storage quota); the order of the parameters
  // is the order files.ts verifies them in.
  if (!multipart) {
    meta.set("kid", principal.keyId);
    const sig = ctx.urlSigner.sign("PUT", `${key}?${meta.toString()}`, expiresAt);
    await reply.send({ upload_url: `${base}/files/upload/${key}?${meta.toString()}&${sig}`, file_url: `${filesBase}/files/${key}` });
    return;
  }
  const uploadId = randomUUID();
  meta.set("key", key);
  meta.set("kid", principal.keyId);
  const sig = ctx.urlSigner.sign("PUT", `multipart:${uploadId}?${meta.toString()}`, expiresAt);
  await reply.send({ upload_url: `${base}/files/multipart/${uploadId}?${meta.toString()}&${sig}`, file_url: `${filesBase}/files/${key}` });
}

/** fal's REST host: tokens for browsers and uploads, and signed upload URLs. */
export const restHost = new FalHost({
  hostnames: ["rest.fal.ai", "rest.alpha.fal.ai"],
  prefix: "rest",
  routes: [
    { method: "POST", path: "/tokens", handler: issueToken },
    { method: "POST", path: "/storage/auth/token", handler: issueStorageToken },
    { method: "POST", path: "/storage/upload/initiate", handler: (ctx, call) => initiateUpload(ctx, call, false) },
    { method: "POST", path: "/storage/upload/initiate-multipart", handler: (ctx, call) => initiateUpload(ctx, call, true) },
  ],
});
