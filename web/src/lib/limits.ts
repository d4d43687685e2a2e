/**
 * Usage limits and tenants as the Keys page edits them: the wire shape (`limits` in `GET /v1/keys`
 * and `GET /v1/tenants`, snake_case, null for no limit), the form's text drafts, the checks made
 * before sending, the body `PATCH /v1/keys/{id}` and `PUT /v1/tenants/{name}` take, and where a
 * server's 422 belongs in the form.
 *
 * The checks here are the shape of each value (a whole number above 0, a pattern). Bounds that are
 * the server's policy (at most 100 apps, a weight of at most 1000) are left to it: its 422 is shown
 * next to the field it names.
 * @module
 */
import type { FieldError } from "./schema-form.js";

/** `limits` as the API shows it: every field, null where no limit is set. */
export interface LimitsView {
  max_concurrency: number | null;
  requests_per_minute: number | null;
  apps: string[] | null;
  monthly_budget: number | null;
  max_queued: number | null;
}

/** `limits` as a body sends it: a field left out sets no limit (the whole object replaces the old one). */
export type LimitsBody = Partial<{ [K in keyof LimitsView]: NonNullable<LimitsView[K]> }>;

export type LimitName = keyof LimitsView;

/** The form's text for each limit; blank is no limit. `apps` is one id or pattern per line (commas work too). */
export type LimitsDraft = Record<LimitName, string>;

/** What the form shows for each limit, in the order it shows them. */
export const LIMIT_FIELDS: readonly { name: LimitName; label: string; hint: string }[] = [
  { name: "max_concurrency", label: "Max concurrency", hint: "Requests running at once; more wait in the queue." },
  { name: "requests_per_minute", label: "Requests per minute", hint: "Beyond it, calls are refused with 429 and Retry-After." },
  { name: "max_queued", label: "Max queued", hint: "Requests waiting at once; beyond it, 429 queue_full." },
  { name: "monthly_budget", label: "Monthly budget", hint: "Spend per calendar month (UTC) in the pricing currency; once spent, calls are refused." },
  { name: "apps", label: "Apps", hint: "One app id (owner/alias) or owner/* per line; other apps are refused with 403. Blank: every app." },
];

/** A tenant's name: what keys name in `tenant` and `/v1/tenants/{name}` addresses (the server's TENANT_NAME). */
export const TENANT_NAME = /^[A-Za-z0-9._-]{1,64}$/;
/** An entry of an `apps` list: an app id or all of an owner's apps (the server's APP_PATTERN). */
export const APP_PATTERN = /^[a-z0-9][a-z0-9-]*\/(\*|[a-z0-9][a-z0-9._-]*)$/;

export const NO_LIMITS: LimitsView = { max_concurrency: null, requests_per_minute: null, apps: null, monthly_budget: null, max_queued: null };

export function draftOfLimits(limits: LimitsView): LimitsDraft {
  const text = (v: number | null): string => (v === null ? "" : String(v));
  return {
    max_concurrency: text(limits.max_concurrency),
    requests_per_minute: text(limits.requests_per_minute),
    max_queued: text(limits.max_queued),
    monthly_budget: text(limits.monthly_budget),
    apps: (limits.apps ?? []).join("\n"),
  };
}

/** The entries of an apps draft: split on lines, commas and spaces. */
export function appsOfDraft(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

const COUNT_MESSAGE = "A whole number above 0, or blank for no limit";

/** A whole number above 0 from its text; null when it is not one. */
function parseCount(text: string): number | null {
  if (!/^\d+$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** A number of at least 0 (plain decimal notation); null when it is not one. */
function parseAmount(text: string): number | null {
  if (!/^\d+(\.\d+)?$|^\.\d+$/.test(text)) return null;
  const n = Number(text);
  return Number.isFinite(n) ? n : null;
}

/**
 * The `limits` body a draft sets, and what is wrong with it. Error paths are the body's
 * (`limits.max_concurrency`), as the server's 422 names them.
 */
export function limitsOfDraft(draft: LimitsDraft): { limits: LimitsBody; errors: FieldError[] } {
  const limits: LimitsBody = {};
  const errors: FieldError[] = [];
  for (const name of ["max_concurrency", "requests_per_minute", "max_queued"] as const) {
    const text = draft[name].trim();
    if (text === "") continue;
    const n = parseCount(text);
    if (n === null) errors.push({ path: `limits.${name}`, message: COUNT_MESSAGE });
    else limits[name] = n;
  }
  const budget = draft.monthly_budget.trim();
  if (budget !== "") {
    const n = parseAmount(budget);
    if (n === null) errors.push({ path: "limits.monthly_budget", message: "An amount of 0 or more (e.g. 25 or 12.50), or blank for no budget" });
    else limits.monthly_budget = n;
  }
  const apps = appsOfDraft(draft.apps);
  const bad = apps.filter((a) => !APP_PATTERN.test(a));
  if (bad.length > 0) errors.push({ path: "limits.apps", message: `Not an app id (owner/alias) or owner/*: ${bad.join(", ")}` });
  else if (apps.length > 0) limits.apps = [...new Set(apps)];
  return { limits, errors };
}

/** Checks a tenant name; blank is allowed only where `blankAllowed` (a key with no tenant is its own). */
export function tenantNameError(name: string, blankAllowed: boolean): string | null {
  if (name === "") return blankAllowed ? null : "A tenant needs a name";
  return TENANT_NAME.test(name) ? null : "1 to 64 letters, digits, '.', '_' or '-'";
}

/** A positive weight from its text; blank is the default (1). */
export function weightOfDraft(text: string): { weight: number | null; error: string | null } {
  const t = text.trim();
  if (t === "") return { weight: null, error: null };
  const n = parseAmount(t);
  if (n === null || n <= 0) return { weight: null, error: "A number above 0 (1 is an equal share)" };
  return { weight: n, error: null };
}

/**
 * Which form field a field error belongs to: `tenant`, `weight`, a limit's name, or "" for the form
 * as a whole. Paths are the body's: `limits.apps[3]` is the apps field's.
 */
export function formFieldOf(path: string): string {
  // PUT /v1/tenants/{name} names a bad name in the path.
  if (path === "path.name") return "name";
  const m = /^(?:limits\.)?([a-z_]+)/.exec(path);
  const name = m?.[1] ?? "";
  if (name === "tenant" || name === "weight" || name === "name") return name;
  return LIMIT_FIELDS.some((f) => f.name === name) && path.startsWith("limits.") ? name : "";
}

/** Field errors grouped by form field (formFieldOf), messages joined per field. */
export function errorsByField(errors: readonly FieldError[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of errors) {
    const field = formFieldOf(e.path);
    const message = field === "" && e.path ? `${e.path}: ${e.message}` : e.message;
    out.set(field, out.has(field) ? `${out.get(field)}; ${message}` : message);
  }
  return out;
}

/** Limits on one line for a table: "4 at once · 60/min · 10 queued · 25/month · apps: darkroom/*", or "none". */
export function describeLimits(limits: LimitsView): string {
  const parts: string[] = [];
  if (limits.max_concurrency !== null) parts.push(`${limits.max_concurrency} at once`);
  if (limits.requests_per_minute !== null) parts.push(`${limits.requests_per_minute}/min`);
  if (limits.max_queued !== null) parts.push(`${limits.max_queued} queued`);
  if (limits.monthly_budget !== null) parts.push(`${limits.monthly_budget}/month`);
  if (limits.apps !== null) parts.push(limits.apps.length === 0 ? "no apps" : `apps: ${limits.apps.join(", ")}`);
  return parts.length > 0 ? parts.join(" · ") : "none";
}
