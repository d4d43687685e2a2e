/**
 * Usage limits as a caller is held to them: a key's limits and its tenant's merged into one set (the
 * stricter of each), and the patterns of the `apps` list.
 * @module
 */
import type { UsageLimits } from "../core/tenants.js";

/** An entry of an `apps` list: an app id (`darkroom/echo`) or every app of one owner (`darkroom/*`). */
export const APP_PATTERN = /^[a-z0-9][a-z0-9-]*\/(\*|[a-z0-9][a-z0-9._-]*)$/;

/** The limits that are numbers; for each the smaller one is the stricter. */
const NUMERIC_LIMITS = ["maxConcurrency", "requestsPerMinute", "monthlyBudget", "maxQueued"] as const satisfies readonly (keyof UsageLimits)[];

/** Whether `pattern` (APP_PATTERN) matches the app id `appId`. */
function matches(pattern: string, appId: string): boolean {
  return pattern.endsWith("/*") ? appId.startsWith(pattern.slice(0, -1)) : appId === pattern;
}

/** Whether every app `inner` matches is matched by `outer` too. */
function covers(outer: string, inner: string): boolean {
  // "darkroom/*".slice(0, -1) is "darkroom/": it covers "darkroom/echo" and "darkroom/*" alike.
  return outer.endsWith("/*") ? inner.startsWith(outer.slice(0, -1)) : outer === inner;
}

/** Whether an `apps` list lets `appId` be called; no list allows every app, an empty one none. */
export function appsAllow(apps: readonly string[] | undefined, appId: string): boolean {
  return apps === undefined || apps.some((pattern) => matches(pattern, appId));
}

/**
 * The apps both lists allow, as one list: each pattern of one list that the other list covers. An app
 * both allow is matched by a pattern of each; of two patterns matching one app, one covers the other
 * (an id is covered by the owner's `/*`, two `/*` of one owner are equal), so that one is kept.
 */
function intersectApps(a: readonly string[], b: readonly string[]): string[] {
  const kept = [...a.filter((p) => b.some((q) => covers(q, p))), ...b.filter((q) => a.some((p) => covers(p, q)))];
  return [...new Set(kept)];
}

/**
 * The limits a caller is held to when its key and its tenant each set some: the smaller of two
 * numbers, and for `apps` only the apps both lists allow (a call must pass both). A limit only one
 * of them sets holds as it is.
 */
export function mergeLimits(a: UsageLimits, b: UsageLimits): UsageLimits {
  const merged: UsageLimits = {};
  for (const field of NUMERIC_LIMITS) {
    const [x, y] = [a[field], b[field]];
    const stricter = x === undefined ? y : y === undefined ? x : Math.min(x, y);
    if (stricter !== undefined) merged[field] = stricter;
  }
  const apps = a.apps && b.apps ? intersectApps(a.apps, b.apps) : (a.apps ?? b.apps);
  if (apps) merged.apps = [...apps];
  return merged;
}
