/**
 * The scheduler: one runner pool per app. It starts runners (cold starts) and keeps them warm,
 * scales them between min and max from queue depth and multiplexing, leases queued requests to free
 * runner slots, and turns runner outcomes into terminal states — exactly once, through the store's
 * guarded `finish`. Runners that crash, hang past request_timeout or fail setup are replaced; their
 * requests are retried up to the request's attempt budget and then end with fal's error types.
 * @module
 */
import { DEFAULT_LIMITS } from "../core/config.js";
import { PlatformError, deserializeError } from "../core/errors.js";
import { isTerminal, type AppManifest, type Progress, type RequestRecord } from "../core/types.js";
import { UnparsedInput } from "../core/unparsed-input.js";
import type { Metrics } from "../observability/metrics.js";
import { wantsSyncMode, type FromRunner, type ToRunner } from "../runtime/protocol.js";
import { spillInput, spilledInputKey } from "../storage/spilled-inputs.js";
import type { StorageDriver } from "../storage/storage.js";
import type { NewRequest, Store } from "../store/store.js";
import { planClaims, splitSuspects, Suspects, type ClaimPlan, type SuspectRun } from "./isolation.js";
import { Housekeeping } from "./housekeeping.js";
import { InputTransfers } from "./input-transfers.js";
import { OutcomeWrites } from "./outcome-writes.js";
import type { EphemeralCall, Pool, PoolSnapshot } from "./pool.js";
import { applyOutcome, decideOutcome, terminalWriteFor, type RunEnd } from "./run-outcome.js";
import { RequestEvents, type RequestEvent } from "./request-events.js";
import { RunnerProcess, type Assignment } from "./runner-process.js";

export interface SchedulerOptions {
  store: Store;
  apps: AppManifest[];
  /** Environment for runner processes (storage root, allow list, limits). */
  runnerEnv: Record<string, string>;
  metrics?: Metrics;
  /** Called after a terminal state is written (webhooks, usage...). */
  onFinished?: (record: RequestRecord) => void;
  logger?: { info: (obj: object, msg?: string) => void; warn: (obj: object, msg?: string) => void; error: (obj: object, msg?: string) => void };
  /** Lease a runner holds on a request; renewed while its process lives. */
  leaseMs?: number;
  /** How long a cancelled running request may take to stop before its runner is killed. */
  cancelGraceMs?: number;
  /** Consecutive setup failures after which the app's queued requests are failed. */
  maxSetupFailures?: number;
  tickMs?: number;
  /**
   * Whether this scheduler starts runner processes itself (default true). A gateway in a fleet whose
   * runners all connect over the runner protocol (`darkroom runner`) sets false: it keeps the queue,
   * the leases and the outcomes, and spawns nothing.
   */
  localRunners?: boolean;
  /**
   * Where inputs larger than `inputSpillBytes` are kept, out of the request rows (spilled-inputs.ts).
   * Without it every input stays in its row.
   */
  storage?: StorageDriver;
  /** JSON bytes past which an input is kept in `storage` (default 256 KiB). */
  inputSpillBytes?: number;
}

/** How often a waiter on a shared store re-reads its request, in case a bus notification was lost. */
const TERMINAL_RECHECK_MS = 2000;

export class Scheduler {
  readonly events: RequestEvents;
  readonly #options: Required<Pick<SchedulerOptions, "leaseMs" | "cancelGraceMs" | "maxSetupFailures" | "tickMs" | "localRunners">> & SchedulerOptions;
  readonly #pools = new Map<string, Pool>();
  /** Who waits for an app's queue to get work (runner-protocol long polls), by app id. */
  readonly #queueWatchers = new Map<string, Set<() => void>>();
  #unsubscribeQueue: (() => void) | null = null;
  readonly #cancelTimers = new Map<string, NodeJS.Timeout>();
  #tick: NodeJS.Timeout | undefined;
  #stopping = false;
  /** Store writes started for runner outcomes and exits; stop() waits for them before the store closes. */
  readonly #inProgress = new Set<Promise<void>>();
  /** Stored inputs being read for dispatched requests; stop() lets their runs reach the runners before it drains them. */
  readonly #inputReads = new Set<Promise<void>>();
  /** Spilled inputs being read and written to local runners, within a byte budget. */
  readonly #inputTransfers: InputTransfers;
  #ephemeralSeq = 0;
  /** Runner outcomes waiting for the store to come back. */
  readonly #outcomeWrites: OutcomeWrites;
  readonly #housekeeping: Housekeeping;

  constructor(options: SchedulerOptions) {
    this.#options = { leaseMs: 30_000, cancelGraceMs: 5_000, maxSetupFailures: 3, tickMs: 500, localRunners: true, ...options };
    this.#inputTransfers = new InputTransfers(options.storage);
    this.#outcomeWrites = new OutcomeWrites({
      onKept: (requestId, err) => this.#options.logger?.warn({ err, requestId }, "the store is unavailable: keeping this request's outcome until it takes it"),
      onWritten: (requestId, keptMs) => this.#options.logger?.info({ requestId, keptMs }, "outcome kept through a store outage is written"),
    });
    this.#housekeeping = new Housekeeping({
      store: options.store,
      leaseMs: this.#options.leaseMs,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      pools: () => this.#pools.values(),
      pool: (appId) => this.#pools.get(appId),
      holds: (requestId) => this.#outcomeWrites.has(requestId),
      pump: (appId) => this.#pump(appId),
      finished: (record) => this.#finished(record),
      announceQueued: (appId) => this.#announceQueued(appId),
    });
    this.events = new RequestEvents({ bus: options.store.bus, onBusError: (err) => this.#options.logger?.warn({ err }, "publishing a request event failed") });
    for (const app of options.apps) this.#addPool(app);
  }

  #addPool(app: AppManifest): Pool {
    const pool: Pool = {
      app,
      runners: new Map(),
      pumping: false,
      pumpAgain: false,
      setupFailures: 0,
      lastSetupError: null,
      ephemeralQueue: [],
      ephemeralInFlight: new Map(),
      coldStarts: 0,
      recentErrors: [],
      suspects: new Suspects(),
    };
    this.#pools.set(app.id, pool);
    return pool;
  }

  /**
   * Adds an app that a remote runner serves and this gateway does not load itself (a Python app, say),
   * so that its requests are accepted here. Its pool never spawns runners. An app already known keeps
   * its manifest.
   */
  addRemoteApp(manifest: AppManifest): void {
    if (this.#pools.has(manifest.id)) return;
    this.#addPool({ ...manifest, knobs: { ...manifest.knobs, min_runners: 0 }, remote: true });
  }

  /**
   * A remote runner described an app no gateway loads: serve it here, save it so every gateway on
   * the store serves it (also once its runners are gone, so queued work can scale them back up), and
   * tell the other gateways, which read it from the store when a wake-up names an app they lack.
   */
  async registerRemoteApp(manifest: AppManifest): Promise<void> {
    const known = this.#pools.get(manifest.id);
    if (known && known.app.remote !== true) return;
    if (known) known.app = { ...manifest, knobs: { ...manifest.knobs, min_runners: 0 }, remote: true };
    else this.addRemoteApp(manifest);
    await this.#options.store.saveRemoteApp({ id: manifest.id, manifest: JSON.stringify({ ...manifest, remote: true }), updatedAt: Date.now() });
    this.#announceQueued(manifest.id);
  }

  /** Adds the remote apps other gateways saved that this one does not serve yet. */
  async loadRemoteApps(): Promise<void> {
    for (const saved of await this.#options.store.listRemoteApps()) {
      if (this.#pools.has(saved.id)) continue;
      try {
        this.addRemoteApp(JSON.parse(saved.manifest) as AppManifest);
      } catch (err) {
        this.#options.logger?.warn({ err, app: saved.id }, "a saved remote app has an unreadable manifest");
      }
    }
  }

  /** True once stop() was called: long polls answer at once. */
  get stopping(): boolean {
    return this.#stopping;
  }

  get apps(): AppManifest[] {
    return [...this.#pools.values()].map((p) => p.app);
  }

  app(id: string): AppManifest | undefined {
    return this.#pools.get(id)?.app;
  }

  /** Recovers requests interrupted by a previous crash, starts min runners and the housekeeping tick. */
  async start(): Promise<void> {
    const { store } = this.#options;
    // On a store this process has alone, whatever was RUNNING belonged to runners of a process that no
    // longer exists. On a shared one, other gateways' and remote runners hold live leases: only
    // expired leases are taken back, by housekeeping.
    if (!store.bus.distributed) {
      for (const record of await store.running()) {
        const restarted = new PlatformError("ERR_RUNNER_DISCONNECTED", { message: "Server restarted while the request was running" });
        const next = await applyOutcome(store, record.id, null, decideOutcome({ ok: false, error: restarted }, record));
        if (next && next.state !== "QUEUED") this.#finished(next);
      }
    } else {
      this.#unsubscribeQueue = store.bus.subscribe("queue", (appId) => this.#onQueued(appId));
    }
    await this.loadRemoteApps();
    await this.#housekeeping.expireDeadlines();
    for (const pool of this.#pools.values()) {
      if (pool.app.unavailable) continue;
      if (this.#spawnsRunners(pool)) for (let i = pool.runners.size; i < pool.app.knobs.min_runners; i++) this.#spawn(pool);
      this.#pump(pool.app.id);
    }
    this.#tick = setInterval(() => void this.#housekeep(), this.#options.tickMs);
    this.#tick.unref();
  }

  /** Stops taking work, lets runners finish in-flight requests for up to `graceMs`, then kills the rest. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#stopping = true;
    if (this.#tick) clearInterval(this.#tick);
    this.#unsubscribeQueue?.();
    this.events.close();
    for (const watchers of this.#queueWatchers.values()) for (const wake of watchers) wake();
    // A run whose stored input is still being read must reach its runner before the drain does.
    if (this.#inputReads.size > 0) await Promise.race([Promise.all([...this.#inputReads]), new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref())]);
    const runners = [...this.#pools.values()].flatMap((p) => [...p.runners.values()]);
    const exited = runners.map((r) => new Promise<void>((resolve) => {
      if (!r.alive) return resolve();
      const check = setInterval(() => {
        if (!r.alive) {
          clearInterval(check);
          resolve();
        }
      }, 20);
    }));
    for (const r of runners) r.drain();
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.all(exited), timeout]);
    for (const r of runners) r.kill();
    await Promise.all(exited);
    // The last results and exits are still being written; the caller closes the store next. Those
    // kept through an outage get one more try: the store may not come back while we wait.
    this.#outcomeWrites.stop();
    while (this.#inProgress.size > 0) await Promise.all([...this.#inProgress]);
    for (const t of this.#cancelTimers.values()) clearTimeout(t);
  }

  /** Keeps a store write started from a runner event: a failure is logged (never an unhandled rejection) and stop() waits for it. */
  #track(work: Promise<void>, what: string): void {
    const tracked: Promise<void> = work
      .catch((err: unknown) => this.#options.logger?.error({ err }, `${what} failed`))
      .finally(() => this.#inProgress.delete(tracked));
    this.#inProgress.add(tracked);
  }

  /**
   * Durably enqueues a request. When a runner slot is free, the same commit claims the head of the
   * app's queue for it (the new request itself when nothing is ahead), so an idle app starts a
   * request one store round trip sooner than through the pump. Resolves with the new record and its
   * queue position (null once claimed). An input over the spill threshold is written to storage
   * first and the row keeps a reference to it (src/storage/spilled-inputs.ts).
   */
  async submit(request: NewRequest): Promise<{ record: RequestRecord; queuePosition: number | null }> {
    const { storage, inputSpillBytes = DEFAULT_LIMITS.inputSpillBytes } = this.#options;
    const stored = await spillInput(storage, request.id, request.input, inputSpillBytes);
    if (stored.spilledKey === null) return this.#enqueue({ ...request, inputJson: stored.json });
    try {
      return await this.#enqueue({ ...request, input: stored.input, inputJson: stored.json });
    } catch (err) {
      // Not enqueued (the database is down, say): nothing will ever read the file.
      await storage?.delete(stored.spilledKey).catch(() => undefined);
      throw err;
    }
  }

  async #enqueue(request: NewRequest): Promise<{ record: RequestRecord; queuePosition: number | null }> {
    const { store, leaseMs } = this.#options;
    const pool = this.#pools.get(request.appId);
    // The pump's flag doubles as the lock on runner slots: a claim in flight is not yet in
    // `assignments`, so only one claimer at a time may count free slots. While suspects wait in the
    // queue the pump claims (the claim made with an enqueue could take one of them for any runner).
    const plan = pool && !pool.pumping && !this.#stopping && !pool.app.unavailable && pool.ephemeralQueue.length === 0 ? this.#plan(pool) : undefined;
    const runner = pool && plan && plan.except.length === 0 ? this.#freeRunner(pool, plan) : undefined;
    if (!pool || !runner) {
      const submitted = await store.submit(request, null);
      this.#pump(request.appId);
      this.#announceQueued(request.appId);
      return { record: submitted.record, queuePosition: submitted.queuePosition };
    }
    pool.pumping = true;
    let tookNew = false;
    try {
      const submitted = await store.submit(request, { owner: runner.id, leaseMs, limit: 1 });
      for (const record of submitted.claimed) {
        if (record.id === request.id) tookNew = true;
        // The request is durable whatever happens here: a failed hand-back is the lease reaper's to fix.
        await this.#dispatchClaimed(pool, runner, runner.id, record).catch((err: unknown) => this.#options.logger?.error({ err, app: pool.app.id }, "dispatch failed"));
      }
      return { record: submitted.record, queuePosition: submitted.queuePosition };
    } finally {
      pool.pumping = false;
      // Others may be waiting (submits that found the pool busy, or an older request that was
      // claimed instead of this one): pump. Otherwise only scaling is left to do.
      if (pool.pumpAgain || !tookNew) {
        pool.pumpAgain = false;
        this.#pump(request.appId);
      } else {
        void this.#scale(pool, true).catch((err: unknown) => this.#options.logger?.error({ err, app: pool.app.id }, "scaling failed"));
      }
    }
  }

  progressOf(requestId: string): Progress | undefined {
    return this.events.progressOf(requestId);
  }

  /** Resolves with the terminal record of a request (subscribing before reading, so no event is missed). */
  waitForTerminal(requestId: string, signal?: AbortSignal): Promise<RequestRecord> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const unsubscribe = this.events.subscribe(requestId, (event) => {
        if (event.type === "state" && ["SUCCEEDED", "FAILED", "CANCELLED"].includes(event.record.state)) settle(event.record);
      });
      const onAbort = (): void => {
        if (settled) return;
        settled = true;
        unsubscribe();
        if (recheck) clearInterval(recheck);
        reject(signal?.reason instanceof Error ? signal.reason : new PlatformError("ERR_CLIENT_DISCONNECTED"));
      };
      const settle = (record: RequestRecord): void => {
        if (settled) return;
        settled = true;
        unsubscribe();
        if (recheck) clearInterval(recheck);
        signal?.removeEventListener("abort", onAbort);
        resolve(record);
      };
      // Across gateways the end arrives as a bus notification, which a reconnecting listener can
      // miss: look at the store now and then, so a waiter never hangs on a lost hint.
      const recheck = this.#options.store.bus.distributed
        ? setInterval(() => {
            this.#options.store.get(requestId).then((record) => {
              if (record && isTerminal(record.state)) settle(record);
            }, () => undefined);
          }, TERMINAL_RECHECK_MS)
        : null;
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#options.store.get(requestId).then((record) => {
        if (record && ["SUCCEEDED", "FAILED", "CANCELLED"].includes(record.state)) settle(record);
      }, (err: unknown) => {
        if (settled) return;
        settled = true;
        unsubscribe();
        if (recheck) clearInterval(recheck);
        reject(err instanceof Error ? err : new Error(String(err)));
      });
    });
  }

  /** Cancels a request: a queued one is removed; a running one is signalled and its runner killed after a grace period. */
  async cancel(requestId: string): Promise<"removed" | "signalled" | "already_completed" | "not_found"> {
    const result = await this.#options.store.cancel(requestId);
    if (result.kind === "removed") this.#finished(result.record);
    if (result.kind === "signalled") this.#signalCancel(result.record);
    return result.kind;
  }

  /**
   * Runs a non-durable call (a realtime message) on a warm runner of the app. It never touches the
   * store: a realtime client that loses its connection simply reconnects.
   */
  invokeEphemeral(appId: string, endpoint: string, input: unknown, baseUrl: string, onPartial?: (data: unknown) => void): Promise<unknown> {
    const pool = this.#pools.get(appId);
    if (!pool) return Promise.reject(new PlatformError("ERR_APP_NOT_FOUND"));
    if (!this.#spawnsRunners(pool) && pool.runners.size === 0) {
      // Remote runners take durable requests only: a realtime message would wait forever.
      return Promise.reject(new PlatformError("ERR_APP_UNAVAILABLE", { message: `Realtime calls to ${appId} need a runner started by this gateway; remote runners serve queued and sync requests only` }));
    }
    return new Promise((resolve, reject) => {
      pool.ephemeralQueue.push({ id: `rt-${++this.#ephemeralSeq}`, endpoint, input, baseUrl, resolve, reject, ...(onPartial ? { onPartial } : {}) });
      this.#pump(appId);
    });
  }

  snapshot(): PoolSnapshot[] {
    return [...this.#pools.values()].map((pool) => ({
      app: pool.app.id,
      runners: [...pool.runners.values()].map((r) => ({
        id: r.id,
        state: r.state,
        pid: r.pid,
        in_flight: r.assignments.size,
        spawned_at: r.spawnedAt,
        ready_at: r.readyAt,
      })),
      cold_starts: pool.coldStarts,
      setup_failures: pool.setupFailures,
      last_setup_error: pool.lastSetupError,
      recent_errors: pool.recentErrors.map((e) => ({ at: e.at, request_id: e.requestId, message: e.message })),
    }));
  }

  // --- dispatch ---

  #pump(appId: string): void {
    const pool = this.#pools.get(appId);
    if (!pool || this.#stopping) return;
    if (pool.pumping) {
      pool.pumpAgain = true;
      return;
    }
    pool.pumping = true;
    void this.#pumpLoop(pool)
      // The store can fail mid-pump (PostgreSQL restarting, a full disk): log it and let the next
      // housekeeping tick pump again, rather than let the rejection take the whole server down.
      .catch((err: unknown) => this.#options.logger?.warn({ err, app: appId }, "dispatching failed; retrying on the next tick"))
      .finally(() => {
        pool.pumping = false;
        if (pool.pumpAgain) {
          pool.pumpAgain = false;
          this.#pump(appId);
        }
      });
  }

  /** What each runner of the pool may claim now (suspects apart, see isolation.ts). */
  #plan(pool: Pool): ClaimPlan {
    const alive = [...pool.runners.values()].filter((r) => r.state === "starting" || r.state === "ready").length;
    return planClaims({
      runners: [...pool.runners.values()].map((r) => ({ id: r.id, state: r.state, inFlight: r.assignments })),
      maxMultiplexing: pool.app.knobs.max_multiplexing,
      suspects: pool.suspects,
      canSpawn: this.#spawnsRunners(pool) && !this.#stopping && alive < pool.app.knobs.max_runners,
    });
  }

  /** The least loaded runner with a slot free for ordinary work (not one that runs suspects or waits for them). */
  #freeRunner(pool: Pool, plan = this.#plan(pool)): RunnerProcess | undefined {
    let best: RunnerProcess | undefined;
    for (const { runnerId } of plan.slots) {
      const r = pool.runners.get(runnerId);
      if (r && (!best || r.assignments.size < best.assignments.size)) best = r;
    }
    return best;
  }

  async #pumpLoop(pool: Pool): Promise<void> {
    const { store, leaseMs } = this.#options;
    if (pool.app.unavailable) return;
    let claimedAll = false;
    const claimFailed = (err: unknown): null => {
      this.#options.logger?.error({ err, app: pool.app.id }, "claim failed");
      return null;
    };
    for (;;) {
      for (let runner = this.#freeRunner(pool); runner && pool.ephemeralQueue.length > 0; runner = this.#freeRunner(pool)) {
        const call = pool.ephemeralQueue.shift();
        if (call) this.#dispatchEphemeral(pool, runner, call);
      }
      const plan = this.#plan(pool);
      if (plan.groups.length === 0 && plan.slots.length === 0) break;
      // One claim per runner: a waiting group of suspects for an idle runner, or all its free slots
      // for other work, suspects excluded. The store commits them together.
      const filter = plan.except.length > 0 ? { except: plan.except } : undefined;
      const [groupClaims, slotClaims] = await Promise.all([
        Promise.all(plan.groups.map((g) => store.claimMany(pool.app.id, g.runnerId, leaseMs, g.ids.length, undefined, { only: g.ids }).catch(claimFailed))),
        Promise.all(plan.slots.map((s) => store.claimMany(pool.app.id, s.runnerId, leaseMs, s.slots, undefined, filter).catch(claimFailed))),
      ]);
      let idleAgain = false;
      for (const [i, records] of groupClaims.entries()) {
        const group = plan.groups[i];
        if (!group || !records) continue;
        // A suspect that is not in the queue any more ended, or another gateway or a remote runner
        // holds it: it is out of this pool's hands.
        const claimed = new Set(records.map((r) => r.id));
        for (const id of group.ids) if (!claimed.has(id)) pool.suspects.delete(id);
        if (records.length === 0) idleAgain = true;
        for (const record of records) await this.#dispatchClaimed(pool, pool.runners.get(group.runnerId), group.runnerId, record);
      }
      let short = false;
      for (const [i, records] of slotClaims.entries()) {
        const entry = plan.slots[i];
        if (!entry) continue;
        if (!records || records.length < entry.slots) short = true;
        for (const record of records ?? []) await this.#dispatchClaimed(pool, pool.runners.get(entry.runnerId), entry.runnerId, record);
      }
      if (short) claimedAll = true; // the queue has no other work (for now)
      // Go on while every slot found work (there may be more) or a runner is still idle for a group.
      if (!idleAgain && (short || plan.slots.length === 0)) break;
    }
    await this.#scale(pool, claimedAll);
  }

  /** Dispatches a request just claimed for a runner, or hands it back if the runner died during the claim. */
  async #dispatchClaimed(pool: Pool, runner: RunnerProcess | undefined, owner: string, record: RequestRecord): Promise<void> {
    if (runner?.alive && runner.state === "ready") {
      this.#dispatch(pool, runner, record);
      return;
    }
    const back = await this.#options.store.requeue(record.id, { owner, attempt: record.attempt }, terminalWriteFor(new PlatformError("ERR_RUNNER_DISCONNECTED")));
    if (back && back.state !== "QUEUED") this.#finished(back);
  }

  #dispatch(pool: Pool, runner: RunnerProcess, record: RequestRecord): void {
    const now = Date.now();
    const assignment: Assignment = { requestId: record.id, attempt: record.attempt, startedAt: now, leaseRenewedAt: now, ephemeral: false };
    runner.assignments.set(record.id, assignment);
    this.events.emit(record.id, { type: "state", record });
    if (spilledInputKey(record.id, record.input) === null) {
      this.#sendDispatched(pool, runner, record, record.input);
      return;
    }
    // A spilled input is read back from storage first (spilled-inputs.ts), within the transfer
    // budget (input-transfers.ts) and without holding up the dispatches after it. One that cannot be
    // read fails its request, as an unsendable one does.
    const read = this.#inputTransfers.read(record);
    this.#track(
      read.then(
        (transfer) => {
          if (!transfer) return;
          // The runner died, or the request was taken from it, while the input was read: that was handled.
          if (!runner.alive || runner.assignments.get(record.id) !== assignment) return transfer.release();
          if (!this.#sendDispatched(pool, runner, record, transfer.input, transfer.release)) transfer.release();
        },
        async (err: unknown) => {
          if (runner.assignments.get(record.id) !== assignment) return;
          const error = err instanceof PlatformError ? err : new PlatformError("ERR_INTERNAL", { cause: err });
          this.#options.logger?.error({ err, request: record.id }, "the request's stored input cannot be read");
          await this.#onOutcome(pool, runner, record.id, { ok: false, error });
        },
      ),
      "dispatching a request with a stored input",
    );
    // Settles after the run was sent (its handler was registered first).
    const settled = read.then(
      () => undefined,
      () => undefined,
    );
    this.#inputReads.add(settled);
    void settled.then(() => this.#inputReads.delete(settled));
  }

  /**
   * Sends a dispatched request with its input (its JSON bytes, if it was spilled) to its runner.
   * False when it could not be sent (then `onWritten` is never called).
   */
  #sendDispatched(pool: Pool, runner: RunnerProcess, record: RequestRecord, input: unknown, onWritten?: () => void): boolean {
    // A spilled input travels as its JSON bytes, parsed only by the runner (which reads sync_mode from it).
    const given = input instanceof UnparsedInput ? { input: null, inputJson: input.bytes } : { input, syncMode: wantsSyncMode(input) };
    if (!this.#sendRun(pool, runner, record.id, { t: "run", requestId: record.id, endpoint: record.endpoint, ...given, attempt: record.attempt, baseUrl: record.baseUrl, ...(record.outputTtlSeconds !== null ? { outputTtlSeconds: record.outputTtlSeconds } : {}) }, onWritten)) return false;
    // A cancellation signalled while a stored input was read reached the runner before its run did.
    if (record.cancelRequested || this.#cancelTimers.has(record.id)) this.#signalCancel(record);
    return true;
  }

  #dispatchEphemeral(pool: Pool, runner: RunnerProcess, call: EphemeralCall): void {
    runner.assignments.set(call.id, { requestId: call.id, attempt: 1, startedAt: Date.now(), leaseRenewedAt: Date.now(), ephemeral: true });
    pool.ephemeralInFlight.set(call.id, call);
    this.#sendRun(pool, runner, call.id, { t: "run", requestId: call.id, endpoint: call.endpoint, input: call.input, attempt: 1, baseUrl: call.baseUrl, ephemeral: true, syncMode: true });
  }

  /**
   * Hands a run to its runner. An input that cannot be serialized for the runner (nested too deeply
   * to clone) fails its request at once; otherwise the request would wait for a result that never comes.
   */
  #sendRun(pool: Pool, runner: RunnerProcess, requestId: string, message: Extract<ToRunner, { t: "run" }>, onWritten?: () => void): boolean {
    try {
      // Not sent to a runner whose channel closed: its exit handler deals with the request.
      if (!runner.send(message, onWritten)) onWritten?.();
      return true;
    } catch (err) {
      const error = new PlatformError("ERR_BAD_REQUEST", { message: `The input cannot be passed to a runner: ${err instanceof Error ? err.message : String(err)}`, cause: err });
      this.#track(this.#onOutcome(pool, runner, requestId, { ok: false, error }), "failing an unsendable request");
      return false;
    }
  }

  /** Starts runners up to what the queue needs (within max); idle ones are reaped by housekeeping. */
  async #scale(pool: Pool, claimedAll: boolean): Promise<void> {
    if (this.#stopping || pool.app.unavailable || !this.#spawnsRunners(pool)) return;
    const knobs = pool.app.knobs;
    const alive = [...pool.runners.values()].filter((r) => r.state === "starting" || r.state === "ready");
    if (alive.length >= knobs.max_runners) return;
    // Suspects count apart: each group of them waiting or running needs a runner of its own.
    const plan = this.#plan(pool);
    let queued = pool.ephemeralQueue.length;
    if (!claimedAll) queued += Math.max(0, ((await this.#options.store.queueDepths()).get(pool.app.id) ?? 0) - plan.except.length);
    let inFlight = 0;
    for (const r of alive) for (const id of r.assignments.keys()) if (!pool.suspects.has(id)) inFlight += 1;
    const needed = Math.ceil((queued + inFlight) / knobs.max_multiplexing) + plan.isolating + plan.waitingGroups + knobs.concurrency_buffer;
    // Suspects that no runner will come free for get one more.
    const desired = Math.min(knobs.max_runners, Math.max(knobs.min_runners, needed, plan.stranded ? alive.length + 1 : 0));
    // stop() may have begun while the store answered: a runner spawned now would outlive the server.
    if (this.#stopping) return;
    for (let i = alive.length; i < desired; i++) this.#spawn(pool);
  }

  #spawn(pool: Pool): RunnerProcess {
    const runner = new RunnerProcess({
      appId: pool.app.id,
      modulePath: pool.app.modulePath,
      env: this.#options.runnerEnv,
      onMessage: (r, m) => this.#onRunnerMessage(pool, r, m),
      onExit: (r, code, signal) => this.#track(this.#onRunnerExit(pool, r, code, signal), "handling a runner exit"),
    });
    pool.runners.set(runner.id, runner);
    this.#updateRunnerGauge(pool);
    this.#options.logger?.info({ app: pool.app.id, runner: runner.id, pid: runner.pid }, "runner starting");
    return runner;
  }

  #updateRunnerGauge(pool: Pool): void {
    const m = this.#options.metrics;
    if (!m) return;
    const counts: Record<string, number> = { starting: 0, ready: 0, draining: 0 };
    for (const r of pool.runners.values()) if (r.state in counts) counts[r.state] = (counts[r.state] ?? 0) + 1;
    for (const [state, n] of Object.entries(counts)) m.runners.set({ app: pool.app.id, state }, n);
  }

  #onRunnerMessage(pool: Pool, runner: RunnerProcess, message: FromRunner): void {
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
        this.#options.metrics?.coldStarts.inc({ app: pool.app.id });
        this.#options.metrics?.coldStartDuration.observe({ app: pool.app.id }, (runner.readyAt - runner.spawnedAt) / 1000);
        this.#options.logger?.info({ app: pool.app.id, runner: runner.id, setup_ms: message.setupMs, cold_start_ms: runner.readyAt - runner.spawnedAt }, "runner ready");
        this.#updateRunnerGauge(pool);
        this.#pump(pool.app.id);
        return;
      }
      case "setup_failed": {
        pool.lastSetupError = message.error.message;
        this.#recordError(pool, null, `setup failed: ${message.error.message}`);
        this.#options.metrics?.runnerFailures.inc({ app: pool.app.id, reason: "setup" });
        runner.kill();
        return;
      }
      case "heartbeat":
        runner.lastHeartbeat = Date.now();
        return;
      case "log": {
        if (!message.requestId) {
          this.#options.logger?.info({ app: pool.app.id, runner: runner.id, level: message.level }, message.message);
          return;
        }
        const log = { message: message.message, level: message.level, source: "USER" as const, timestamp: message.timestamp };
        if (pool.ephemeralInFlight.has(message.requestId)) return;
        // The event goes out once the line is stored: a status stream answers it by reading the
        // stored logs, and would miss a line still waiting for its commit.
        const requestId = message.requestId;
        this.#track(
          this.#options.store
            .appendLogs(requestId, [log])
            .catch((err: unknown) => this.#options.logger?.warn({ err }, "appendLogs failed"))
            .then(() => this.events.emit(requestId, { type: "log", log })),
          "storing a log line",
        );
        return;
      }
      case "progress":
        this.events.emit(message.requestId, { type: "progress", progress: message.progress });
        return;
      case "partial": {
        const call = pool.ephemeralInFlight.get(message.requestId);
        if (call) call.onPartial?.(message.data);
        else this.events.emit(message.requestId, { type: "partial", data: message.data });
        return;
      }
      case "result":
        this.#track(this.#onOutcome(pool, runner, message.requestId, { ok: true, output: message.output, billableUnits: message.billableUnits }), "recording a result");
        return;
      case "error":
        this.#track(this.#onOutcome(pool, runner, message.requestId, { ok: false, error: deserializeError(message.error) }), "recording an error");
        return;
    }
  }

  async #onOutcome(
    pool: Pool,
    runner: RunnerProcess,
    requestId: string,
    outcome: RunEnd,
  ): Promise<void> {
    const assignment = runner.assignments.get(requestId);
    runner.assignments.delete(requestId);
    if (runner.assignments.size === 0) runner.idleSince = Date.now();
    this.#clearCancelTimer(requestId);
    const call = pool.ephemeralInFlight.get(requestId);
    if (call) {
      pool.ephemeralInFlight.delete(requestId);
      if (outcome.ok) call.resolve(outcome.output);
      else call.reject(outcome.error);
      this.#pump(pool.app.id);
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
    this.#pump(pool.app.id);
    this.#options.metrics?.runDuration.observe({ app: pool.app.id }, (Date.now() - assignment.startedAt) / 1000);
    const guard = { owner: runner.id, attempt: assignment.attempt };
    const { store } = this.#options;
    if (!outcome.ok && !retry && outcome.error.status >= 500) this.#recordError(pool, requestId, outcome.error.message);
    let record: RequestRecord | null = null;
    try {
      // Kept through a store outage: the runner did the work, and a sync caller is still waiting for it.
      record = await this.#outcomeWrites.write(requestId, () => applyOutcome(store, requestId, guard, decision));
    } finally {
      if (suspect && retry && record?.state === "QUEUED") pool.suspects.place([[requestId]]);
      else if (suspect && retry) pool.suspects.delete(requestId);
    }
    if (record && record.state !== "QUEUED") this.#finished(record);
    else if (record) {
      if (suspect) this.#pump(record.appId);
      this.#announceQueued(record.appId);
    }
  }

  async #onRunnerExit(pool: Pool, runner: RunnerProcess, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    pool.runners.delete(runner.id);
    this.#updateRunnerGauge(pool);
    const wasReady = runner.readyAt !== null;
    const orphaned = [...runner.assignments.values()];
    runner.assignments.clear();
    const expected = code === 0 && orphaned.length === 0;
    if (!expected) {
      this.#options.logger?.warn({ app: pool.app.id, runner: runner.id, code, signal, in_flight: orphaned.length }, "runner exited");
      if (!wasReady) {
        pool.setupFailures += 1;
        pool.lastSetupError ??= `runner exited during setup (code ${code}, signal ${signal})`;
      } else {
        this.#options.metrics?.runnerFailures.inc({ app: pool.app.id, reason: "exit" });
      }
    }
    const { store } = this.#options;
    const durable: { a: Assignment; current: RequestRecord | null }[] = [];
    for (const a of orphaned) {
      this.#clearCancelTimer(a.requestId);
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
          this.#recordError(pool, a.requestId, error.message);
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
        if (record && record.state !== "QUEUED") this.#finished(record);
      }
    } finally {
      // Into their groups (in the order the runner got them), now that they are queued; a held one
      // that did not go back to the queue ended (#finished) or is out of this pool's hands.
      pool.suspects.place([...splitSuspects(retried), ...alone.map((id) => [id])]);
      const placed = new Set([...retried.map((r) => r.id), ...alone]);
      for (const id of held) if (!placed.has(id)) pool.suspects.delete(id);
    }
    if (pool.setupFailures >= this.#options.maxSetupFailures) await this.#failQueuedAfterSetupFailures(pool);
    this.#pump(pool.app.id);
    if (durable.length > 0) this.#announceQueued(pool.app.id);
  }

  /** Setup keeps failing: fail what waits rather than let it wait forever, and start over on the next request. */
  async #failQueuedAfterSetupFailures(pool: Pool): Promise<void> {
    const reason = pool.lastSetupError ?? "runner setup failed";
    pool.setupFailures = 0;
    const error = new PlatformError("ERR_STARTUP_TIMEOUT", { message: `App ${pool.app.id} could not start: ${reason}` });
    for (const call of pool.ephemeralQueue.splice(0)) call.reject(error);
    const owner = `setup-failure-${pool.app.id}`;
    for (;;) {
      const record = await this.#options.store.claim(pool.app.id, owner, 1000);
      if (!record) break;
      const done = await this.#options.store.finish(record.id, terminalWriteFor(error), { owner, attempt: record.attempt });
      if (done) this.#finished(done);
    }
  }

  #signalCancel(record: RequestRecord): void {
    const pool = this.#pools.get(record.appId);
    const runner = pool && [...pool.runners.values()].find((r) => r.assignments.has(record.id));
    if (!runner) return; // not yet dispatched: #dispatch signals it when it is
    runner.send({ t: "cancel", requestId: record.id });
    if (this.#cancelTimers.has(record.id)) return;
    const timer = setTimeout(() => {
      this.#cancelTimers.delete(record.id);
      // The handler ignored its AbortSignal: stop the runner; its exit finishes the request as cancelled.
      if (runner.assignments.has(record.id)) runner.kill();
    }, this.#options.cancelGraceMs);
    timer.unref();
    this.#cancelTimers.set(record.id, timer);
  }

  #clearCancelTimer(requestId: string): void {
    const t = this.#cancelTimers.get(requestId);
    if (t) clearTimeout(t);
    this.#cancelTimers.delete(requestId);
  }

  #recordError(pool: Pool, requestId: string | null, message: string): void {
    pool.recentErrors.push({ at: Date.now(), requestId, message });
    if (pool.recentErrors.length > 20) pool.recentErrors.shift();
  }

  #finished(record: RequestRecord): void {
    this.#pools.get(record.appId)?.suspects.delete(record.id);
    const m = this.#options.metrics;
    if (m && record.finishedAt !== null) {
      m.requestsTotal.inc({ app: record.appId, state: record.state });
      m.requestDuration.observe({ app: record.appId, state: record.state }, (record.finishedAt - record.createdAt) / 1000);
    }
    this.events.emit(record.id, { type: "state", record });
    try {
      this.#options.onFinished?.(record);
    } catch (err) {
      this.#options.logger?.error({ err }, "onFinished hook failed");
    }
  }

  // --- queue wake-ups ---

  #spawnsRunners(pool: Pool): boolean {
    return this.#options.localRunners && pool.app.remote !== true;
  }

  /**
   * Calls `wake` whenever a request of `appId` may have become claimable here or, on a shared store,
   * on any gateway. Returns the function that stops watching. Runner-protocol long polls wait on it.
   */
  watchQueue(appId: string, wake: () => void): () => void {
    let set = this.#queueWatchers.get(appId);
    if (!set) {
      set = new Set();
      this.#queueWatchers.set(appId, set);
    }
    set.add(wake);
    return () => {
      const current = this.#queueWatchers.get(appId);
      current?.delete(wake);
      if (current?.size === 0) this.#queueWatchers.delete(appId);
    };
  }

  /** A request of `appId` went (back) into the queue: wake watchers here and, on a shared store, everywhere. */
  #announceQueued(appId: string): void {
    this.#wakeWatchers(appId);
    const { bus } = this.#options.store;
    if (bus.distributed) void bus.publish("queue", appId).catch((err: unknown) => this.#options.logger?.warn({ err }, "publishing a queue wake-up failed"));
  }

  /** Another gateway queued a request (or registered a remote app). */
  #onQueued(appId: string): void {
    if (!this.#pools.has(appId)) {
      // An app a runner registered on another gateway: read it from the store.
      void this.loadRemoteApps().catch((err: unknown) => this.#options.logger?.warn({ err }, "loading remote apps failed"));
      return;
    }
    this.#pump(appId);
    this.#wakeWatchers(appId);
  }

  #wakeWatchers(appId: string): void {
    const watchers = this.#queueWatchers.get(appId);
    if (!watchers) return;
    for (const wake of [...watchers]) {
      try {
        wake();
      } catch (err) {
        this.#options.logger?.warn({ err }, "queue watcher failed");
      }
    }
  }

  // --- remote runners (runner protocol over HTTP) ---

  /**
   * Claims up to `slots` requests of `appId` for a remote runner. Any gateway may serve any remote
   * runner: the lease lives in the store under the runner's id.
   */
  async claimForRemote(appId: string, runnerId: string, slots: number, leaseMs = this.#options.leaseMs): Promise<RequestRecord[]> {
    if (this.#stopping) return [];
    // Suspects of this gateway's runners run apart, on those runners: a remote runner multiplexes.
    const pool = this.#pools.get(appId);
    const except = pool && pool.suspects.size > 0 ? this.#plan(pool).except : [];
    const claimed = await this.#options.store.claimMany(appId, runnerId, leaseMs, slots, undefined, except.length > 0 ? { except } : undefined);
    for (const record of claimed) this.events.emit(record.id, { type: "state", record });
    return claimed;
  }

  /** Puts back claims a remote runner never received, at the same attempt, and wakes the runners. */
  async releaseRemote(records: RequestRecord[], runnerId: string): Promise<void> {
    for (const record of records) {
      const back = await this.#options.store.release(record.id, { owner: runnerId, attempt: record.attempt });
      if (back) this.events.emit(back.id, { type: "state", record: back });
    }
    const appId = records[0]?.appId;
    if (appId) {
      this.#pump(appId);
      this.#announceQueued(appId);
    }
  }

  /** A remote runner's log line, progress or partial output for a request it holds. */
  async remoteEvent(requestId: string, event: Extract<RequestEvent, { type: "log" | "progress" | "partial" }>): Promise<void> {
    // As for local runners: a log event goes out once the line is stored (status streams re-read logs).
    if (event.type === "log") await this.#options.store.appendLogs(requestId, [event.log]);
    this.events.emit(requestId, event);
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
    const record = await applyOutcome(this.#options.store, requestId, guard, decision);
    if (!outcome.ok && decision.action === "finish" && outcome.error.status >= 500) {
      const pool = record ? this.#pools.get(record.appId) : undefined;
      if (pool) this.#recordError(pool, requestId, outcome.error.message);
    }
    if (record && record.state !== "QUEUED") {
      if (record.startedAt !== null && record.finishedAt !== null) this.#options.metrics?.runDuration.observe({ app: record.appId }, (record.finishedAt - record.startedAt) / 1000);
      this.#finished(record);
    } else if (record) {
      this.#pump(record.appId);
      this.#announceQueued(record.appId);
    }
    return record;
  }

  async #housekeep(): Promise<void> {
    if (this.#stopping) return;
    try {
      await this.#housekeeping.tick();
    } catch (err) {
      this.#options.logger?.error({ err }, "housekeeping failed");
    }
  }
}
