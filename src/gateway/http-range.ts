/**
 * HTTP `Range` requests on stored bytes (files, model blobs).
 * @module
 */
import { PlatformError } from "../core/errors.js";
import type { ByteRange } from "../storage/storage.js";

/** Parses a single `bytes=` range against the object size (multi-range is not supported). */
export function parseRange(header: string, size: number): ByteRange | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return null;
  const [, a = "", b = ""] = m;
  if (a === "" && b === "") return null;
  let start: number;
  let end: number;
  if (a === "") {
    const suffix = Number(b);
    if (suffix === 0) throw new PlatformError("ERR_RANGE_NOT_SATISFIABLE");
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
  }
  if (start >= size || start > end) throw new PlatformError("ERR_RANGE_NOT_SATISFIABLE", { headers: { "content-range": `bytes */${size}` } });
  return { start, end };
}
