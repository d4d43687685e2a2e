/**
 * The runners this scheduler starts itself, as child processes: started up to what the queue needs
 * (the count is scaling.ts's), told apart by what they report (ready, setup failed, logs, progress,
 * results), and replaced when they exit. A run's outcome and a runner's exit become the requests'
 * next states here, through run-outcome.ts; the requests of a runner that died for no reason that
 * one of them explains become suspects (isolation.ts).
 * @module
 */
import { PlatformError, deserializeError, serializeError } from "../core/errors.js";
import type { RequestRecord } from "../core/types.js";
import { fallbackReasonOnce } from "../runtime/compiled-runtime.js";
import type { FromRunner } from "../runtime/protocol.js";
import { isPythonAppSpec } from "../runtime/python-apps.js";
import { OUTPUT_KEY_SHAPE, requestOfOutputKey, storedContentType, storedFileName } from "../storage/output-keys.js";
import type { Cancellations } from "./cancellations.js";
import { splitSuspects, type ClaimPlan, type SuspectRun } from "./isolation.js";
import type { OutcomeWrites } from "./outcome-writes.js";
import { COLD_START_PHASES, coldStartOf, phaseMs } from "./cold-start.js";
import { recordColdStart, recordRecentError, type Pool } from "./pool.js";
import type { RequestEvents } from "./request-events.js";
import { applyOutcome, decideOutcome, terminalWriteFor, type RunEnd } from "./run-outcome.js";
import { RunnerProcess, type Assignment, type RunnerHandlers } from "./runner-process.js";
import { desiredRunners } from "./scaling.js";
import type { SchedulerOptions } from "./scheduler.js";
import type { SpareRunners } from "./spare-runners.js";

export interface LocalRunnersDeps extends Pick<SchedulerOptions, "store" | "metrics" | "logger" | "runnerEnv" | "storage"> {
  /** Whether this scheduler starts runner processes at all (see SchedulerOptions.localRunners). */
  localRunners: boolean;
  /**
   * Runners of one pool that may be starting at once. Starts on a machine with few cores slow each
   * other and the first runner's first request: more start as earlier ones become ready.
   */
  parallelStarts: number;
  /** Consecutive setup failures after which the app's queued requests are failed. */
  maxSetupFailures: number;
  /** Processes started ahead of need, taken before a new one is spawned; null: none are kept. */
  spares: SpareRunners | null;
  events: RequestEvents;
  outcomeWrites: OutcomeWrites;
  cancellations: Cancellations;
  /** True once the scheduler stops: no runner is started any more. */
  stopping: () => boolean;
  /** What each runner of the pool may claim now (dispatch.ts). */
  plan: (pool: Pool) => ClaimPlan;
  pump: (appId: string) => void;
  /** A request went (back) into the queue. */
  announceQueued: (appId: string) => void;
  /** A terminal state was written. */
  finished: (record: RequestRecord) => void;
  /** Keeps a store write started from a runner event: a failure is logged and stop() waits for it. */
  track: (work: Promise<void>, what: string) => void;
  /** Records what a runner is as it starts (src/reuse/provenance.ts): each of its results' manifest. */
  recordRunner: (app: Pool["app"], runner: { id: string; pid: number | null }) => void;
}

/** The file limit when the server's environment for runners names none (the server's default). */
const DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024;

/** When a taken spare is replaced at the latest after the runner it became is ready (sooner: after its first request). */
const SPARE_REFILL_AFTER_READY_MS = 2000;

export class LocalRunners {
  readonly #deps: LocalRunnersDeps;

  constructor(deps: LocalRunnersDeps) {
    this.#deps = deps;
  }

  /** Whether this scheduler starts the pool's runners (a remote app's or a workflow's pool, or a fleet's gateway, starts none). */
  spawnsRunners(pool: Pool): boolean {
    return this.#deps.localRunners && pool.app.remote !== true && pool.app.workflow !== true;
  }

  /** Starts runners up to what the queue needs (within max); idle ones are reaped by housekeeping. */
  async scale(pool: Pool, claimedAll: boolean): Promise<void> {
    if (this.#deps.stopping() || pool.app.unavailable || !this.spawnsRunners(pool)) return;
    const knobs = pool.app.knobs;
    const alive = [...pool.runners.values()].filter((r) => r.state === "starting" || r.state === "ready");
    if (alive.length >= knobs.max_runners) return;
    const plan = this.#deps.plan(pool);
    const waitingCalls = pool.ephemeralQueue.length;
    const queueDepth = claimedAll ? null : ((await this.#deps.store.queueDepths()).get(pool.app.id) ?? 0);
    const inFlight = alive.map((r) => [...r.assignments.keys()].filter((id) => !pool.suspects.has(id)).length);
    const desired = desiredRunners({ knobs, inFlight, waitingCalls, queueDepth, plan });
    // stop() may have begun while the store answered: a runner spawned now would outlive the server.
    if (this.#deps.stopping()) return;
    // Runners still starting hold back the rest: each that becomes ready pumps the pool, which scales again.
    const starting = alive.filter((r) => r.state === "starting").length;
    const startsNow = Math.min(desired - alive.length, this.#deps.parallelStarts - starting);
    for (let i = 0; i < startsNow; i++) this.spawn(pool);
  }

  /** Starts a runner for the pool: a spare when one is ready (spare-runners.ts), else a new process. */
  spawn(pool: Pool): RunnerProcess {
    const handlers: RunnerHandlers = {
      onMessage: (r, m) => this.#onRunnerMessage(pool, r, m),
      onExit: (r, code, signal) => this.#deps.track(this.#onRunnerExit(pool, r, code, signal), "handling a runner exit"),
    };
    const app = { id: pool.app.id, modulePath: pool.app.modulePath, knobs: pool.app.knobs };
    // A spare is a Node process: a Python app's runner is always started for it.
    const spare = isPythonAppSpec(app.modulePath) ? null : this.#deps.spares?.take(app, handlers);
    const runner = spare ?? new RunnerProcess({ app, env: this.#deps.runnerEnv, ...handlers });
    pool.runners.set(runner.id, runner);
    this.#updateRunnerGauge(pool);
    this.#deps.recordRunner(pool.app, { id: runner.id, pid: runner.pid ?? null });
    // A missing or stale build (compiled-runtime.ts) is said once; which way each runner started, every time.
    const python = isPythonAppSpec(app.modulePath);
    const fallback = runner.compiled || python ? null : fallbackReasonOnce();
    if (fallback) this.#deps.logger?.info({ reason: fallback }, "runners start through tsx, not from the compiled runtime");
    this.#deps.logger?.info({ app: pool.app.id, runner: runner.id, pid: runner.pid, ...(python ? { python: true } : { compiled: runner.compiled }), ...(runner.startedAsSpare ? { spare: true } : {}) }, "runner starting");
    return runner;
  }

  #updateRunnerGauge(pool: Pool): void {
    const m = this.#deps.metrics;
    if (!m) return;
    const counts: Record<string, number> = { starting: 0, ready: 0, draining: 0 };
    for (const r of pool.runners.values()) if (r.state in counts) counts[r.state] = (counts[r.state] ?? 0) + 1;
    for (const [state, n] of Object.entries(counts)) m.runners.set({ app: pool.app.id, state }, n);
  }

  #onRunnerMessage(pool: Pool, runner: RunnerProcess, message: FromRunner): void {
    const { metrics, logger, events } = this.#deps;
    switch (message.t) {
      case "hello":
        return;
      case "ready": {
        // A runner told to drain (or one that already exited) during setup does not take work.
        if (runner.state !== "starting") return;
        runner.state = "ready";
        runner.readyAt = Date.now();
        runner.idleSince = Date.now();
        pool.coldStarts += 1;
        pool.setupFailures = 0;
        pool.lastSetupError = null;
        runner.coldStart = coldStartOf(runner, message, runner.readyAt);
        recordColdStart(pool, runner.coldStart);
        metrics?.coldStarts.inc({ app: pool.app.id });
        metrics?.coldStartDuration.observe({ app: pool.app.id }, (runner.readyAt - runner.spawnedAt) / 1000);
        // A spare taken for a runner that gets no request soon (a min_runners start) is replaced anyway.
        if (runner.startedAsSpare) setTimeout(() => this.#deps.spares?.fill(), SPARE_REFILL_AFTER_READY_MS).unref();
        for (const phase of COLD_START_PHASES) {
          const ms = phaseMs(runner.coldStart, phase);
          if (ms !== null) metrics?.coldStartPhase.observe({ app: pool.app.id, phase }, ms / 1000);
        }
        logger?.info({ app: pool.app.id, ...runner.coldStart }, "runner ready");
        this.#updateRunnerGauge(pool);
        this.#deps.pump(pool.app.id);
        return;
      }
      case "setup_failed": {
        pool.lastSetupError = message.error.message;
        recordRecentError(pool, null, `setup failed: ${message.error.message}`);
        metrics?.runnerFailures.inc({ app: pool.app.id, reason: "setup" });
        runner.kill();
        return;
      }
      case "heartbeat":
        runner.lastHeartbeat = Date.now();
        return;
      case "log": {
        if (!message.requestId) {
          logger?.info({ app: pool.app.id, runner: runner.id, level: message.level }, message.message);
          return;
        }
        const log = { message: message.message, level: message.level, source: "USER" as const, timestamp: message.timestamp };
        if (pool.ephemeralInFlight.has(message.requestId)) return;
        // The event goes out once the line is stored: a status stream answers it by reading the
        // stored logs, and would miss a line still waiting for its commit.
        const requestId = message.requestId;
        this.#deps.track(
          this.#deps.store
            .appendLogs(requestId, [log])
            .catch((err: unknown) => logger?.warn({ err }, "appendLogs failed"))
            .then(() => events.emit(requestId, { type: "log", log })),
          "storing a log line",
        );
        return;
      }
      case "progress":
        events.emit(message.requestId, { type: "progress", progress: message.progress });
        return;
      case "partial": {
        const call = pool.ephemeralInFlight.get(message.requestId);
        if (call) call.onPartial?.(message.data);
        else events.emit(message.requestId, { type: "partial", data: message.data });
        return;
      }
      case "result":
        this.#deps.track(this.onOutcome(pool, runner, message.requestId, { ok: true, output: message.output, billableUnits: message.billableUnits }), "recording a result");
        return;
      case "error":
        this.#deps.track(this.onOutcome(pool, runner, message.requestId, { ok: false, error: deserializeError(message.error) }), "recording an error");
        return;
      case "put_file":
        this.#deps.track(this.#storeOutputFile(runner, message), "storing a runner's output file");
        return;
    }
  }

  /**
   * Stores an output file a Python runner sent (Node runners write to storage themselves): only for
   * a request the runner holds, only under that request's output prefix, and no larger than the
   * server's file limit. The runner waits for the answer.
   */
  async #storeOutputFile(runner: RunnerProcess, message: Extract<FromRunner, { t: "put_file" }>): Promise<void> {
    try {
      const storage = this.#deps.storage;
      if (!storage) throw new PlatformError("ERR_INTERNAL", { message: "This server keeps no output files" });
      if (!runner.assignments.has(message.requestId)) throw new PlatformError("ERR_LEASE_LOST", { message: `This runner does not hold ${message.requestId}` });
      if (requestOfOutputKey(message.key) !== message.requestId) throw new PlatformError("ERR_BAD_REQUEST", { message: OUTPUT_KEY_SHAPE });
      const maxBytes = Number(this.#deps.runnerEnv["DARKROOM_MAX_FILE_BYTES"] ?? DEFAULT_MAX_FILE_BYTES);
      const bytes = Buffer.from(message.data, "base64");
      if (bytes.length > maxBytes) throw new PlatformError("ERR_FILE_TOO_LARGE", { message: `Output files are limited to ${maxBytes} bytes` });
      const contentType = storedContentType(String(message.contentType));
      const fileName = storedFileName(String(message.fileName));
      const expires = message.expiresInSeconds;
      const meta = await storage.put(message.key, bytes, { contentType, fileName, maxBytes, ...(typeof expires === "number" && expires > 0 ? { expiresInSeconds: expires } : {}) });
      runner.send({ t: "file_stored", callId: message.callId, key: meta.key, size: meta.size, contentType: meta.contentType, fileName: meta.fileName });
    } catch (err) {
      runner.send({ t: "file_failed", callId: message.callId, error: serializeError(err) });
    }
  }

  /** A run on one of this scheduler's runners ended (or could not start): the request's next state. */
  async onOutcome(
    pool: Pool,
    runner: RunnerProcess,
    requestId: string,
    outcome: RunEnd,
  ): Promise<void> {
    const assignment = runner.assignments.get(requestId);
    runner.assignments.delete(requestId);
    if (assignment && runner.coldStart && runner.coldStart.first_request_ms === null) {
      runner.coldStart.first_request_ms = Math.max(0, Date.now() - assignment.startedAt);
      this.#deps.metrics?.coldStartPhase.observe({ app: pool.app.id, phase: "first_request" }, runner.coldStart.first_request_ms / 1000);
      // The spare it was is replaced only now: a new process loading its runtime beside the first
      // request would slow the very result the spare was there to hurry.
      if (runner.startedAsSpare) this.#deps.spares?.fill();
    }
    if (runner.assignments.size === 0) runner.idleSince = Date.now();
    this.#deps.cancellations.clear(requestId);
    const call = pool.ephemeralInFlight.get(requestId);
    if (call) {
      pool.ephemeralInFlight.delete(requestId);
      if (outcome.ok) call.resolve(outcome.output);
      else call.reject(outcome.error);
      this.#deps.pump(pool.app.id);
      return;
    }
    if (!assignment) return;
    const decision = decideOutcome(outcome);
    const retry = decision.action === "requeue";
    // A suspect that ran to an outcome did not kill its runner. One whose runner reports a retryable
    // error goes back to the queue: held until then, and alone after.
    const suspect = pool.suspects.has(requestId);
    if (suspect && retry) pool.suspects.hold(requestId);
    else if (suspect) pool.suspects.delete(requestId);
    // Pump now, not after the write below: the claim of the runner's next request then goes into the
    // same group commit as this outcome (it runs after it, so a retry requeued here can be claimed at
    // once), and the runner gets its next request one commit sooner.
    this.#deps.pump(pool.app.id);
    this.#deps.metrics?.runDuration.observe({ app: pool.app.id }, (Date.now() - assignment.startedAt) / 1000);
    const guard = { owner: runner.id, attempt: assignment.attempt };
    const { store } = this.#deps;
    if (!outcome.ok && !retry && outcome.error.status >= 500) recordRecentError(pool, requestId, outcome.error.message);
    let record: RequestRecord | null = null;
    try {
      // Kept through a store outage: the runner did the work, and a sync caller is still waiting for it.
      record = await this.#deps.outcomeWrites.write(requestId, () => applyOutcome(store, requestId, guard, decision));
    } finally {
      if (suspect && retry && record?.state === "QUEUED") pool.suspects.place([[requestId]]);
      else if (suspect && retry) pool.suspects.delete(requestId);
    }
    if (record && record.state !== "QUEUED") this.#deps.finished(record);
    else if (record) {
      if (suspect) this.#deps.pump(record.appId);
      this.#deps.announceQueued(record.appId);
    }
  }

  async #onRunnerExit(pool: Pool, runner: RunnerProcess, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    pool.runners.delete(runner.id);
    if (runner.startedAsSpare && runner.coldStart?.first_request_ms == null) this.#deps.spares?.fill();
    this.#updateRunnerGauge(pool);
    const wasReady = runner.readyAt !== null;
    const orphaned = [...runner.assignments.values()];
    runner.assignments.clear();
    const expected = code === 0 && orphaned.length === 0;
    if (!expected) {
      this.#deps.logger?.warn({ app: pool.app.id, runner: runner.id, code, signal, in_flight: orphaned.length }, "runner exited");
      if (!wasReady) {
        pool.setupFailures += 1;
        pool.lastSetupError ??= `runner exited during setup (code ${code}, signal ${signal})`;
      } else {
        this.#deps.metrics?.runnerFailures.inc({ app: pool.app.id, reason: "exit" });
      }
    }
    const { store } = this.#deps;
    const durable: { a: Assignment; current: RequestRecord | null }[] = [];
    for (const a of orphaned) {
      this.#deps.cancellations.clear(a.requestId);
      const call = pool.ephemeralInFlight.get(a.requestId);
      if (call) {
        pool.ephemeralInFlight.delete(a.requestId);
        call.reject(new PlatformError("ERR_RUNNER_DISCONNECTED"));
        continue;
      }
      durable.push({ a, current: await store.get(a.requestId) });
    }
    // The scheduler killed the runner because of one of its requests (hung past request_timeout, or
    // ignored its cancellation): the others were bystanders. Otherwise nobody can tell which request
    // crashed it: all of them become suspects, retried apart from other work in two halves, which are
    // halved again should they crash again (isolation.ts). A request that hung runs alone.
    const explained = durable.some(({ a, current }) => a.timedOut === true || current?.cancelRequested === true);
    const held: string[] = [];
    const retried: SuspectRun[] = [];
    const alone: string[] = [];
    try {
      for (const { a, current } of durable) {
        const guard = { owner: runner.id, attempt: a.attempt };
        const error = a.timedOut
          ? new PlatformError("ERR_REQUEST_TIMEOUT", { message: `Request ran longer than request_timeout (${pool.app.knobs.request_timeout} s)` })
          : new PlatformError("ERR_RUNNER_DISCONNECTED", { message: `Runner disconnected (exit code ${code}, signal ${signal})` });
        const decision = decideOutcome({ ok: false, error }, { cancelRequested: current?.cancelRequested === true });
        let record: RequestRecord | null;
        if (decision.action === "finish") {
          record = await applyOutcome(store, a.requestId, guard, decision);
        } else {
          recordRecentError(pool, a.requestId, error.message);
          // Held before it is back in the queue, so that no claim pairs it with other requests first.
          // A bystander that was a suspect already stays one.
          const suspect = a.timedOut === true || !explained || pool.suspects.has(a.requestId);
          if (suspect) {
            pool.suspects.hold(a.requestId);
            held.push(a.requestId);
          }
          record = await applyOutcome(store, a.requestId, guard, decision);
          if (suspect && record?.state === "QUEUED") {
            if (a.timedOut) alone.push(record.id);
            else retried.push({ id: record.id, attemptsLeft: record.maxAttempts - record.attempt + 1 });
          }
        }
        if (record && record.state !== "QUEUED") this.#deps.finished(record);
      }
    } finally {
      // Into their groups (in the order the runner got them), now that they are queued; a held one
      // that did not go back to the queue ended (finished) or is out of this pool's hands.
      pool.suspects.place([...splitSuspects(retried), ...alone.map((id) => [id])]);
      const placed = new Set([...retried.map((r) => r.id), ...alone]);
      for (const id of held) if (!placed.has(id)) pool.suspects.delete(id);
    }
    if (pool.setupFailures >= this.#deps.maxSetupFailures) await this.#failQueuedAfterSetupFailures(pool);
    this.#deps.pump(pool.app.id);
    if (durable.length > 0) this.#deps.announceQueued(pool.app.id);
  }

  /** Setup keeps failing: fail what waits rather than let it wait forever, and start over on the next request. */
  async #failQueuedAfterSetupFailures(pool: Pool): Promise<void> {
    const reason = pool.lastSetupError ?? "runner setup failed";
    pool.setupFailures = 0;
    const error = new PlatformError("ERR_STARTUP_TIMEOUT", { message: `App ${pool.app.id} could not start: ${reason}` });
    for (const call of pool.ephemeralQueue.splice(0)) call.reject(error);
    const owner = `setup-failure-${pool.app.id}`;
    for (;;) {
      const record = await this.#deps.store.claim(pool.app.id, owner, 1000);
      if (!record) break;
      const done = await this.#deps.store.finish(record.id, terminalWriteFor(error), { owner, attempt: record.attempt });
      if (done) this.#deps.finished(done);
    }
  }
}
