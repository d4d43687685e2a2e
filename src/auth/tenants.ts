/**
 * The tenant directory: a tenant's weight and limits as each authenticated call needs them, from a
 * short-lived in-process cache over the store, so that a submit does not pay a database round trip
 * for its tenant. A tenant nobody configured has weight DEFAULT_TENANT_WEIGHT and no limits.
 *
 * Writes through `put` take effect at once in this process; on a gateway sharing the database they
 * take effect within `ttlMs`.
 * @module
 */
import { DEFAULT_TENANT_WEIGHT, tenantOf, type TenantRecord, type UsageLimits } from "../core/tenants.js";
import type { ApiKeyRecord, Store, TenantSettings } from "../store/store.js";
import { mergeLimits } from "./usage-limits.js";

/** What a caller is held to by its key and that key's tenant. */
export interface Tenancy {
  /** The key's tenant (tenantOf): its own id when it names none. */
  tenant: string;
  /** The tenant's share of runner slots. */
  weight: number;
  /** The key's limits and the tenant's merged: the stricter of each (usage-limits.ts). */
  limits: UsageLimits;
  /**
   * Each side's own limits. Counted limits (requests per minute) are counted apart: the key's over
   * its own calls, the tenant's over the calls of all its keys.
   */
  keyLimits: UsageLimits;
  tenantLimits: UsageLimits;
}

export interface TenantDirectoryOptions {
  store: Store;
  /** How long a tenant read from the store is reused, ms. Default 5 s. */
  ttlMs?: number;
  now?: () => number;
}

/** Names cached at most: tenant names come from key records, so this is far above real use. */
const MAX_CACHED_TENANTS = 10_000;

export class TenantDirectory {
  readonly #store: Store;
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** The read itself is cached, so that concurrent calls of one tenant share one store read. */
  readonly #cache = new Map<string, { settings: Promise<TenantSettings>; at: number }>();
  /** The tenancy last made for a key record's limits (held as long as that record is). */
  readonly #tenancies = new WeakMap<UsageLimits, { settings: TenantSettings; tenancy: Tenancy }>();

  constructor(options: TenantDirectoryOptions) {
    this.#store = options.store;
    this.#ttlMs = options.ttlMs ?? 5000;
    this.#now = options.now ?? Date.now;
  }

  /** A tenant's weight and limits; those of an unconfigured tenant when the store has none. */
  settingsOf(name: string): Promise<TenantSettings> {
    const now = this.#now();
    const cached = this.#cache.get(name);
    if (cached && now - cached.at < this.#ttlMs) return cached.settings;
    const settings = this.#store.getTenant(name).then((record) => (record ? settingsOfRecord(record) : unconfigured(name)));
    // A failed read is not kept: the next call tries the store again.
    void settings.catch(() => {
      if (this.#cache.get(name)?.settings === settings) this.#cache.delete(name);
    });
    if (this.#cache.size >= MAX_CACHED_TENANTS) this.#cache.clear();
    this.#cache.set(name, { settings, at: now });
    return settings;
  }

  /** What `key` is held to: its tenant, the tenant's weight, and the two sets of limits. */
  async tenancyOf(key: Pick<ApiKeyRecord, "id" | "tenant" | "limits">): Promise<Tenancy> {
    const tenant = tenantOf(key);
    const settings = await this.settingsOf(tenant);
    // Every call of a key asks this with the same cached key record and, for seconds, the same
    // settings: the merge is made once for each pair, not once a call.
    const known = this.#tenancies.get(key.limits);
    if (known && known.settings === settings && known.tenancy.tenant === tenant) return known.tenancy;
    const tenancy: Tenancy = Object.freeze({ tenant, weight: settings.weight, limits: Object.freeze(mergeLimits(key.limits, settings.limits)), keyLimits: key.limits, tenantLimits: settings.limits });
    this.#tenancies.set(key.limits, { settings, tenancy });
    return tenancy;
  }

  /** Creates or replaces a tenant's settings; this process sees them from now on. */
  async put(settings: TenantSettings): Promise<TenantRecord> {
    const record = await this.#store.putTenant(settings, this.#now());
    this.#cache.set(record.name, { settings: Promise.resolve(settingsOfRecord(record)), at: this.#now() });
    return record;
  }
}

function settingsOfRecord(record: TenantRecord): TenantSettings {
  return { name: record.name, weight: record.weight, limits: record.limits };
}

function unconfigured(name: string): TenantSettings {
  return { name, weight: DEFAULT_TENANT_WEIGHT, limits: {} };
}
