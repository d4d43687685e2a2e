/**
 * `X-Darkroom-Cache-Status` (and, for BYPASS, `X-Darkroom-Cache-Reason`) on the answer to a submit,
 * a sync run or a stream: what result reuse did with the request (docs/result-reuse.md). Reads of a
 * request's result say HIT or JOINED again (wire.ts); MISS and BYPASS are only known at submit.
 * @module
 */
import type { CacheStatus } from "../core/types.js";

export function cacheHeadersOf(submitted: { cacheStatus: CacheStatus | null; bypassReason?: string }): Record<string, string> {
  if (submitted.cacheStatus === null) return {};
  return {
    "x-darkroom-cache-status": submitted.cacheStatus,
    ...(submitted.bypassReason ? { "x-darkroom-cache-reason": submitted.bypassReason } : {}),
  };
}
