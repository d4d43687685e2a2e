/**
 * Usage limits and tenant names on the wire: the zod schemas the keys and tenants routes read bodies
 * with (snake_case, unknown fields refused rather than ignored, so a misspelt limit is never silently
 * no limit), the field errors they refuse with, and the view they answer with.
 * @module
 */
import { z } from "zod";
import type { FieldError } from "../core/errors.js";
import type { UsageLimits } from "../core/tenants.js";
import { APP_PATTERN } from "./usage-limits.js";

/** A tenant's name: what keys name in `tenant` and `/v1/tenants/{name}` addresses. */
export const TENANT_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export const TenantNameBody = z.string().regex(TENANT_NAME, "1 to 64 letters, digits, '.', '_' or '-'");

/** Most entries in an `apps` list. */
export const MAX_APPS_ENTRIES = 100;

const positiveInteger = z.number().int().positive();

/** `limits` as clients send it. A field left out or null sets no limit. */
export const LimitsBody = z
  .object({
    max_concurrency: positiveInteger.nullish(),
    requests_per_minute: positiveInteger.nullish(),
    apps: z
      .array(z.string().regex(APP_PATTERN, "an app id (owner/alias) or all of an owner's apps (owner/*)"))
      .max(MAX_APPS_ENTRIES)
      .nullish(),
    monthly_budget: z.number().nonnegative().nullish(),
    max_queued: positiveInteger.nullish(),
  })
  .strict();

export type LimitsBodyValue = z.infer<typeof LimitsBody>;

/** The limits a parsed `limits` body sets. */
export function limitsFromBody(body: LimitsBodyValue): UsageLimits {
  const limits: UsageLimits = {};
  if (body.max_concurrency != null) limits.maxConcurrency = body.max_concurrency;
  if (body.requests_per_minute != null) limits.requestsPerMinute = body.requests_per_minute;
  if (body.apps != null) limits.apps = [...new Set(body.apps)];
  if (body.monthly_budget != null) limits.monthlyBudget = body.monthly_budget;
  if (body.max_queued != null) limits.maxQueued = body.max_queued;
  return limits;
}

/** Limits as the API shows them: every field, null where no limit is set (the form a body takes back). */
export function limitsView(limits: UsageLimits): Record<string, unknown> {
  return {
    max_concurrency: limits.maxConcurrency ?? null,
    requests_per_minute: limits.requestsPerMinute ?? null,
    apps: limits.apps ?? null,
    monthly_budget: limits.monthlyBudget ?? null,
    max_queued: limits.maxQueued ?? null,
  };
}

/**
 * A zod error as fal's 422 `detail[]`, rooted at `root` (`["body"]`). An unknown field gets its own
 * entry naming it, as FastAPI's `extra_forbidden` does (the input validator answers the same).
 */
export function fieldErrorsOf(error: z.ZodError, root: (string | number)[] = ["body"]): FieldError[] {
  return error.issues.flatMap((issue): FieldError[] => {
    const loc = [...root, ...issue.path.map((p) => (typeof p === "symbol" ? String(p) : p))];
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ loc: [...loc, key], msg: "Extra inputs are not permitted", type: "extra_forbidden" }));
    }
    return [{ loc, msg: issue.message, type: issue.code }];
  });
}
