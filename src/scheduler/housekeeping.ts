/**
 * The scheduler's periodic tick: what no event announces. Start deadlines that passed in the queue;
 * runners that never finished setup or hold a request past request_timeout (killed); leases renewed
 * for the requests live runners hold; idle runners drained after keep_alive; leases that expired
 * because their holder vanished (another process, a machine lost) taken back; suspects that ended
 * out of this scheduler's sight released; and a pump for any app with work, in case a wake-up was
 * missed.
 * @module
 */
import { PlatformError } from "../core/errors.js";
import { isTerminal, type RequestRecord } from "../core/types.js";
import type { Pool } from "./pool.js";
import { applyOutcome, decideOutcome, terminalWriteFor } from "./run-outcome.js";
import type { SchedulerOptions } from "./scheduler.js";

export interface HousekeepingDeps extends Pick<SchedulerOptions, "store" | "metrics"> {
  leaseMs: number;
  pools: () => Iterable<Pool>;
  pool: (appId: string) => Pool | undefined;
  /** Whether this process still holds the request though no runner reports it (an outcome kept through an outage). */
  holds: (requestId: string) => boolean;
  pump: (appId: string) => void;
  /** A terminal state was written. */
  finished: (record: RequestRecord) => void;
  /** A request went back to the queue. */
  announceQueued: (appId: string) => void;
}

export class Housekeeping {
  readonly #deps: HousekeepingDeps;

  constructor(deps: HousekeepingDeps) {
    this.#deps = deps;
  }

  /** One tick. Throws what the store throws; the caller logs it and ticks again later. */
  async tick(now = Date.now()): Promise<void> {
    await this.expireDeadlines(now);
    const depths = await this.#deps.store.queueDepths();
    for (const pool of this.#deps.pools()) {
      this.#deps.metrics?.queueDepth.set({ app: pool.app.id }, depths.get(pool.app.id) ?? 0);
      this.#watchRunners(pool, now);
      const alive = this.#drainIdle(pool, now);
      const floor = Math.max(pool.app.knobs.min_runners, pool.app.knobs.concurrency_buffer);
      // Also a safety net: a queued request never waits on a wake-up that was missed.
      if (pool.ephemeralQueue.length > 0 || alive < floor || (depths.get(pool.app.id) ?? 0) > 0) this.#deps.pump(pool.app.id);
    }
    await this.#takeBackExpiredLeases(now);
    await this.#releaseEndedSuspects();
  }

  /** Queued requests whose x-fal-request-timeout passed before they could start end with 504. */
  async expireDeadlines(now = Date.now()): Promise<void> {
    const { store } = this.#deps;
    for (const record of await store.expiredStartDeadlines(now)) {
      const error = new PlatformError("ERR_REQUEST_TIMEOUT", { message: "Request could not start before its x-fal-request-timeout deadline" });
      const done = await store.finish(record.id, terminalWriteFor(error));
      if (done) this.#deps.finished(done);
    }
  }

  /** Kills runners past startup_timeout or holding a request past request_timeout; renews the leases of the rest. */
  #watchRunners(pool: Pool, now: number): void {
    const { store, leaseMs, metrics } = this.#deps;
    const knobs = pool.app.knobs;
    for (const runner of pool.runners.values()) {
      if (runner.state === "starting" && now - runner.spawnedAt > knobs.startup_timeout * 1000) {
        pool.lastSetupError = `setup() did not finish within startup_timeout (${knobs.startup_timeout} s)`;
        metrics?.runnerFailures.inc({ app: pool.app.id, reason: "startup_timeout" });
        runner.kill();
        continue;
      }
      for (const a of runner.assignments.values()) {
        if (!a.ephemeral && now - a.startedAt > knobs.request_timeout * 1000 && !a.timedOut) {
          a.timedOut = true;
          metrics?.runnerFailures.inc({ app: pool.app.id, reason: "request_timeout" });
          runner.kill();
        } else if (!a.ephemeral && now - a.leaseRenewedAt > leaseMs / 3) {
          // The process is alive and owns the request: keep its lease fresh.
          a.leaseRenewedAt = now;
          void store.heartbeat(a.requestId, runner.id, leaseMs).catch(() => undefined);
        }
      }
    }
  }

  /** Drains runners idle past keep_alive, never going below min_runners + buffer. Returns how many stay alive. */
  #drainIdle(pool: Pool, now: number): number {
    const knobs = pool.app.knobs;
    const alive = [...pool.runners.values()].filter((r) => r.state === "starting" || r.state === "ready");
    const floor = Math.max(knobs.min_runners, knobs.concurrency_buffer);
    let surplus = alive.length - floor;
    for (const runner of alive) {
      if (surplus <= 0) break;
      if (runner.state === "ready" && runner.assignments.size === 0 && now - runner.idleSince > knobs.keep_alive * 1000) {
        runner.drain();
        surplus -= 1;
      }
    }
    return alive.length;
  }

  /** Expired leases only occur when a lease holder vanished without the exit event (other processes). */
  async #takeBackExpiredLeases(now: number): Promise<void> {
    const { store } = this.#deps;
    for (const record of await store.expiredLeases(now)) {
      const pool = this.#deps.pool(record.appId);
      const held = this.#deps.holds(record.id) || (pool && [...pool.runners.values()].some((r) => r.id === record.leaseOwner && r.alive));
      if (held) continue;
      const guard = record.leaseOwner ? { owner: record.leaseOwner, attempt: record.attempt } : null;
      // A request its client cancelled ends cancelled (run-outcome.ts); retrying it would run what nobody wants.
      const lost = new PlatformError("ERR_RUNNER_DISCONNECTED", { message: "Runner lease expired" });
      const next = await applyOutcome(store, record.id, guard, decideOutcome({ ok: false, error: lost }, record));
      if (next && next.state !== "QUEUED") this.#deps.finished(next);
      else if (next) {
        this.#deps.pump(next.appId);
        this.#deps.announceQueued(next.appId);
      }
    }
  }

  /**
   * A suspect waiting in the queue that ended where the scheduler did not see it (another scheduler
   * on the same store, a store-side expiry) must not keep a runner waiting for it. Running ones end
   * through the scheduler's own outcome path.
   */
  async #releaseEndedSuspects(): Promise<void> {
    for (const pool of this.#deps.pools()) {
      if (pool.suspects.size === 0) continue;
      const running = new Set([...pool.runners.values()].flatMap((r) => [...r.assignments.keys()]));
      for (const group of pool.suspects.waiting((id) => running.has(id))) {
        for (const id of group) {
          const record = await this.#deps.store.get(id);
          if (!record || isTerminal(record.state)) {
            pool.suspects.delete(id);
            this.#deps.pump(pool.app.id);
          }
        }
      }
    }
  }
}
