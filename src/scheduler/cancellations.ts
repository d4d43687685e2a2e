/**
 * Cancellations of running requests on local runners: the runner is told to stop the request, and
 * killed should its handler ignore the AbortSignal for longer than the grace period. The runner's
 * exit then finishes the request as cancelled (run-outcome.ts).
 * @module
 */
import type { RequestRecord } from "../core/types.js";
import type { Pool } from "./pool.js";

export interface CancellationsDeps {
  /** How long a cancelled running request may take to stop before its runner is killed. */
  graceMs: number;
  pool: (appId: string) => Pool | undefined;
}

export class Cancellations {
  readonly #deps: CancellationsDeps;
  /** Requests told to stop, by id: the kill that follows unless they end first. */
  readonly #timers = new Map<string, NodeJS.Timeout>();

  constructor(deps: CancellationsDeps) {
    this.#deps = deps;
  }

  /** Tells the request's runner to stop it; a request not yet dispatched is signalled when it is. */
  signal(record: RequestRecord): void {
    const pool = this.#deps.pool(record.appId);
    const runner = pool && [...pool.runners.values()].find((r) => r.assignments.has(record.id));
    if (!runner) return; // not yet dispatched: dispatch.ts signals it when it is
    runner.send({ t: "cancel", requestId: record.id });
    if (this.#timers.has(record.id)) return;
    const timer = setTimeout(() => {
      this.#timers.delete(record.id);
      // The handler ignored its AbortSignal: stop the runner; its exit finishes the request as cancelled.
      if (runner.assignments.has(record.id)) runner.kill();
    }, this.#deps.graceMs);
    timer.unref();
    this.#timers.set(record.id, timer);
  }

  /** Whether the request was told to stop and has not ended since. */
  pending(requestId: string): boolean {
    return this.#timers.has(requestId);
  }

  /** The request ended (or its runner exited): no kill is needed any more. */
  clear(requestId: string): void {
    const t = this.#timers.get(requestId);
    if (t) clearTimeout(t);
    this.#timers.delete(requestId);
  }

  /** Drops every pending kill (the scheduler stopped). */
  stop(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
  }
}
