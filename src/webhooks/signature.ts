/**
 * fal's webhook signature (docs/api.md, Webhooks), both ways.
 *
 * The signed message is the UTF-8 text
 * `"{request_id}\n{user_id}\n{timestamp}\n{sha256_hex(raw_body)}"`, the signature is a hex Ed25519
 * signature over it, and the four values travel in `X-Fal-Webhook-*` headers. A receiver verifies
 * against any key of the sender's JWKS and rejects timestamps more than 300 s away from its clock, which
 * bounds how long a captured delivery can be replayed.
 *
 * `verifyWebhook` deliberately works from the published JWKS JSON alone (it imports each key from its
 * JWK form) and shares nothing with the signing side but the message layout: it is the code that users
 * copy and that our tests run, so it has to prove that what we publish is enough to verify what we send.
 * @module
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from "node:crypto";

export const WEBHOOK_REQUEST_ID_HEADER = "X-Fal-Webhook-Request-Id";
export const WEBHOOK_USER_ID_HEADER = "X-Fal-Webhook-User-Id";
export const WEBHOOK_TIMESTAMP_HEADER = "X-Fal-Webhook-Timestamp";
export const WEBHOOK_SIGNATURE_HEADER = "X-Fal-Webhook-Signature";

/** fal's replay window: receivers reject a timestamp further than this from their clock. */
export const DEFAULT_TOLERANCE_SEC = 300;

/** An Ed25519 public key as it appears in a JWKS (RFC 8037). */
export interface Ed25519Jwk {
  kty: "OKP";
  crv: "Ed25519";
  /** base64url of the raw 32-byte public key */
  x: string;
  kid: string;
  use: "sig";
  alg: "EdDSA";
}

export interface Jwks {
  keys: Ed25519Jwk[];
}

/** A type alias, not an interface, so that it stays assignable to `Record<string, string>` header maps. */
export type WebhookSignatureHeaders = {
  "X-Fal-Webhook-Request-Id": string;
  "X-Fal-Webhook-User-Id": string;
  "X-Fal-Webhook-Timestamp": string;
  "X-Fal-Webhook-Signature": string;
};

/** The exact bytes that get signed. */
export function webhookMessage(requestId: string, userId: string, timestampSec: number | string, body: Buffer | string): Buffer {
  const bodyHash = createHash("sha256").update(body).digest("hex");
  return Buffer.from(`${requestId}\n${userId}\n${timestampSec}\n${bodyHash}`, "utf8");
}

export interface SignWebhookInput {
  requestId: string;
  userId: string;
  /** unix seconds, integer */
  timestampSec: number;
  /** The body exactly as it will be sent; re-serialising it would change the hash. */
  body: Buffer | string;
  privateKey: KeyObject;
}

export function signWebhook(input: SignWebhookInput): WebhookSignatureHeaders {
  if (!Number.isSafeInteger(input.timestampSec) || input.timestampSec < 0) {
    throw new Error(`webhook timestamp must be whole unix seconds, got ${input.timestampSec}`);
  }
  const message = webhookMessage(input.requestId, input.userId, input.timestampSec, input.body);
  // Ed25519 hashes internally, so node:crypto takes `null` as the digest algorithm.
  const signature = sign(null, message, input.privateKey).toString("hex");
  return {
    [WEBHOOK_REQUEST_ID_HEADER]: input.requestId,
    [WEBHOOK_USER_ID_HEADER]: input.userId,
    [WEBHOOK_TIMESTAMP_HEADER]: String(input.timestampSec),
    [WEBHOOK_SIGNATURE_HEADER]: signature,
  };
}

/** Anything that carries headers: a plain object (any key case, Node's array values) or a fetch `Headers`. */
export type HeaderSource = Headers | Record<string, string | string[] | undefined>;

function header(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function" && typeof (headers as Headers).forEach === "function") {
    return (headers as Headers).get(name) ?? undefined;
  }
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (key.toLowerCase() !== wanted) continue;
    // A repeated signature header is ambiguous; refuse rather than pick one.
    if (Array.isArray(value)) return value.length === 1 ? value[0] : undefined;
    return value;
  }
  return undefined;
}

export interface VerifyWebhookInput {
  headers: HeaderSource;
  /** The raw body bytes as received (not a re-serialised parse). */
  body: Buffer | string;
  /** The sender's published JWKS (`/.well-known/jwks.json`). */
  jwks: { keys: readonly unknown[] };
  /** The receiver's clock, unix seconds. Defaults to now. */
  nowSec?: number;
  toleranceSec?: number;
}

/** Imports one JWKS entry, or returns null for anything that is not a usable Ed25519 public key. */
function publicKeyFromJwk(jwk: unknown): KeyObject | null {
  if (typeof jwk !== "object" || jwk === null) return null;
  const { kty, crv, x } = jwk as Record<string, unknown>;
  if (kty !== "OKP" || crv !== "Ed25519" || typeof x !== "string") return null;
  // Only the public members go in, so that a JWKS that (wrongly) carries `d` can not make us hold a private key.
  try {
    return createPublicKey({ key: { kty, crv, x }, format: "jwk" });
  } catch {
    return null;
  }
}

/** True when the headers carry a valid, fresh signature of `body` by any key of `jwks`. */
export function verifyWebhook(input: VerifyWebhookInput): boolean {
  const requestId = header(input.headers, WEBHOOK_REQUEST_ID_HEADER);
  const userId = header(input.headers, WEBHOOK_USER_ID_HEADER);
  const timestamp = header(input.headers, WEBHOOK_TIMESTAMP_HEADER);
  const signatureHex = header(input.headers, WEBHOOK_SIGNATURE_HEADER);
  if (requestId === undefined || userId === undefined || timestamp === undefined || signatureHex === undefined) return false;

  // Whole seconds only: the timestamp is signed as text, so "1700000000.0" or " 1700000000" would
  // verify as a different message anyway, and rejecting them early keeps the clock check exact.
  if (!/^\d{1,15}$/.test(timestamp)) return false;
  const nowSec = input.nowSec ?? Math.floor(Date.now() / 1000);
  const toleranceSec = input.toleranceSec ?? DEFAULT_TOLERANCE_SEC;
  if (Math.abs(nowSec - Number(timestamp)) > toleranceSec) return false;

  // An Ed25519 signature is 64 bytes.
  if (!/^[0-9a-fA-F]{128}$/.test(signatureHex)) return false;
  const signature = Buffer.from(signatureHex, "hex");
  const message = webhookMessage(requestId, userId, timestamp, input.body);

  for (const jwk of input.jwks.keys) {
    const key = publicKeyFromJwk(jwk);
    if (key && verify(null, message, key, signature)) return true;
  }
  return false;
}
