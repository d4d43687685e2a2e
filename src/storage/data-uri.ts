/**
 * `data:` URIs (RFC 2397), which fal clients send inline instead of a file URL and which apps may
 * return instead of storing a file: `data:[<mediatype>][;base64],<data>`.
 *
 * The media type ends up in a Content-Type header, so it is validated as a MIME type rather than
 * passed through.
 * @module
 */
import { DEFAULT_LIMITS } from "../core/config.js";
import { PlatformError } from "../core/errors.js";

export interface DataUri {
  contentType: string;
  data: Buffer;
}

/** RFC 2397's default when the media type is left out. */
const DEFAULT_TYPE = "text/plain";
const DEFAULT_CHARSET = "charset=US-ASCII";

/** An RFC 9110 token. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const QUOTED = /^"[^"\\\r\n]*"$/;
/** Standard and URL-safe alphabets, which Buffer decodes alike; padding optional. */
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

export function isDataUri(value: string): boolean {
  return /^data:/i.test(value);
}

/**
 * Decodes a data URI. ERR_BAD_REQUEST when malformed, ERR_FILE_TOO_LARGE when its data exceeds
 * `maxBytes` (checked before the bytes are decoded, so an oversized URI costs no extra memory).
 */
export function parseDataUri(uri: string, maxBytes: number = DEFAULT_LIMITS.maxFileBytes): DataUri {
  const bad = (why: string): PlatformError => new PlatformError("ERR_BAD_REQUEST", { message: `malformed data URI: ${why}` });
  if (!isDataUri(uri)) throw bad("does not start with data:");
  const comma = uri.indexOf(",");
  if (comma === -1) throw bad("no comma before the data");

  const params = uri.slice(5, comma).split(";").map((p) => p.trim());
  const base64 = params.length > 1 && params[params.length - 1]?.toLowerCase() === "base64";
  if (base64) params.pop();
  const contentType = mediaType(params, bad);
  const payload = uri.slice(comma + 1);

  const data = base64 ? decodeBase64(payload, maxBytes, bad) : decodePercent(payload, maxBytes, bad);
  return { contentType, data };
}

/** Encodes bytes as a base64 data URI. */
export function toDataUri(data: Buffer | Uint8Array, contentType: string): string {
  return `data:${contentType};base64,${Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64")}`;
}

function mediaType(parts: string[], bad: (why: string) => PlatformError): string {
  const [type = "", ...rest] = parts;
  let essence = type.toLowerCase();
  if (essence === "") {
    essence = DEFAULT_TYPE;
    if (rest.length === 0) rest.push(DEFAULT_CHARSET);
  }
  const slash = essence.indexOf("/");
  if (slash === -1 || !TOKEN.test(essence.slice(0, slash)) || !TOKEN.test(essence.slice(slash + 1))) {
    throw bad(`invalid media type ${JSON.stringify(type)}`);
  }
  for (const param of rest) {
    const eq = param.indexOf("=");
    const name = param.slice(0, eq);
    const value = param.slice(eq + 1);
    if (eq === -1 || !TOKEN.test(name) || !(TOKEN.test(value) || QUOTED.test(value))) {
      throw bad(`invalid media type parameter ${JSON.stringify(param)}`);
    }
  }
  return [essence, ...rest].join(";");
}

function decodeBase64(payload: string, maxBytes: number, bad: (why: string) => PlatformError): Buffer {
  let text = payload;
  // Some encoders percent-escape '+', '/' and '='; undo that before checking the alphabet.
  if (text.includes("%")) text = percentDecodeAscii(text, bad);
  text = text.replace(/[\t\n\f\r ]+/g, "");
  if (!BASE64.test(text)) throw bad("invalid base64");
  const unpadded = text.replace(/=+$/, "").length;
  if (unpadded % 4 === 1) throw bad("truncated base64");
  const size = Math.floor((unpadded * 3) / 4);
  if (size > maxBytes) throw tooLarge(maxBytes);
  return Buffer.from(text, "base64");
}

/** Percent-decoding to bytes (not via decodeURIComponent, which rejects bytes that are not UTF-8). */
function decodePercent(payload: string, maxBytes: number, bad: (why: string) => PlatformError): Buffer {
  const raw = Buffer.from(payload, "utf8");
  const out = Buffer.allocUnsafe(Math.min(raw.length, maxBytes + 1));
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    let byte = raw[i] as number;
    if (byte === 0x25 /* % */) {
      const hex = raw.subarray(i + 1, i + 3).toString("latin1");
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw bad("invalid percent escape");
      byte = parseInt(hex, 16);
      i += 2;
    }
    if (n >= maxBytes) throw tooLarge(maxBytes);
    out[n++] = byte;
  }
  return Buffer.from(out.subarray(0, n));
}

function percentDecodeAscii(text: string, bad: (why: string) => PlatformError): string {
  return text.replace(/%(..)/g, (_m, hex: string) => {
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw bad("invalid percent escape");
    return String.fromCharCode(parseInt(hex, 16));
  });
}

function tooLarge(maxBytes: number): PlatformError {
  return new PlatformError("ERR_FILE_TOO_LARGE", { message: `data URI exceeds ${maxBytes} bytes` });
}
