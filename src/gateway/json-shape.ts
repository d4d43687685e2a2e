/**
 * The shape limits every JSON request body is held to, whichever thread parses it. JSON.parse takes
 * any depth and any number of values, but deep nesting later overflows the stack of JSON.stringify
 * (when an input is stored) and of structured clone (when a runner gets it), and a million keys cost
 * every later walk of the value seconds. Pure functions: the event loop and the body workers
 * (json-worker.ts) run the same ones.
 * @module
 */
import { PlatformError } from "../core/errors.js";

/** Deepest nesting accepted; no model input comes near it. */
export const MAX_JSON_DEPTH = 512;
/** Most values (object keys plus array items, at every level) in one body. */
export const MAX_JSON_VALUES = 100_000;

export type JsonVerdict = { ok: true } | { ok: false; reason: "syntax" | "depth" | "values" };

/** Depth and value count of a parsed value, without recursion, stopping at the first limit passed. */
export function measureJson(value: unknown, maxDepth = MAX_JSON_DEPTH, maxValues = MAX_JSON_VALUES): JsonVerdict {
  const stack: { v: unknown; depth: number }[] = [{ v: value, depth: 1 }];
  let values = 0;
  for (let item = stack.pop(); item; item = stack.pop()) {
    if (typeof item.v !== "object" || item.v === null) continue;
    if (item.depth > maxDepth) return { ok: false, reason: "depth" };
    const children = Array.isArray(item.v) ? item.v : Object.values(item.v);
    values += children.length;
    if (values > maxValues) return { ok: false, reason: "values" };
    for (const child of children) {
      if (typeof child === "object" && child !== null) stack.push({ v: child, depth: item.depth + 1 });
    }
  }
  return { ok: true };
}

const [QUOTE, BACKSLASH, SPACE, TAB, LF, CR, COMMA, OPEN_ARRAY, CLOSE_ARRAY, OPEN_OBJECT, CLOSE_OBJECT] = [0x22, 0x5c, 0x20, 0x09, 0x0a, 0x0d, 0x2c, 0x5b, 0x5d, 0x7b, 0x7d] as const;

/**
 * Depth and value count of a JSON text, read from its bytes without parsing it: a body of a million
 * tiny values is refused in a few milliseconds, before JSON.parse spends seconds and hundreds of
 * megabytes building it. Exact for valid JSON (values are commas plus non-empty containers); what
 * is not valid JSON is left for the parser to refuse.
 */
export function scanJson(bytes: Uint8Array, maxDepth = MAX_JSON_DEPTH, maxValues = MAX_JSON_VALUES): JsonVerdict {
  let depth = 0;
  let values = 0;
  let inString = false;
  let openedContainer = false;
  for (let i = 0; i < bytes.length; i++) {
    if (inString) {
      // Straight to the string's closing quote (a native search: inline files are long strings),
      // skipping quotes escaped by an odd run of backslashes.
      const quote = bytes.indexOf(QUOTE, i);
      if (quote < 0) break;
      let backslashes = 0;
      while (bytes[quote - 1 - backslashes] === BACKSLASH) backslashes++;
      i = quote;
      if (backslashes % 2 === 0) inString = false;
      continue;
    }
    const byte = bytes[i]!;
    if (byte === SPACE || byte === TAB || byte === LF || byte === CR) continue;
    if (openedContainer) {
      // The first thing after `[` or `{` that does not close it is the container's first child.
      openedContainer = false;
      if (byte !== CLOSE_ARRAY && byte !== CLOSE_OBJECT && ++values > maxValues) return { ok: false, reason: "values" };
    }
    if (byte === QUOTE) inString = true;
    else if (byte === OPEN_ARRAY || byte === OPEN_OBJECT) {
      if (++depth > maxDepth) return { ok: false, reason: "depth" };
      openedContainer = true;
    } else if (byte === CLOSE_ARRAY || byte === CLOSE_OBJECT) depth--;
    else if (byte === COMMA && ++values > maxValues) return { ok: false, reason: "values" };
  }
  return { ok: true };
}

/** The 400 a body that failed `verdict` is answered with; null when it passed. */
export function refusalOf(verdict: JsonVerdict): PlatformError | null {
  if (verdict.ok) return null;
  if (verdict.reason === "syntax") return new PlatformError("ERR_BAD_JSON", { message: "Malformed JSON body" });
  if (verdict.reason === "depth") return new PlatformError("ERR_BAD_JSON", { message: `JSON body is nested deeper than ${MAX_JSON_DEPTH} levels` });
  return new PlatformError("ERR_BAD_JSON", {
    message: `JSON body has more than ${MAX_JSON_VALUES} values (object keys and array items); send large data as a file URL instead`,
  });
}

/**
 * A body's text parsed and held to the limits, or why it was refused. A blank body is no input
 * (undefined). `measured`: its bytes already passed scanJson, which is exact for whatever parses,
 * so the value is not walked again.
 */
export function parseJsonText(text: string, { measured = false } = {}): { ok: true; value: unknown } | Extract<JsonVerdict, { ok: false }> {
  if (text.trim() === "") return { ok: true, value: undefined };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: "syntax" };
  }
  const verdict = measured ? ({ ok: true } as const) : measureJson(value);
  return verdict.ok ? { ok: true, value } : verdict;
}

/** parseJsonText, throwing the 400 a refused body is answered with. */
export function parseLimitedJson(text: string): unknown {
  const parsed = parseJsonText(text);
  if (!parsed.ok) throw refusalOf(parsed) as PlatformError;
  return parsed.value;
}
