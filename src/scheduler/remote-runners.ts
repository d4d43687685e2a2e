/**
 * The scheduler's side of remote runners (the runner protocol over HTTP, `darkroom runner`): the
 * apps they serve, claims and releases under the runner's own id, and the events and outcomes they
 * report. Any gateway on the store may serve any remote runner: the lease lives in the store.
 * @module
 */
import type { AppManifest, RequestRecord } from "../core/types.js";
import { COLD_START_PHASES, phaseMs, type ColdStart } from "./cold-start.js";
import type { ClaimPlan } from "./isolation.js";
import { recordColdStart, recordRecentError, type Pool } from "./pool.js";
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

/** A remote runner's start as it measured it (its own clock, so only durations): the registration's `start`. */
export interface RemoteStartPhases {
  /** From the process's start to its runtime loaded (Python or Node, and the runner's modules). */
  runtime_ms: number;
  import_ms: number;
  setup_ms: number;
  /** From the process's start to sending the registration. */
  ready_ms: number;
}

/** Remote runners whose first request is awaited, at most: the oldest are forgotten beyond it. */
const FIRST_REQUESTS_TRACKED = 1000;

export class RemoteRunners {
  readonly #deps: RemoteRunnersDeps;
  /** Starts of remote runners whose first request has not ended yet, by runner id. */
  readonly #awaitingFirst = new Map<string, { start: ColdStart; appId: string; leasedAt: number | null }>();

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

  /**
   * A remote runner registered for the first time and said how its start went: a cold start of the
   * app, shown in `/v1/ops` and `/metrics` like a local runner's (no spawn phase: the gateway did
   * not start the process). Its first request's time is added when that request ends here.
   */
  remoteRunnerStarted(appId: string, runnerId: string, phases: RemoteStartPhases): void {
    const pool = this.#deps.pool(appId);
    if (!pool) return;
    const round = (ms: number): number => Math.round(ms * 10) / 10;
    const start: ColdStart = {
      runner: runnerId,
      spare: false,
      began_at: Date.now() - Math.round(phases.ready_ms),
      spawn_ms: null,
      runtime_ms: round(phases.runtime_ms),
      import_ms: round(phases.import_ms),
      setup_ms: round(phases.setup_ms),
      ready_ms: round(phases.ready_ms),
      first_request_ms: null,
    };
    pool.coldStarts += 1;
    recordColdStart(pool, start);
    const metrics = this.#deps.metrics;
    metrics?.coldStarts.inc({ app: appId });
    metrics?.coldStartDuration.observe({ app: appId }, start.ready_ms / 1000);
    for (const phase of COLD_START_PHASES) {
      const ms = phaseMs(start, phase);
      if (ms !== null) metrics?.coldStartPhase.observe({ app: appId, phase }, ms / 1000);
    }
    this.#awaitingFirst.delete(runnerId);
    this.#awaitingFirst.set(runnerId, { start, appId, leasedAt: null });
    if (this.#awaitingFirst.size > FIRST_REQUESTS_TRACKED) this.#awaitingFirst.delete(this.#awaitingFirst.keys().next().value as string);
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
    const awaiting = claimed.length > 0 ? this.#awaitingFirst.get(runnerId) : undefined;
    if (awaiting && awaiting.leasedAt === null) awaiting.leasedAt = Date.now();
    return claimed;
  }

  /** The first request of a runner whose start was reported ended (on this gateway): its time completes the start. */
  #firstRequestEnded(runnerId: string): void {
    const awaiting = this.#awaitingFirst.get(runnerId);
    if (!awaiting || awaiting.leasedAt === null) return;
    this.#awaitingFirst.delete(runnerId);
    awaiting.start.first_request_ms = Math.round((Date.now() - awaiting.leasedAt) * 10) / 10;
    this.#deps.metrics?.coldStartPhase.observe({ app: awaiting.appId, phase: "first_request" }, awaiting.start.first_request_ms / 1000);
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
    this.#firstRequestEnded(guard.owner);
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
