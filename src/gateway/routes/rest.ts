/**
 * fal's REST host (`rest.fal.ai`): short-lived tokens and storage upload initiation.
 * @module
 */
import { randomBytes, randomUUID } from "node:crypto";
import { z } from "zod";
import { PlatformError } from "../../core/errors.js";
import { requirePrincipal, type GatewayContext } from "../context.js";
import { baseUrlOf, filesBaseOf } from "../wire.js";
import type { FalCall } from "./queue.js";

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

const LifecycleHeader = z.object({ expiration_duration_seconds: z.number().int().positive().optional() }).passthrough();

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) {
    throw new PlatformError("ERR_VALIDATION", {
      fieldErrors: parsed.error.issues.map((i) => ({ loc: ["body", ...i.path.map(String)], msg: i.message, type: i.code })),
    });
  }
  return parsed.data;
}

const EXTENSION_BY_TYPE: Record<string, string> = {
  "image/png": "png",
  "image/jpeg": "jpg",
  "image/webp": "webp",
  "audio/wav": "wav",
  "audio/x-wav": "wav",
  "audio/mpeg": "mp3",
  "video/mp4": "mp4",
};

/** A storage key for a new upload: unguessable, with a sanitised file name for downloads. */
export function uploadKey(fileName: string | undefined, contentType: string): { key: string; fileName: string } {
  const fallback = `upload.${EXTENSION_BY_TYPE[contentType] ?? "bin"}`;
  const clean = (fileName ?? "").replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "").slice(0, 120) || fallback;
  return { key: `uploads/${randomBytes(12).toString("base64url")}/${clean}`, fileName: clean };
}

/** Seconds until expiry from fal's `X-Fal-Object-Lifecycle(-Preference)` header, if sent. */
export function lifecycleSeconds(headerValue: string | string[] | undefined): number | undefined {
  const raw = Array.isArray(headerValue) ? headerValue[0] : headerValue;
  if (!raw) return undefined;
  try {
    return LifecycleHeader.parse(JSON.parse(raw)).expiration_duration_seconds;
  } catch {
    throw new PlatformError("ERR_BAD_REQUEST", { message: "X-Fal-Object-Lifecycle must be JSON like {\"expiration_duration_seconds\": 3600}" });
  }
}

export async function handleRestCall(ctx: GatewayContext, call: FalCall): Promise<void> {
  const { request, reply } = call;
  const principal = requirePrincipal(request);
  const method = call.method.toUpperCase();
  const path = call.segments.join("/");
  const base = baseUrlOf(request, ctx.config.publicUrl);
  // Uploads go to the API's origin; the files they make are read from the files origin, if any.
  const filesBase = filesBaseOf(request, ctx.config);
  const expiresAt = Math.floor(Date.now() / 1000) + UPLOAD_URL_TTL_SECONDS;

  if (method === "POST" && (path === "tokens" || path === "storage/auth/token") && principal.allowedApps !== null) {
    // A token is handed to less trusted code (a browser, a Python upload): were it able to mint
    // tokens, it could give itself more apps and a longer life than it was issued with.
    throw new PlatformError("ERR_FORBIDDEN", { message: "Tokens are issued for an API key, not for another token" });
  }

  if (method === "POST" && path === "tokens") {
    const body = parseBody(TokenRequest, request.body);
    const issued = ctx.tokens.issue({
      keyId: principal.keyId,
      scope: principal.scope,
      allowedApps: body.allowed_apps,
      ...(body.token_expiration !== undefined ? { ttlSec: body.token_expiration } : {}),
    });
    // fal answers with the bare token as a JSON string.
    await reply.code(201).type("application/json").send(JSON.stringify(issued.token));
    return;
  }

  if (method === "POST" && (path === "storage/upload/initiate" || path === "storage/upload/initiate-multipart")) {
    const body = parseBody(InitiateRequest, request.body);
    const { key, fileName } = uploadKey(body.file_name, body.content_type);
    const ttl = lifecycleSeconds(request.headers["x-fal-object-lifecycle"] ?? request.headers["x-fal-object-lifecycle-preference"]);
    const meta = new URLSearchParams({ ct: body.content_type, name: fileName, ...(ttl ? { ttl: String(ttl) } : {}) });
    // `kid` signs the key the upload is charged to (its storage quota); the order of the parameters
    // is the order files.ts verifies them in.
    if (path === "storage/upload/initiate") {
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
    return;
  }

  if (method === "POST" && path === "storage/auth/token") {
    // Python's fal_client uploads to `{CDN}/files/upload` with this token.
    const issued = ctx.tokens.issue({ keyId: principal.keyId, scope: principal.scope, allowedApps: [], ttlSec: UPLOAD_URL_TTL_SECONDS });
    await reply.send({
      token: issued.token,
      token_type: "Bearer",
      base_url: base,
      expires_at: new Date(issued.claims.exp * 1000).toISOString(),
    });
    return;
  }

  throw new PlatformError("ERR_PATH_NOT_FOUND", { message: `${method} /${path} not found` });
}
