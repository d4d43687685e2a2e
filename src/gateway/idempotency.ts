/**
 * `Idempotency-Key` on a queue submit: a client that retries a submit after a timeout or a dropped
 * connection (it cannot know whether the first one landed) gets the first submit's request back
 * instead of a second run. Keys are per API key and held 24 h; the same key with a different
 * request (app, endpoint, input or webhook) is refused with 422, and a second submit while the
 * first is still being written with 409 (retry it).
 *
 * The key is taken (Store.reserveIdempotencyKey) before the request is checked and written, so that
 * two retries at once cannot both run; a submit that then fails gives the key back.
 * @module
 */
import { createHash } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { PlatformError } from "../core/errors.js";
import type { RequestRecord } from "../core/types.js";
import type { Store } from "../store/store.js";
import { UnparsedInput } from "../core/unparsed-input.js";
import { canonicalJson } from "../core/canonical-json.js";

/** How long a key stands for its request. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
/** A key whose request was not written this long after it was taken is free again (its gateway died). */
const STALE_MS = 30_000;
/** How long a retry waits for the first submit's request to be written before answering 409. */
const WAIT_FOR_FIRST_MS = 2_000;
/** Printable ASCII, no spaces, as the IETF draft and Stripe take them. */
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** The request's `Idempotency-Key`, or null without one; a malformed key is refused (400). */
export function idempotencyKeyOf(request: FastifyRequest): string | null {
  const value = request.headers["idempotency-key"];
  if (value === undefined) return null;
  if (typeof value !== "string" || !KEY_PATTERN.test(value)) {
    throw new PlatformError("ERR_BAD_REQUEST", { message: "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces" });
  }
  return value;
}

/** What a submit asks for, hashed: the same retry hashes the same; object keys in any order. */
export function fingerprintOf(submit: { appId: string; endpoint: string; input: unknown; webhookUrl: string | null }): string {
  const hash = createHash("sha256").update(JSON.stringify([submit.appId, submit.endpoint, submit.webhookUrl]));
  // A large input kept unparsed (json-body.ts) is compared byte for byte.
  if (submit.input instanceof UnparsedInput) hash.update("\0bytes\0").update(submit.input.bytes);
  else hash.update("\0json\0").update(canonicalJson(submit.input));
  return hash.digest("hex");
}

export type IdempotentSubmit =
  /** The key is this submit's: write the request under `requestId`, or give the key back on failure. */
  | { kind: "new"; release: () => Promise<void> }
  /** A retry: answer with the first submit's request. */
  | { kind: "replay"; record: RequestRecord };

/** Takes `key` for a new request `requestId`, or finds the request an earlier submit made with it. */
export async function takeIdempotencyKey(
  store: Store,
  submit: { keyId: string | null; key: string; fingerprint: string; requestId: string },
  now: number = Date.now(),
): Promise<IdempotentSubmit> {
  const keyId = submit.keyId ?? "";
  const outcome = await store.reserveIdempotencyKey({
    keyId,
    key: submit.key,
    fingerprint: submit.fingerprint,
    requestId: submit.requestId,
    now,
    expiresAt: now + IDEMPOTENCY_TTL_MS,
    staleBefore: now - STALE_MS,
  });
  if (outcome.kind === "reserved") return { kind: "new", release: () => store.releaseIdempotencyKey(keyId, submit.key, submit.requestId) };
  if (outcome.fingerprint !== submit.fingerprint) {
    throw new PlatformError("ERR_IDEMPOTENCY_KEY_REUSED", { message: `Idempotency-Key ${JSON.stringify(submit.key)} was used for request ${outcome.requestId}, with a different app, endpoint, input or webhook` });
  }
  // The first submit may still be writing its request.
  for (const started = Date.now(); ; ) {
    const record = await store.get(outcome.requestId);
    if (record) return { kind: "replay", record };
    if (Date.now() - started >= WAIT_FOR_FIRST_MS) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new PlatformError("ERR_IDEMPOTENCY_IN_PROGRESS", { message: `The submit that took Idempotency-Key ${JSON.stringify(submit.key)} has not written its request yet; retry in a moment`, headers: { "retry-after": "1" } });
}
