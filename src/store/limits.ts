/**
 * How many rows a listing returns, as the {@link Store} interface promises it for every driver.
 * @module
 */

/** Requests (`Store.list`): default 50, at most 500. */
const REQUEST_LIST_LIMIT = { fallback: 50, max: 500 } as const;
/** Usage records (`Store.listUsage`): default 1000, at most 10000. */
const USAGE_LIST_LIMIT = { fallback: 1000, max: 10_000 } as const;

/** A caller's limit as a whole number from 1 to `max`; `fallback` when it is absent or not finite. */
export function clampLimit(limit: number | undefined, fallback: number, max: number): number {
  if (limit === undefined || !Number.isFinite(limit)) return fallback;
  return Math.min(Math.max(Math.trunc(limit), 1), max);
}

export function requestListLimit(limit: number | undefined): number {
  return clampLimit(limit, REQUEST_LIST_LIMIT.fallback, REQUEST_LIST_LIMIT.max);
}

export function usageListLimit(limit: number | undefined): number {
  return clampLimit(limit, USAGE_LIST_LIMIT.fallback, USAGE_LIST_LIMIT.max);
}
