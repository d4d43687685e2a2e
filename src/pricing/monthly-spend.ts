/**
 * What a tenant or a key has spent this calendar month (UTC), for `monthly_budget` checks at submit.
 * Spend is summed from usage (finished requests, priced at the price of their time); each owner's sum
 * is reused for a few seconds, so a burst of submits costs one aggregate query, not one each.
 *
 * What this cannot see: requests still queued or running, and what finished within the reuse window.
 * A budget can therefore be overrun by that much; it is a limit on spend, not a reservation of it.
 * @module
 */
import type { LiveOwner } from "../store/store.js";
import { DEFAULT_CURRENCY } from "./price-list.js";
import { periodStart } from "./timeframes.js";
import { spendOf, type UsageSource } from "./usage-report.js";

/** How long one owner's sum is reused, ms. */
const REUSE_MS = 5_000;
/** Owners remembered at most; the map is emptied beyond it (owners come from key records). */
const MAX_OWNERS = 10_000;

export interface MonthSpend {
  /** Spent this month in DEFAULT_CURRENCY (a budget is in the pricing currency). */
  spent: number;
  /** When the month ends (UTC): the budget is whole again from then. */
  monthEndsAt: number;
}

export class MonthlySpend {
  readonly #source: UsageSource;
  readonly #now: () => number;
  readonly #cache = new Map<string, { at: number; monthStart: number; spent: Promise<number> }>();

  constructor(source: UsageSource, now: () => number = Date.now) {
    this.#source = source;
    this.#now = now;
  }

  async of(owner: LiveOwner): Promise<MonthSpend> {
    const now = this.#now();
    const monthStart = periodStart(now, "month");
    const monthEndsAt = nextMonth(monthStart);
    const name = "tenant" in owner ? `tenant:${owner.tenant}` : `key:${owner.keyId}`;
    const cached = this.#cache.get(name);
    if (cached && cached.monthStart === monthStart && now - cached.at < REUSE_MS) return { spent: await cached.spent, monthEndsAt };
    const filter = "tenant" in owner ? { endpoints: null, tenant: owner.tenant } : { endpoints: null, keyId: owner.keyId };
    const spent = spendOf(this.#source, monthStart, now + 1, filter).then((byCurrency) => byCurrency.get(DEFAULT_CURRENCY) ?? 0);
    // A failed read is not kept: the next submit asks the store again.
    void spent.catch(() => {
      if (this.#cache.get(name)?.spent === spent) this.#cache.delete(name);
    });
    if (this.#cache.size >= MAX_OWNERS) this.#cache.clear();
    this.#cache.set(name, { at: now, monthStart, spent });
    return { spent: await spent, monthEndsAt };
  }
}

function nextMonth(monthStart: number): number {
  const start = new Date(monthStart);
  return Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1);
}
