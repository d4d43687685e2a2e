/**
 * The `tenant` label of per-tenant metrics, with bounded cardinality: the busiest tenants by name, the
 * rest as "other". A label is a Prometheus series for as long as the process lives, and tenant names
 * come from callers' keys, so naming every tenant would let the metrics grow without bound.
 *
 * The first `limit` tenants to finish requests get their own label. After that, a tenant that has
 * finished more requests than the quietest named one takes its place (the quieter one's series stop
 * growing; its further requests count as "other"). At most `2 × limit` names are ever handed out, so
 * churn cannot grow the series either; beyond that the named set stays as it is.
 * @module
 */

export const OTHER_TENANTS = "other";

/** Tenants whose counts are remembered to decide who is busiest; the quietest are forgotten beyond it. */
const TRACKED = 10_000;

export class TenantLabels {
  readonly #limit: number;
  readonly #counts = new Map<string, number>();
  readonly #named = new Set<string>();
  #handedOut = 0;

  constructor(limit: number) {
    this.#limit = Math.max(0, Math.trunc(limit));
  }

  /** Counts one finished request of `tenant` and says which label it goes under. */
  labelOf(tenant: string): string {
    const count = (this.#counts.get(tenant) ?? 0) + 1;
    this.#counts.set(tenant, count);
    if (this.#counts.size > TRACKED) this.#forgetQuietest();
    if (this.#named.has(tenant)) return tenant;
    if (this.#handedOut >= 2 * this.#limit) return OTHER_TENANTS;
    if (this.#named.size < this.#limit) return this.#name(tenant);
    const quietest = this.#quietestNamed();
    if (quietest !== undefined && count > (this.#counts.get(quietest) ?? 0)) {
      this.#named.delete(quietest);
      return this.#name(tenant);
    }
    return OTHER_TENANTS;
  }

  #name(tenant: string): string {
    this.#named.add(tenant);
    this.#handedOut += 1;
    return tenant;
  }

  #quietestNamed(): string | undefined {
    let quietest: string | undefined;
    for (const name of this.#named) if (quietest === undefined || (this.#counts.get(name) ?? 0) < (this.#counts.get(quietest) ?? 0)) quietest = name;
    return quietest;
  }

  /** Drops the quietest tenant that has no label of its own: the one least likely ever to need one. */
  #forgetQuietest(): void {
    let quietest: string | undefined;
    for (const [name, count] of this.#counts) {
      if (this.#named.has(name)) continue;
      if (quietest === undefined || count < (this.#counts.get(quietest) ?? 0)) quietest = name;
    }
    if (quietest !== undefined) this.#counts.delete(quietest);
  }
}
