/**
 * How many runners an app's pool wants: the arithmetic of the scheduler's scaling, apart from
 * processes and the store so that it can be tested alone. The pool starts runners up to this count
 * (local-runners.ts); idle ones above min_runners are drained by housekeeping after keep_alive.
 * @module
 */
import type { AppKnobs } from "../core/types.js";
import type { ClaimPlan } from "./isolation.js";

export interface ScalingInput {
  knobs: Pick<AppKnobs, "min_runners" | "max_runners" | "max_multiplexing" | "concurrency_buffer">;
  /** For each alive runner (starting or ready), how many of the requests it runs are not suspects. */
  inFlight: readonly number[];
  /** Realtime calls waiting for a runner slot. */
  waitingCalls: number;
  /**
   * The app's queue depth in the store, or null when the pump's last claim came back short
   * (`claimedAll`): the queue had no other work for this pool then, so it was not read.
   */
  queueDepth: number | null;
  /** What the claim plan says of suspects (isolation.ts). */
  plan: Pick<ClaimPlan, "except" | "isolating" | "waitingGroups" | "stranded">;
}

/** The number of runners the pool should have, between min_runners and max_runners. */
export function desiredRunners(input: ScalingInput): number {
  const { knobs, inFlight, plan } = input;
  let queued = input.waitingCalls;
  // Queued suspects are not ordinary work: their groups are counted below.
  if (input.queueDepth !== null) queued += Math.max(0, input.queueDepth - plan.except.length);
  const running = inFlight.reduce((sum, n) => sum + n, 0);
  // Suspects count apart: each group of them waiting or running needs a runner of its own.
  const needed = Math.ceil((queued + running) / knobs.max_multiplexing) + plan.isolating + plan.waitingGroups + knobs.concurrency_buffer;
  // Suspects that no runner will come free for get one more.
  return Math.min(knobs.max_runners, Math.max(knobs.min_runners, needed, plan.stranded ? inFlight.length + 1 : 0));
}
