/**
 * What one finished request bills: the rule behind `X-Fal-Billable-Units` and the cost of its usage.
 * The store's `aggregateUsage` sums by the same rule in SQL (src/store/price-rows.ts); a test holds
 * the two together.
 *
 * fal bills successful outputs only, never server errors or time spent in the queue
 * (docs.fal.ai, Model APIs pricing). So:
 * - SUCCEEDED: the units the app billed (`ctx.bill`), 1 when it billed nothing;
 * - CANCELLED after it started running: what the app billed before it stopped, else 0 (its run time
 *   still counts for a `compute_second` price);
 * - FAILED, or CANCELLED in the queue: nothing.
 * @module
 */
import type { RequestState } from "../core/types.js";

export interface BilledOutcome {
  state: RequestState;
  /** What the app billed; null when it billed nothing. */
  billableUnits: number | null;
  /** How long it ran, ms (0: it never started). */
  runMs: number;
}

/** Whether the request is billed at all. */
export function isBilled(outcome: Pick<BilledOutcome, "state" | "runMs">): boolean {
  return outcome.state === "SUCCEEDED" || (outcome.state === "CANCELLED" && outcome.runMs > 0);
}

/** The request's billable units: what `X-Fal-Billable-Units` says and what a unit price multiplies. */
export function billableUnitsOf(outcome: BilledOutcome): number {
  if (outcome.state === "SUCCEEDED") return outcome.billableUnits ?? 1;
  return isBilled(outcome) ? (outcome.billableUnits ?? 0) : 0;
}

/** Run time of a finished request, measured as its usage record measures it (src/store/rows.ts usageOfRequest). */
export function runMsOf(record: { startedAt: number | null; finishedAt: number | null; cache?: string | null }): number {
  // A reused result (src/reuse/) ran nothing of its own.
  if (record.startedAt === null || record.finishedAt === null || (record.cache ?? null) !== null) return 0;
  return Math.max(0, record.finishedAt - record.startedAt);
}
