/**
 * A call to one of fal's hosts (`fal.run`, `queue.fal.run`, `rest.fal.ai`), however it arrived: on
 * the host's own path prefix, or through the proxy's `x-fal-target-url`; and the app lookups the
 * hosts start with.
 * @module
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { RateBudget } from "../auth/request-rate-limiter.js";
import { appsAllow } from "../auth/usage-limits.js";
import { PlatformError } from "../core/errors.js";
import type { AppManifest, EndpointManifest } from "../core/types.js";
import { UnparsedInput } from "../core/unparsed-input.js";
import { DEFAULT_CURRENCY } from "../pricing/price-list.js";
import type { LiveOwner } from "../store/store.js";
import { pathSegments } from "./app-path.js";
import { appAllowed, requirePrincipal, type GatewayContext, type Principal } from "./context.js";
import { checkUnparsedInput } from "./json-body.js";

/** A fal API call, however it arrived: a direct route or the proxy's `x-fal-target-url`. */
export interface FalCall {
  method: string;
  segments: string[];
  query: URLSearchParams;
  request: FastifyRequest;
  reply: FastifyReply;
}

/** The call `url` makes on a fal host; `prefix`, the host's first path segment here, is dropped. */
export function falCallOf(url: URL, request: FastifyRequest, reply: FastifyReply, prefix?: string): FalCall {
  const segments = pathSegments(url.pathname);
  if (prefix !== undefined && segments[0] === prefix) segments.shift();
  return { method: request.method, segments, query: url.searchParams, request, reply };
}

export function findApp(ctx: GatewayContext, appId: string): AppManifest {
  const app = ctx.scheduler.app(appId);
  if (!app) throw new PlatformError("ERR_APP_NOT_FOUND", { message: `Application '${appId}' not found` });
  return app;
}

export function assertAvailable(app: AppManifest): void {
  if (app.unavailable) {
    throw new PlatformError("ERR_APP_UNAVAILABLE", { message: `${app.id} is unavailable: ${app.unavailable.reason}. Remedy: ${app.unavailable.remedy}` });
  }
}

export function assertAppAllowed(call: FalCall, app: AppManifest): void {
  if (!appAllowed(requirePrincipal(call.request), app.id)) {
    throw new PlatformError("ERR_FORBIDDEN", { message: `This token is not valid for ${app.id}` });
  }
}

/** Refuses a call to an app outside the `apps` limit of the caller's key or of its tenant (both must allow it). */
export function assertAppWithinLimits(call: FalCall, app: AppManifest): void {
  assertAppWithinLimitsOf(requirePrincipal(call.request), app);
}

/** assertAppWithinLimits for a caller known otherwise (a realtime socket). */
export function assertAppWithinLimitsOf(principal: Principal, app: AppManifest): void {
  if (appsAllow(principal.limits.apps, app.id)) return;
  const whose = appsAllow(principal.keyLimits.apps, app.id) ? `tenant '${principal.tenant}'` : "this key";
  throw new PlatformError("ERR_FORBIDDEN", { message: `${app.id} is not in the apps limit of ${whose}` });
}

/** Who holds a numeric limit over a call: its key, its tenant, or both (each is checked apart). */
interface LimitHolder {
  owner: LiveOwner;
  /** A name for counters kept per holder. */
  name: string;
  limit: number;
  /** How a refusal names the holder. */
  whose: string;
}

function limitHolders(principal: Principal, field: "monthlyBudget" | "maxQueued" | "requestsPerMinute"): LimitHolder[] {
  const holders: LimitHolder[] = [];
  const ofKey = principal.keyLimits[field];
  if (ofKey !== undefined) holders.push({ owner: { keyId: principal.keyId }, name: `key:${principal.keyId}`, limit: ofKey, whose: "This key" });
  const ofTenant = principal.tenantLimits[field];
  if (ofTenant !== undefined) holders.push({ owner: { tenant: principal.tenant }, name: `tenant:${principal.tenant}`, limit: ofTenant, whose: `Tenant '${principal.tenant}'` });
  return holders;
}

/**
 * Refuses a call (403 budget_exhausted) once its key or its tenant has spent its `monthly_budget` this
 * calendar month. Spend is summed from finished requests and reread every few seconds
 * (pricing/monthly-spend.ts): what is still running is not in it yet.
 */
export async function assertWithinBudget(ctx: GatewayContext, principal: Principal): Promise<void> {
  for (const check of limitHolders(principal, "monthlyBudget")) {
    const { spent, monthEndsAt } = await ctx.spend.of(check.owner);
    if (spent >= check.limit) {
      throw new PlatformError("ERR_BUDGET_EXHAUSTED", {
        message: `${check.whose} has spent ${spent.toFixed(4)} ${DEFAULT_CURRENCY} of its monthly budget of ${check.limit} ${DEFAULT_CURRENCY}; calls pass again from ${new Date(monthEndsAt).toISOString()} or when the budget is raised`,
      });
    }
  }
}

/**
 * Refuses a call (429, fal's queue-full shape) while its key or its tenant already has as many
 * requests waiting as its `max_queued` limit allows, across all apps. Counting stops at the limit, so
 * the check costs at most the limit however long the queue is. Two submits checked at the same moment
 * can both pass: the limit may be exceeded by the number of submits in flight at once.
 */
export async function assertQueueRoom(ctx: GatewayContext, principal: Principal): Promise<void> {
  for (const check of limitHolders(principal, "maxQueued")) {
    if ((await ctx.store.countLive(check.owner, "QUEUED", check.limit)) >= check.limit) {
      throw new PlatformError("ERR_QUEUE_FULL", { message: `${check.whose} has ${check.limit} requests waiting, its max_queued limit; submit more once some have started` });
    }
  }
}

/**
 * Counts a call that is about to be accepted against its key's and its tenant's requests per minute,
 * or refuses it with 429 and `Retry-After` when either is spent (then neither counts it). The counts
 * are this gateway process's own (request-rate-limiter.ts).
 */
export function countAgainstRequestRate(ctx: GatewayContext, principal: Principal): void {
  if (principal.limits.requestsPerMinute === undefined) return;
  const budgets: (RateBudget & { whose: string })[] = limitHolders(principal, "requestsPerMinute");
  if (budgets.length === 0) return;
  const decision = ctx.keys.requestRates.take(budgets);
  if (decision.admitted) return;
  throw new PlatformError("ERR_RATE_LIMITED", {
    message: `${decision.budget.whose} may make ${decision.budget.limit} requests per minute; try again in ${decision.retryAfterSeconds} s`,
    headers: { "retry-after": String(decision.retryAfterSeconds) },
  });
}

/**
 * The limits a call is admitted under, last of its checks: the monthly budget, the room in the queue,
 * then the request rate (counted only for a call otherwise accepted). A caller without a budget or a
 * queue limit, the common case, passes without waiting on anything: null is returned then, and
 * otherwise the promise of the checks that read counts.
 */
export function admitCall(ctx: GatewayContext, principal: Principal): Promise<void> | null {
  if (principal.limits.monthlyBudget === undefined && principal.limits.maxQueued === undefined) {
    countAgainstRequestRate(ctx, principal);
    return null;
  }
  return (async () => {
    await assertWithinBudget(ctx, principal);
    await assertQueueRoom(ctx, principal);
    countAgainstRequestRate(ctx, principal);
  })();
}

export function findEndpoint(app: AppManifest, path: string, kinds: EndpointManifest["kind"][]): EndpointManifest | undefined {
  return app.endpoints.find((e) => e.path === path && kinds.includes(e.kind));
}

/**
 * Validates an app call's input against its endpoint's schema: at once when it was parsed, on a body
 * worker when it is a large input kept unparsed (json-body.ts). Throws fal's 422.
 */
export async function validateAppInput(ctx: GatewayContext, endpoint: EndpointManifest, input: unknown): Promise<void> {
  if (input instanceof UnparsedInput) return checkUnparsedInput(input, endpoint.input);
  ctx.validator.validate(endpoint.input, input);
}
