/**
 * JSON request bodies, read without letting one caller stall the event loop or swell its heap for
 * the others. Every body is held to the shape limits of json-shape.ts. Small bodies are parsed at
 * once. Bodies too big to parse in a blink go to a worker thread first; and an app input (a route
 * with `config.appInput`) larger than the spill threshold is never parsed here at all: it stays its
 * bytes (UnparsedInput), the worker validates it against the endpoint's schema, and the scheduler
 * writes those bytes to storage. Parsed on the event loop, a 30 MB inline file cost about eight
 * times its size at once (the body, its string, the value, the JSON written back out, the copy for
 * the worker); kept as bytes, about one.
 * @module
 */
import { PlatformError } from "../core/errors.js";
import type { JsonSchema } from "../core/types.js";
import { UnparsedInput } from "../core/unparsed-input.js";
import { parseJsonText, parseLimitedJson, refusalOf } from "./json-shape.js";
import { jsonWorkers } from "./json-workers.js";

export { MAX_JSON_DEPTH, MAX_JSON_VALUES } from "./json-shape.js";

/**
 * Bodies up to this size are parsed on the event loop at once: at most ~30,000 values fit, a parse
 * of well under 10 ms. Bigger ones are checked on a worker first.
 */
export const INLINE_PARSE_BYTES = 64 * 1024;

/** The bytes of `body` as an ArrayBuffer of their own, to transfer: the body's own when it has one (no copy). */
function ownArrayBuffer(body: Buffer): ArrayBuffer {
  if (body.byteOffset === 0 && body.buffer instanceof ArrayBuffer && body.buffer.byteLength === body.length) return body.buffer;
  // A slice of a shared pool (or of a larger allocation): copied.
  return new Uint8Array(body).buffer;
}

/** How a route's JSON body is to be read. */
export interface JsonBodyOptions {
  /** The body is an app's input: over `unparsedOver` bytes it is kept unparsed (UnparsedInput). */
  appInput: boolean;
  unparsedOver: number;
}

/**
 * Parses a request body; an empty body is no input (fal's clients send the JSON type on bodyless
 * calls). Small bodies are parsed at once (`done` is called before this returns): most requests
 * pay no promise and no worker round trip. A large app input is handed on unparsed, to be checked
 * by checkAppInput.
 */
export function parseJsonBody(body: Buffer, options: JsonBodyOptions, done: (error: Error | null, value?: unknown) => void): void {
  if (body.length <= INLINE_PARSE_BYTES) {
    let value: unknown;
    try {
      value = parseLimitedJson(body.toString("utf8"));
    } catch (error) {
      return done(error as Error);
    }
    return done(null, value);
  }
  if (options.appInput && body.length > options.unparsedOver) return done(null, new UnparsedInput(body));
  // A copy goes to the worker: this thread parses the body itself once the worker passed it. The
  // worker's scan of the bytes is exact for any text JSON.parse takes, so the value is not walked again.
  jsonWorkers.check(new Uint8Array(body).buffer, null).then(
    (reply) => {
      const refused = refusalOf(reply.verdict);
      if (refused) return done(refused);
      const parsed = parseJsonText(body.toString("utf8"), { measured: true });
      done(parsed.ok ? null : refusalOf(parsed), parsed.ok ? parsed.value : undefined);
    },
    (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
  );
}

/**
 * Checks an unparsed app input on a body worker: JSON limits, then `schema`. Throws the 400 or the
 * 422 (fal's `detail[]`) it is refused with; resolves once it passed, its bytes back in place.
 */
export async function checkUnparsedInput(input: UnparsedInput, schema: JsonSchema): Promise<void> {
  const reply = await jsonWorkers.check(ownArrayBuffer(input.bytes), schema);
  if (reply.bytes) input.bytes = Buffer.from(reply.bytes);
  const refused = refusalOf(reply.verdict);
  if (refused) throw refused;
  if (reply.fieldErrors) throw new PlatformError("ERR_VALIDATION", { fieldErrors: reply.fieldErrors });
}
