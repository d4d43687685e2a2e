/**
 * Requests per minute (`UsageLimits.requestsPerMinute`): a count per budget name (a key's, a
 * tenant's) in this process's memory. The count is per gateway process: gateways sharing a database
 * do not share counts, so a caller whose calls are spread over N gateways may make up to N times its
 * limit. (A shared count would cost a database write per submit, which is what this avoids.)
 *
 * Each budget is a sliding one-minute window, estimated from two fixed windows: the current one's
 * count plus the previous one's, weighted by the part of it the sliding window still covers
 * (Cloudflare's "sliding window counter"). That is two numbers per name, and unlike a plain fixed
 * window it lets no burst of twice the limit through across a window boundary.
 *
 * Memory stays bounded: a name's entry is dropped once both its windows are past, so only names
 * that counted a call in the last two windows are held.
 * @module
 */

export interface RateBudget {
  /** Whose calls it counts, e.g. `key:dk_…` or `tenant:acme`; budgets of one name share one count. */
  name: string;
  /** Calls allowed per window. */
  limit: number;
}

export type RateDecision<B extends RateBudget = RateBudget> =
  | { admitted: true }
  /** Nothing was counted; `budget` is the one with the longest wait. */
  | { admitted: false; budget: B; retryAfterSeconds: number };

export interface RequestRateLimiterOptions {
  /** Default one minute. */
  windowMs?: number;
  /** Clock, unix ms. */
  now?: () => number;
}

interface Counts {
  /** Start of the current fixed window (a multiple of the window length). */
  start: number;
  previous: number;
  current: number;
}

export class RequestRateLimiter {
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #counts = new Map<string, Counts>();
  #sweptAt: number;

  constructor(options: RequestRateLimiterOptions = {}) {
    this.#windowMs = options.windowMs ?? 60_000;
    this.#now = options.now ?? Date.now;
    this.#sweptAt = this.#now();
  }

  /** Names holding counts now (for tests of the memory bound). */
  get size(): number {
    return this.#counts.size;
  }

  /**
   * Counts one call against every budget, or against none when any of them is spent: a refused call
   * uses up nothing, so a caller refused by its tenant's budget keeps its key's.
   */
  take<B extends RateBudget>(budgets: readonly B[]): RateDecision<B> {
    const now = this.#now();
    this.#sweep(now);
    let refusal: { budget: B; waitMs: number } | null = null;
    for (const budget of budgets) {
      const counts = this.#rolled(budget.name, now);
      const waitMs = this.#waitMs(counts, budget.limit, now);
      if (waitMs > 0 && (!refusal || waitMs > refusal.waitMs)) refusal = { budget, waitMs };
    }
    if (refusal) return { admitted: false, budget: refusal.budget, retryAfterSeconds: Math.max(1, Math.ceil(refusal.waitMs / 1000)) };
    for (const budget of budgets) {
      const counts = this.#rolled(budget.name, now);
      counts.current += 1;
      this.#counts.set(budget.name, counts);
    }
    return { admitted: true };
  }

  /** The name's counts moved on to the window `now` falls in (fresh ones for a name not held). */
  #rolled(name: string, now: number): Counts {
    const start = now - (now % this.#windowMs);
    const counts = this.#counts.get(name);
    if (!counts) return { start, previous: 0, current: 0 };
    if (counts.start !== start) {
      counts.previous = counts.start + this.#windowMs === start ? counts.current : 0;
      counts.current = 0;
      counts.start = start;
    }
    return counts;
  }

  /** The calls the sliding window ending at `now` holds, by the estimate. */
  #estimate(counts: Counts, now: number): number {
    const elapsed = (now - counts.start) / this.#windowMs;
    return counts.previous * (1 - elapsed) + counts.current;
  }

  /** How long until one more call fits under `limit` (0: it fits now), if no other call is counted meanwhile. */
  #waitMs(counts: Counts, limit: number, now: number): number {
    if (this.#estimate(counts, now) + 1 <= limit) return 0;
    const room = limit - 1;
    const elapsed = now - counts.start;
    // While this window's own calls leave room, the previous window's share shrinks until it fits
    // (it does not fit now, so the previous window has calls)...
    if (counts.current <= room) return this.#windowMs * (1 - (room - counts.current) / counts.previous) - elapsed;
    // ...otherwise not in this window: in the next one, this window's calls are the share that shrinks.
    return this.#windowMs - elapsed + this.#windowMs * (1 - room / counts.current);
  }

  /** Drops names whose two windows are both past, at most once a window. */
  #sweep(now: number): void {
    if (now - this.#sweptAt < this.#windowMs) return;
    this.#sweptAt = now;
    for (const [name, counts] of this.#counts) {
      if (now - counts.start >= 2 * this.#windowMs) this.#counts.delete(name);
    }
  }
}
