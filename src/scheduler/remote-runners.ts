/**
 * The scheduler's side of remote runners (the runner protocol over HTTP, `darkroom runner`): the
 * apps they serve, claims and releases under the runner's own id, and the events and outcomes they
 * report. Any gateway on the store may serve any remote runner: the lease lives in the store.
 * @module
 */
import type { AppManifest, RequestRecord } from "../core/types.js";
import type { ClaimPlan } from "./isolation.js";
import { recordRecentError, type Pool } from "./pool.js";
import type { RequestEvent, RequestEvents } from "./request-events.js";
import { applyOutcome, decideOutcome, type RunEnd } from "./run-outcome.js";
import type { SchedulerOptions } from "./scheduler.js";

export interface RemoteRunnersDeps extends Pick<SchedulerOptions, "store" | "metrics" | "logger"> {
  /** The lease a claim takes when the runner names none. */
  leaseMs: number;
  events: RequestEvents;
  pool: (appId: string) => Pool | undefined;
  /** Gives the app a pool of its own. */
  addPool: (app: AppManifest) => void;
  /** True once the scheduler stops: nothing is claimed any more. */
  stopping: () => boolean;
  /** What each runner of the pool may claim now (dispatch.ts). */
  plan: (pool: Pool) => ClaimPlan;
  pump: (appId: string) => void;
  /** A request went (back) into the queue, or an app was registered. */
  announceQueued: (appId: string) => void;
  /** A terminal state was written. */
  finished: (record: RequestRecord) => void;
}

export class RemoteRunners {
  readonly #deps: RemoteRunnersDeps;

  constructor(deps: RemoteRunnersDeps) {
    this.#deps = deps;
  }

  /**
   * Adds an app that a remote runner serves and this gateway does not load itself (a Python app, say),
   * so that its requests are accepted here. Its pool never spawns runners. An app already known keeps
   * its manifest.
   */
  addRemoteApp(manifest: AppManifest): void {
    if (this.#deps.pool(manifest.id)) return;
    this.#deps.addPool({ ...manifest, knobs: { ...manifest.knobs, min_runners: 0 }, remote: true });
  }

  /**
   * A remote runner described an app no gateway loads: serve it here, save it so every gateway on
   * the store serves it (also once its runners are gone, so queued work can scale them back up), and
   * tell the other gateways, which read it from the store when a wake-up names an app they lack.
   */
  async registerRemoteApp(manifest: AppManifest): Promise<void> {
    const known = this.#deps.pool(manifest.id);
    if (known && known.app.remote !== true) return;
    if (known) known.app = { ...manifest, knobs: { ...manifest.knobs, min_runners: 0 }, remote: true };
    else this.addRemoteApp(manifest);
    await this.#deps.store.saveRemoteApp({ id: manifest.id, manifest: JSON.stringify({ ...manifest, remote: true }), updatedAt: Date.now() });
    this.#deps.announceQueued(manifest.id);
  }

  /** Adds the remote apps other gateways saved that this one does not serve yet. */
  async loadRemoteApps(): Promise<void> {
    for (const saved of await this.#deps.store.listRemoteApps()) {
      if (this.#deps.pool(saved.id)) continue;
      try {
        this.addRemoteApp(JSON.parse(saved.manifest) as AppManifest);
      } catch (err) {
        this.#deps.logger?.warn({ err, app: saved.id }, "a saved remote app has an unreadable manifest");
      }
    }
  }

  /**
   * Claims up to `slots` requests of `appId` for a remote runner. Any gateway may serve any remote
   * runner: the lease lives in the store under the runner's id.
   */
  async claimForRemote(appId: string, runnerId: string, slots: number, leaseMs = this.#deps.leaseMs): Promise<RequestRecord[]> {
    if (this.#deps.stopping()) return [];
    // Suspects of this gateway's runners run apart, on those runners: a remote runner multiplexes.
    const pool = this.#deps.pool(appId);
    const except = pool && pool.suspects.size > 0 ? this.#deps.plan(pool).except : [];
    const claimed = await this.#deps.store.claimMany(appId, runnerId, leaseMs, slots, undefined, except.length > 0 ? { except } : undefined);
    for (const record of claimed) this.#deps.events.emit(record.id, { type: "state", record });
    return claimed;
  }

  /** Puts back claims a remote runner never received, at the same attempt, and wakes the runners. */
  async releaseRemote(records: RequestRecord[], runnerId: string): Promise<void> {
    for (const record of records) {
      const back = await this.#deps.store.release(record.id, { owner: runnerId, attempt: record.attempt });
      if (back) this.#deps.events.emit(back.id, { type: "state", record: back });
    }
    const appId = records[0]?.appId;
    if (appId) {
      this.#deps.pump(appId);
      this.#deps.announceQueued(appId);
    }
  }

  /** A remote runner's log line, progress or partial output for a request it holds. */
  async remoteEvent(requestId: string, event: Extract<RequestEvent, { type: "log" | "progress" | "partial" }>): Promise<void> {
    // As for local runners: a log event goes out once the line is stored (status streams re-read logs).
    if (event.type === "log") await this.#deps.store.appendLogs(requestId, [event.log]);
    this.#deps.events.emit(requestId, event);
  }

  /**
   * A remote runner's outcome for a request it holds under `guard`. Returns the resulting record, or
   * null when the guard no longer matches (the lease was lost and the request retried or ended).
   */
  async remoteOutcome(
    requestId: string,
    guard: { owner: string; attempt: number },
    outcome: RunEnd,
  ): Promise<RequestRecord | null> {
    const decision = decideOutcome(outcome);
    const record = await applyOutcome(this.#deps.store, requestId, guard, decision);
    if (!outcome.ok && decision.action === "finish" && outcome.error.status >= 500) {
      const pool = record ? this.#deps.pool(record.appId) : undefined;
      if (pool) recordRecentError(pool, requestId, outcome.error.message);
    }
    if (record && record.state !== "QUEUED") {
      if (record.startedAt !== null && record.finishedAt !== null) this.#deps.metrics?.runDuration.observe({ app: record.appId }, (record.finishedAt - record.startedAt) / 1000);
      this.#deps.finished(record);
    } else if (record) {
      this.#deps.pump(record.appId);
      this.#deps.announceQueued(record.appId);
    }
    return record;
  }
}
