/**
 * Tenants: a tenant groups keys (a team, a customer) that share the queue as one under fair share
 * and are held to one set of limits. A key created without a tenant is a tenant of its own, named
 * after the key (tenantOf).
 * @module
 */

/** What a tenant or a key may use; a limit left out is no limit. Where a key and its tenant both set one, the stricter holds. */
export interface UsageLimits {
  /** Requests running at once; more wait in the queue. */
  maxConcurrency?: number;
  /** Requests accepted per minute; beyond it, 429 with Retry-After. */
  requestsPerMinute?: number;
  /** App ids or prefixes (`darkroom/*`) that may be called; others are refused with 403. */
  apps?: string[];
  /** Spend per calendar month (UTC) in the pricing currency; once spent, calls are refused. */
  monthlyBudget?: number;
  /** Requests waiting in the queue at once; beyond it, 429. */
  maxQueued?: number;
}

export interface TenantRecord {
  name: string;
  /** Share of runner slots relative to other tenants with queued requests (1 = an equal share). */
  weight: number;
  limits: UsageLimits;
  createdAt: number;
  updatedAt: number;
}

/** The weight of a tenant nobody configured. */
export const DEFAULT_TENANT_WEIGHT = 1;

/** A request's tenant: its key's tenant, the key itself when it has none, "" for a request without a key. */
export function tenantOf(key: { id: string; tenant: string | null } | null): string {
  if (!key) return "";
  return key.tenant ?? key.id;
}
