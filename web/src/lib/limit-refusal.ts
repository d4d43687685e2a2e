/**
 * Which usage limit refused a call, from fal's error shape: 429 `rate_limited` (requests per minute,
 * with `Retry-After`) or `queue_full` (max queued, or the app's own queue length), 403 `forbidden`
 * naming the apps limit, 403 `budget_exhausted` (monthly budget). Anything else is not a limit's
 * refusal and gets the page's usual error notice. See docs/api.md, "Tenants and limits".
 * @module
 */
import { errorMessageOf, errorTypeOf } from "./fal-errors.js";

export type RefusingLimit = "requests_per_minute" | "max_queued" | "queue_length" | "apps" | "monthly_budget" | "failed_key_checks";

/** Limits of the server's own (not a key's or a tenant's, so not set on the Keys page). */
export const SERVER_LIMITS: ReadonlySet<RefusingLimit> = new Set(["queue_length", "failed_key_checks"]);

export interface LimitRefusal {
  limit: RefusingLimit;
  /** The limit in words, for the banner's heading. */
  title: string;
  /** The server's `detail`. */
  detail: string;
  /** Seconds to wait, from `Retry-After`; null when the answer had none. */
  retryAfterSeconds: number | null;
}

/**
 * `Retry-After` as seconds from `now`: delta-seconds or an HTTP date (RFC 9110 §10.2.3); null when
 * absent or unreadable.
 */
export function parseRetryAfter(header: string | null | undefined, now: number = Date.now()): number | null {
  if (header === null || header === undefined) return null;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, Math.ceil((at - now) / 1000)) : null;
}

/** The limit that refused a call answered `status` with `body`, or null when no limit did. */
export function limitRefusalOf(status: number, body: unknown, retryAfterSeconds: number | null): LimitRefusal | null {
  const type = errorTypeOf(body);
  const detail = errorMessageOf(body, status);
  const refusal = (limit: RefusingLimit, title: string): LimitRefusal => ({ limit, title, detail, retryAfterSeconds });
  if (status === 429 && type === "rate_limited") {
    // The same error type throttles wrong keys (src/auth/auth-throttle.ts).
    return /failed key checks/.test(detail) ? refusal("failed_key_checks", "Too many failed key checks") : refusal("requests_per_minute", "Requests per minute");
  }
  if (status === 429 && type === "queue_full") {
    // The key's or tenant's max_queued names itself; otherwise it is the app's own queue length.
    return /max_queued/.test(detail) ? refusal("max_queued", "Requests waiting in the queue (max queued)") : refusal("queue_length", "The app's queue is full");
  }
  if (status === 403 && type === "budget_exhausted") return refusal("monthly_budget", "Monthly budget");
  // Other 403s (an admin route, a token for another app) are no usage limit.
  if (status === 403 && type === "forbidden" && /\bapps limit\b/.test(detail)) return refusal("apps", "Apps this key may call");
  return null;
}

/** "in 42 s", "in 2 min 5 s", "now". */
export function formatWait(seconds: number): string {
  if (seconds <= 0) return "now";
  if (seconds < 60) return `in ${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = seconds - minutes * 60;
  return rest === 0 ? `in ${minutes} min` : `in ${minutes} min ${rest} s`;
}
