/**
 * Failures of what the gateway stands on — a full disk, an unreachable database — are not the
 * client's doing and not a bug: they get their own codes (507, 503) with `Retry-After` and the
 * retryable hint, instead of a 500 that tells clients not to retry.
 * @module
 */
import { PlatformError } from "../core/errors.js";

const DISK_FULL = new Set(["ENOSPC", "EDQUOT", "SQLITE_FULL"]);
// Connection failures, and PostgreSQL's "connection exception" (08…) and "operator intervention"
// (57P01–57P03: shut down, crashed, starting up) SQLSTATE classes.
const STORE_DOWN = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "57P01", "57P02", "57P03", "SQLITE_BUSY"]);

function codesOf(error: unknown): string[] {
  const codes: string[] = [];
  for (let e: unknown = error, depth = 0; e && typeof e === "object" && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    const message = (e as { message?: unknown }).message;
    // node-postgres reports a dropped connection by message only.
    if (typeof message === "string" && /Connection terminated|connection timeout/i.test(message)) codes.push("ECONNRESET");
  }
  return codes;
}

/** The outage error behind `error` (or its causes), or null when it is something else. */
export function outageError(error: unknown): PlatformError | null {
  const codes = codesOf(error);
  if (codes.some((code) => DISK_FULL.has(code))) {
    return new PlatformError("ERR_INSUFFICIENT_STORAGE", { headers: { "retry-after": "30" }, cause: error });
  }
  if (codes.some((code) => STORE_DOWN.has(code) || code.startsWith("08"))) {
    return new PlatformError("ERR_STORE_UNAVAILABLE", { headers: { "retry-after": "5" }, cause: error });
  }
  return null;
}
