/**
 * What the gateway's routes share: configuration and the services they call.
 * @module
 */
import type { FastifyRequest } from "fastify";
import type { AuthenticatedKey, KeyService } from "../auth/keys.js";
import type { Tenancy } from "../auth/tenants.js";
import type { TokenService } from "../auth/tokens.js";
import type { MonthlySpend } from "../pricing/monthly-spend.js";
import type { Config } from "../core/config.js";
import { PlatformError } from "../core/errors.js";
import type { AllowList } from "../net/allow-list.js";
import type { Metrics } from "../observability/metrics.js";
import type { Scheduler } from "../scheduler/scheduler.js";
import type { UrlSigner } from "../storage/signed-url.js";
import type { StorageDriver } from "../storage/storage.js";
import type { Store } from "../store/store.js";
import type { SigningKeys } from "../webhooks/signing-keys.js";
import type { InputValidator } from "./input-validator.js";

export interface GatewayContext {
  config: Config;
  store: Store;
  storage: StorageDriver;
  scheduler: Scheduler;
  keys: KeyService;
  tokens: TokenService;
  urlSigner: UrlSigner;
  validator: InputValidator;
  signingKeys: SigningKeys;
  allow: AllowList;
  metrics: Metrics;
  /** What tenants and keys spent this month, for `monthly_budget` checks. */
  spend: MonthlySpend;
  startedAt: number;
  /** A tenant's Standard Webhooks secret (`whsec_…`), which its Replicate-style webhooks are signed with. */
  webhookSecretOf: (tenant: string) => string;
}

/**
 * Who made a request: an API key, or a short-lived token issued for one (which belongs to the key's
 * tenant and is held to its limits, as the key is), and what its tenant and limits are.
 */
export interface Principal extends Tenancy {
  keyId: string;
  /** `runner`: a runner token, accepted only by the runner API (`/runner/v1/`). */
  scope: "admin" | "api" | "runner";
  /** Set for tokens: the app aliases the token may call. */
  allowedApps: string[] | null;
}

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** The principal of a verified key or token: its scope, its token's apps, its tenant and limits. */
export async function principalOf(keys: KeyService, key: AuthenticatedKey): Promise<Principal> {
  return {
    keyId: key.id,
    scope: key.scope,
    allowedApps: key.via === "token" ? (key.token?.allowed_apps ?? []) : null,
    // A token is the key's, tenant and limits included: the key record was read to verify it.
    ...(await keys.tenants.tenancyOf(key)),
  };
}

export function requirePrincipal(request: FastifyRequest): Principal {
  if (!request.principal) throw new PlatformError("ERR_UNAUTHORIZED");
  return request.principal;
}

export function requireAdmin(request: FastifyRequest): Principal {
  const principal = requirePrincipal(request);
  if (principal.scope !== "admin" || principal.allowedApps !== null) {
    throw new PlatformError("ERR_FORBIDDEN", { message: "This needs an admin key" });
  }
  return principal;
}

/** Whether the principal may call `appId`: keys any app, tokens the apps (alias or full id) they were issued for. */
export function appAllowed(principal: Principal, appId: string): boolean {
  if (principal.allowedApps === null) return true;
  const alias = appId.split("/")[1] ?? appId;
  return principal.allowedApps.includes(alias) || principal.allowedApps.includes(appId);
}

/** Whether the principal sees every key's requests: an admin key, never a token made from one. */
export function seesAllRequests(principal: Principal): boolean {
  return principal.scope === "admin" && principal.allowedApps === null;
}

/**
 * Whether the principal may see (read, stream, cancel) a request: admin keys see all, keys their own,
 * tokens their key's requests of the apps they were issued for — a token scoped to one app must not
 * reach the key's other requests.
 */
export function canSeeRequest(principal: Principal, record: { keyId: string | null; appId: string }): boolean {
  if (seesAllRequests(principal)) return true;
  return principal.keyId === record.keyId && appAllowed(principal, record.appId);
}
