/**
 * A body worker: checks large JSON bodies off the event loop (json-workers.ts starts these). Each
 * message is one body: hold its bytes to the JSON limits (before parsing: a body of a million tiny
 * values never reaches the parser), parse it and, for an app input, validate it against its
 * endpoint's schema. Only the verdict goes back (and, for an app input, the bytes, transferred
 * without a copy): the parsed value dies here, so the gateway's main heap never holds it.
 * @module
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { parentPort } from "node:worker_threads";
import { PlatformError, type FieldError } from "../core/errors.js";
import type { JsonSchema } from "../core/types.js";
import { InputValidator } from "./input-validator.js";
import { parseJsonText, scanJson, type JsonVerdict } from "./json-shape.js";

export interface JsonCheck {
  id: number;
  bytes: ArrayBuffer;
  /** The endpoint's input schema, for an app input; null to check the JSON limits only (by scanning, without parsing). */
  schema: JsonSchema | null;
}

export type JsonCheckReply = { id: number; verdict: JsonVerdict; fieldErrors?: FieldError[]; bytes?: ArrayBuffer };

/**
 * A body leaves its text and parsed value behind as garbage, which V8 collects only once the worker
 * allocates enough again: a burst of 30 MB bodies grew one idle worker by half a gigabyte. So the
 * worker collects once the bodies it checked since its last collection add up to 16 MiB (after
 * every body of that size, after every sixteenth of 1 MiB), once the reply is sent. The collector is
 * reached the way leak detectors reach it in a running process (exposed to new contexts).
 */
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;
const COLLECT_AFTER_BYTES = 16 * 1024 * 1024;
let bytesSinceCollection = 0;

const validator = new InputValidator();
// Schemas arrive as copies: one object per distinct schema keeps the validator's compiled cache warm.
const schemas = new Map<string, JsonSchema>();
const MAX_SCHEMAS = 256;

function canonical(schema: JsonSchema): JsonSchema {
  const text = JSON.stringify(schema);
  const known = schemas.get(text);
  if (known) return known;
  if (schemas.size >= MAX_SCHEMAS) schemas.clear();
  schemas.set(text, schema);
  return schema;
}

function check({ id, bytes, schema }: JsonCheck): JsonCheckReply {
  const shape = scanJson(new Uint8Array(bytes));
  // Without a schema the event loop parses the body itself once it passed (its syntax is checked there).
  if (schema === null || !shape.ok) return { id, verdict: shape, ...(schema === null ? {} : { bytes }) };
  const parsed = parseJsonText(Buffer.from(bytes).toString("utf8"), { measured: true });
  // An app input is stored as these very bytes: a blank body is refused rather than read as `{}`.
  if (!parsed.ok || parsed.value === undefined) return { id, verdict: parsed.ok ? { ok: false, reason: "syntax" } : parsed, bytes };
  try {
    validator.validate(canonical(schema), parsed.value);
  } catch (error) {
    if (!(error instanceof PlatformError)) throw error;
    return { id, verdict: { ok: true }, fieldErrors: error.fieldErrors ?? [], bytes };
  }
  return { id, verdict: { ok: true }, bytes };
}

parentPort?.on("message", (message: JsonCheck) => {
  bytesSinceCollection += message.bytes.byteLength;
  const reply = check(message);
  parentPort?.postMessage(reply, reply.bytes ? [reply.bytes] : []);
  if (bytesSinceCollection >= COLLECT_AFTER_BYTES) {
    bytesSinceCollection = 0;
    collectGarbage();
  }
});
