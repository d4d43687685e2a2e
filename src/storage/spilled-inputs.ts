/**
 * Large inputs live in storage, not in database rows. An input whose JSON is larger than
 * `limits.inputSpillBytes` (`DARKROOM_INPUT_SPILL_BYTES`, 256 KiB) is written once to the storage
 * driver under `inputs/<request id>/<random>.json`, and the request's row keeps only a reference:
 *
 *     {"$darkroom": {"spilled_input": "inputs/<request id>/<random>.json", "bytes": <size>}}
 *
 * Every queue operation reads and writes request rows (claims, leases, retries, the state events
 * that cross gateways): a 30 MB input in them is 30 MB per row read, per gateway, per retry.
 *
 * The reference cannot be forged. A caller could submit that very object as its input (an app's
 * schema may well accept it), but a reference counts only when its key lies under the prefix of the
 * request whose row holds it, `inputs/<this request's id>/`. Request ids are random UUIDs the
 * gateway picks after the input arrived, so no caller can name their own request's prefix in
 * advance; a look-alike pointing anywhere else is the caller's plain input, handed to the app as
 * it was sent and never read from storage. Nothing under `inputs/` is served either: `/files/`
 * answers 404 for it and runners do not read it through a URL (files.ts, file-access.ts).
 *
 * The files are not charged to the key's storage quota (the body limit already bounds them) and
 * stay as long as the request's record, whose `GET /v1/requests/{id}` shows the input; no route
 * deletes request records today.
 * @module
 */
import { randomBytes } from "node:crypto";
import { PlatformError } from "../core/errors.js";
import { UnparsedInput } from "../core/unparsed-input.js";
import type { StorageDriver } from "./storage.js";

/** Where spilled inputs are kept in storage. Never served by URL. */
export const SPILLED_INPUTS_PREFIX = "inputs/";

/** The reference a request row holds in place of a spilled input. */
export interface SpilledInputRef {
  $darkroom: { spilled_input: string; bytes: number };
}

/** An input as the store should write it: the value and its JSON, serialized once. */
export interface StoredInput {
  /** The input itself, or the reference to it once spilled. */
  input: unknown;
  /** `input` as JSON: what the row holds. */
  json: string;
  /** The storage key of the spilled input, or null when the input stays in the row. */
  spilledKey: string | null;
}

/**
 * Whether a storage key is (or, on a case-insensitive disk, could reach) a spilled input: such keys
 * are never served or read by URL.
 */
export function isSpilledInputKey(key: string): boolean {
  return key.toLowerCase().startsWith(SPILLED_INPUTS_PREFIX);
}

/**
 * Serializes `input` once; over `thresholdBytes` of JSON, writes it to storage under the request's
 * own prefix and returns the reference to keep in its row instead.
 */
export async function spillInput(storage: StorageDriver | undefined, requestId: string, input: unknown, thresholdBytes: number): Promise<StoredInput> {
  let content: Buffer;
  if (input instanceof UnparsedInput) {
    // Checked JSON, kept as the bytes that arrived (json-body.ts): stored as they are.
    content = input.bytes;
    if (!storage || content.length <= thresholdBytes) {
      const json = content.toString("utf8");
      return { input: JSON.parse(json) as unknown, json, spilledKey: null };
    }
  } else {
    const json = JSON.stringify(input ?? null);
    if (!storage || Buffer.byteLength(json, "utf8") <= thresholdBytes) return { input, json, spilledKey: null };
    content = Buffer.from(json, "utf8");
  }
  const bytes = content.length;
  const key = `${SPILLED_INPUTS_PREFIX}${requestId}/${randomBytes(9).toString("base64url")}.json`;
  await storage.put(key, content, { contentType: "application/json", fileName: "input.json" });
  const ref: SpilledInputRef = { $darkroom: { spilled_input: key, bytes } };
  return { input: ref, json: JSON.stringify(ref), spilledKey: key };
}

const RANDOM_NAME = /^[A-Za-z0-9_-]{8,64}\.json$/;

/**
 * The spilled input that `input`, the input held in the row of request `requestId`, refers to: its
 * storage key and size. Null for an ordinary input (a look-alike included: its key must lie under
 * this request's own prefix, see the module comment).
 */
export function spilledInputRef(requestId: string, input: unknown): { key: string; bytes: number } | null {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return null;
  const keys = Object.keys(input);
  if (keys.length !== 1 || keys[0] !== "$darkroom") return null;
  const ref = (input as Record<string, unknown>)["$darkroom"];
  if (typeof ref !== "object" || ref === null || Array.isArray(ref)) return null;
  const { spilled_input: key, bytes } = ref as Record<string, unknown>;
  if (Object.keys(ref).length !== 2 || typeof key !== "string" || typeof bytes !== "number") return null;
  const prefix = `${SPILLED_INPUTS_PREFIX}${requestId}/`;
  if (!key.startsWith(prefix) || !RANDOM_NAME.test(key.slice(prefix.length))) return null;
  return { key, bytes };
}

/** The storage key of the spilled input `input` refers to (see spilledInputRef); null for an ordinary input. */
export function spilledInputKey(requestId: string, input: unknown): string | null {
  return spilledInputRef(requestId, input)?.key ?? null;
}

/** The bytes of a spilled input: `{found: false}` when its file is gone. Storage failures (an unreachable bucket) throw. */
async function readSpilledBytes(storage: StorageDriver, key: string): Promise<{ found: true; bytes: Buffer } | { found: false }> {
  const object = await storage.get(key);
  if (!object) return { found: false };
  // One buffer of the stored size, filled as the chunks arrive: no list of chunks joined at the end.
  let bytes = Buffer.allocUnsafe(object.meta.size);
  let filled = 0;
  for await (const chunk of object.body) {
    const part = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    if (filled + part.length > bytes.length) bytes = Buffer.concat([bytes.subarray(0, filled), part]);
    else part.copy(bytes, filled);
    filled += part.length;
  }
  return { found: true, bytes: filled === bytes.length ? bytes : bytes.subarray(0, filled) };
}

/** Reads a spilled input back: `{found: false}` when its file is gone. Storage failures and unreadable JSON throw. */
export async function readSpilledInput(storage: StorageDriver, key: string): Promise<{ found: true; input: unknown } | { found: false }> {
  const read = await readSpilledBytes(storage, key);
  return read.found ? { found: true, input: JSON.parse(read.bytes.toString("utf8")) as unknown } : read;
}

/**
 * The input of a request as its runner must get it: the row's input, or the spilled input it refers
 * to read back from storage; with `form: "bytes"`, a spilled input comes as its JSON bytes
 * (UnparsedInput), for a runner that parses it itself (the scheduler's local runners: the gateway
 * never holds the parsed value). A spilled input that cannot be read fails the request, with the
 * PlatformError this throws: ERR_STORE_UNAVAILABLE when storage failed (an outage: the request is
 * retried, see inputOfRetrying), ERR_INTERNAL when the file is gone or is not JSON.
 */
export async function inputOf(storage: StorageDriver | undefined, record: { id: string; input: unknown }, form: "parsed" | "bytes" = "parsed"): Promise<unknown> {
  const key = spilledInputKey(record.id, record.input);
  if (key === null) return record.input;
  if (!storage) throw new PlatformError("ERR_INTERNAL", { message: `The request's input is in storage (${key}), and this server has none to read it from` });
  let read: Awaited<ReturnType<typeof readSpilledBytes>>;
  try {
    read = await readSpilledBytes(storage, key);
  } catch (err) {
    throw new PlatformError("ERR_STORE_UNAVAILABLE", { message: `The request's input could not be read from storage (${key}): ${err instanceof Error ? err.message : String(err)}`, cause: err });
  }
  if (!read.found) throw new PlatformError("ERR_INTERNAL", { message: `The request's input is no longer in storage (${key})` });
  if (form === "bytes") return new UnparsedInput(read.bytes);
  try {
    return JSON.parse(read.bytes.toString("utf8")) as unknown;
  } catch (err) {
    throw new PlatformError("ERR_INTERNAL", { message: `The request's stored input is not JSON (${key})`, cause: err });
  }
}

/**
 * The input of a request as its record shows it (`GET /v1/requests/{id}`): the spilled input read
 * back, or the reference itself when its file is gone, so that the record stays readable.
 */
export async function shownInputOf(storage: StorageDriver, record: { id: string; input: unknown }): Promise<unknown> {
  const key = spilledInputKey(record.id, record.input);
  if (key === null) return record.input;
  const read = await readSpilledInput(storage, key);
  return read.found ? read.input : record.input;
}

/** Waits before reading a spilled input again after a storage failure: a blip passes within these. */
export const INPUT_READ_RETRY_DELAYS_MS: readonly number[] = [500, 1500];

/**
 * inputOf, read again after a storage failure (ERR_STORE_UNAVAILABLE) while the delays last. A
 * failure that outlasts them is thrown: the request then goes back to the queue for another attempt
 * (ERR_STORE_UNAVAILABLE requeues, errors.ts) and fails only when its attempts are spent.
 */
export async function inputOfRetrying(storage: StorageDriver | undefined, record: { id: string; input: unknown }, form: "parsed" | "bytes" = "parsed", delaysMs: readonly number[] = INPUT_READ_RETRY_DELAYS_MS): Promise<unknown> {
  for (let retry = 0; ; retry++) {
    try {
      return await inputOf(storage, record, form);
    } catch (err) {
      const delay = delaysMs[retry];
      if (delay === undefined || !(err instanceof PlatformError) || err.code !== "ERR_STORE_UNAVAILABLE") throw err;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
