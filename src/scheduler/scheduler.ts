/**
 * The scheduler: one runner pool per app. It starts runners (cold starts) and keeps them warm,
 * scales them between min and max from queue depth and multiplexing, leases queued requests to free
 * runner slots, and turns runner outcomes into terminal states — exactly once, through the store's
 * guarded `finish`. Runners that crash, hang past request_timeout or fail setup are replaced; their
 * requests are retried up to the request's attempt budget and then end with fal's error types.
 * @module
 */
import { DEFAULT_LIMITS } from "../core/config.js";
import { PlatformError } from "../core/errors.js";
import type { AppManifest, Progress, RequestRecord } from "../core/types.js";
import type { Metrics } from "../observability/metrics.js";
import { spillInput } from "../storage/spilled-inputs.js";
import type { StorageDriver } from "../storage/storage.js";
import type { NewRequest, Store } from "../store/store.js";
import { Cancellations } from "./cancellations.js";
import { Dispatcher } from "./dispatch.js";
import { Housekeeping } from "./housekeeping.js";
import { InputTransfers } from "./input-transfers.js";
import { LocalRunners } from "./local-runners.js";
import { OutcomeWrites } from "./outcome-writes.js";
import { createPool, type EphemeralCall, type Pool, type PoolSnapshot } from "./pool.js";
import { QueueWakeups } from "./queue-wakeups.js";
import { RemoteRunners } from "./remote-runners.js";
import { applyOutcome, decideOutcome, type RunEnd } from "./run-outcome.js";
import { RequestEvents, type RequestEvent } from "./request-events.js";
import { SpareRunners, type SpareRunnersSnapshot } from "./spare-runners.js";
import { RemoteCalls, type LeasedCall } from "./remote-calls.js";
import { WorkflowExecutor } from "./workflow-executor.js";
import { WorkflowDocument } from "../workflows/document.js";
import { workflowManifest } from "../workflows/manifest.js";
import { isPythonAppSpec } from "../runtime/python-apps.js";
import type { RemoteStartPhases } from "./remote-runners.js";
import { waitForTerminal } from "./wait-for-terminal.js";
import { ResultReuse, type Reused } from "../reuse/result-reuse.js";
import { localRunnerRecord } from "../reuse/provenance.js";
import { effectiveCacheMode, type CacheMode } from "../reuse/cache-mode.js";

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
  /**
   * Runner processes kept started ahead of need, with the runtime loaded, for whichever app needs a
   * runner next (spare-runners.ts). Default 0 here; `darkroom serve` keeps 1.
   */
  spareRunners?: number;
  /** How long a realtime message waits for a remote runner to take it (remote-calls.ts; tests shorten it). */
  remoteCallPickupMs?: number;
  /**
   * Runners of one app that may be starting at once (local-runners.ts). Default: no bound here;
   * `darkroom serve` bounds it by the cores.
   */
  parallelStarts?: number;
  /** Origins this server's files are served on (its public URL, its files URL): result keys hash the content of such inputs (src/reuse/). */
  ownOrigins?: string[];
  /** Fetches another server's input file for its result key (src/reuse/result-key.ts); without it such inputs are not reused. */
  fetchForKey?: (url: string) => Promise<string>;
}

export type SchedulerLogger = NonNullable<SchedulerOptions["logger"]>;

/**
 * The parts below share the scheduler's state through the small interfaces they declare (their
 * `…Deps`), never the Scheduler itself: dispatch.ts (claims and runs), local-runners.ts (runner
 * processes, scaling, outcomes), remote-runners.ts, queue-wakeups.ts, cancellations.ts,
 * housekeeping.ts (the tick) and outcome-writes.ts.
 */
export class Scheduler {
  readonly events: RequestEvents;
  readonly #options: Required<Pick<SchedulerOptions, "leaseMs" | "cancelGraceMs" | "maxSetupFailures" | "tickMs" | "localRunners">> & SchedulerOptions;
  readonly #pools = new Map<string, Pool>();
  #tick: NodeJS.Timeout | undefined;
  #stopping = false;
  /** Store writes started for runner outcomes and exits; stop() waits for them before the store closes. */
  readonly #inProgress = new Set<Promise<void>>();
  #ephemeralSeq = 0;
  /** Runner outcomes waiting for the store to come back. */
  readonly #outcomeWrites: OutcomeWrites;
  readonly #housekeeping: Housekeeping;
  readonly #cancellations: Cancellations;
  readonly #wakeups: QueueWakeups;
  readonly #dispatcher: Dispatcher;
  readonly #localRunners: LocalRunners;
  readonly #spares: SpareRunners | null;
  readonly #remote: RemoteRunners;
  readonly #remoteCalls: RemoteCalls;
  readonly #workflows = new Map<string, WorkflowDocument>();
  readonly #workflowExecutor: WorkflowExecutor;
  readonly #reuse: ResultReuse;

  constructor(options: SchedulerOptions) {
    this.#options = { leaseMs: 30_000, cancelGraceMs: 5_000, maxSetupFailures: 3, tickMs: 500, localRunners: true, ...options };
    const { store, metrics, logger } = options;
    const { leaseMs } = this.#options;
    /** Spilled inputs being read and written to local runners, within a byte budget. */
    const inputTransfers = new InputTransfers(options.storage);
    this.#outcomeWrites = new OutcomeWrites({
      onKept: (requestId, err) => logger?.warn({ err, requestId }, "the store is unavailable: keeping this request's outcome until it takes it"),
      onWritten: (requestId, keptMs) => logger?.info({ requestId, keptMs }, "outcome kept through a store outage is written"),
    });
    const events = new RequestEvents({ bus: store.bus, onBusError: (err) => logger?.warn({ err }, "publishing a request event failed") });
    this.events = events;
    // What every part is given of the scheduler (each takes the ones its Deps name).
    const shared = {
      store,
      leaseMs,
      metrics,
      logger,
      events,
      pool: (appId: string) => this.#pools.get(appId),
      stopping: () => this.#stopping,
      plan: (pool: Pool) => this.#dispatcher.plan(pool),
      pump: (appId: string) => this.#dispatcher.pump(appId),
      announceQueued: (appId: string) => this.#wakeups.announce(appId),
      finished: (record: RequestRecord) => this.#finished(record),
      track: (work: Promise<void>, what: string) => this.#track(work, what),
    };
    this.#housekeeping = new Housekeeping({ ...shared, pools: () => this.#pools.values(), holds: (requestId) => this.#outcomeWrites.has(requestId) });
    this.#cancellations = new Cancellations({ graceMs: this.#options.cancelGraceMs, pool: shared.pool });
    this.#wakeups = new QueueWakeups({ ...shared, bus: store.bus, serves: (appId) => this.#pools.has(appId), loadRemoteApps: () => this.loadRemoteApps() });
    const spareCount = this.#options.localRunners ? Math.max(0, Math.trunc(options.spareRunners ?? 0)) : 0;
    const runnersStarting = (): boolean => [...this.#pools.values()].some((pool) => [...pool.runners.values()].some((r) => r.state === "starting"));
    this.#spares =
      spareCount > 0
        ? new SpareRunners({
            count: spareCount,
            env: options.runnerEnv,
            busy: runnersStarting,
            // The Node apps only: a spare cannot become a Python app's runner.
            appModules: () => [...this.#pools.values()].filter((pool) => this.#localRunners.spawnsRunners(pool) && !isPythonAppSpec(pool.app.modulePath)).map((pool) => pool.app.modulePath),
            ...(logger ? { logger } : {}),
            ...(metrics ? { metrics } : {}),
          })
        : null;
    this.#localRunners = new LocalRunners({
      ...shared,
      storage: options.storage,
      spares: this.#spares,
      runnerEnv: options.runnerEnv,
      localRunners: this.#options.localRunners,
      parallelStarts: Math.max(1, Math.trunc(options.parallelStarts ?? Number.POSITIVE_INFINITY)),
      maxSetupFailures: this.#options.maxSetupFailures,
      outcomeWrites: this.#outcomeWrites,
      cancellations: this.#cancellations,
      recordRunner: (app, runner) => this.#track(store.recordRunner(localRunnerRecord(app, this.#reuse.revisionOf(app), runner)), "recording a runner"),
    });
    this.#dispatcher = new Dispatcher({
      ...shared,
      inputTransfers,
      cancellations: this.#cancellations,
      spawnsRunners: (pool) => this.#localRunners.spawnsRunners(pool),
      scale: (pool, claimedAll) => this.#localRunners.scale(pool, claimedAll),
      onOutcome: (pool, runner, requestId, outcome) => this.#localRunners.onOutcome(pool, runner, requestId, outcome),
    });
    this.#remote = new RemoteRunners({ ...shared, addPool: (app) => this.#addPool(app) });
    this.#workflowExecutor = new WorkflowExecutor({
      store,
      storage: options.storage,
      leaseMs,
      documentOf: (appId) => this.#workflows.get(appId) ?? null,
      appOf: (appId) => this.#pools.get(appId)?.app,
      // Nodes reuse results as their apps' defaults say (docs/result-reuse.md).
      submit: (request) => this.submitReusing(request, null),
      waitForTerminal: (requestId, signal) => this.waitForTerminal(requestId, signal),
      cancel: (requestId) => this.cancel(requestId),
      started: (record) => events.emit(record.id, { type: "state", record }),
      event: (requestId, event) => this.#remote.remoteEvent(requestId, event),
      outcome: (requestId, guard, outcome) => this.#remote.remoteOutcome(requestId, guard, outcome),
      logger,
    });
    this.#reuse = new ResultReuse({
      store,
      storage: options.storage,
      ownOrigins: options.ownOrigins ?? [],
      fetchForKey: options.fetchForKey,
      leaseMs,
      submit: (request) => this.submit(request),
      waitForTerminal: (requestId, signal) => this.waitForTerminal(requestId, signal),
      finished: shared.finished,
      queued: (record) => {
        shared.pump(record.appId);
        shared.announceQueued(record.appId);
      },
      logger,
    });
    this.#remoteCalls = new RemoteCalls({ announce: (appId) => this.#wakeups.announce(appId), ...(options.remoteCallPickupMs !== undefined ? { pickupMs: options.remoteCallPickupMs } : {}) });
    for (const app of options.apps) this.#addPool(app);
  }

  #addPool(app: AppManifest): Pool {
    const pool = createPool(app);
    this.#pools.set(app.id, pool);
    return pool;
  }

  /**
   * Adds an app that a remote runner serves and this gateway does not load itself (a Python app, say),
   * so that its requests are accepted here. Its pool never spawns runners. An app already known keeps
   * its manifest.
   */
  addRemoteApp(manifest: AppManifest): void {
    this.#remote.addRemoteApp(manifest);
  }

  /** A remote runner described an app no gateway loads: serve it here and on every gateway of the store (remote-runners.ts). */
  registerRemoteApp(manifest: AppManifest): Promise<void> {
    return this.#remote.registerRemoteApp(manifest);
  }

  /** Adds the remote apps other gateways saved that this one does not serve yet. */
  async loadRemoteApps(): Promise<void> {
    await this.#remote.loadRemoteApps();
    // Workflows registered through another gateway on the store (that gateway announces them).
    for (const saved of await this.#options.store.listWorkflows()) {
      if (this.#pools.has(saved.id)) continue;
      const parsed = WorkflowDocument.safeParse(JSON.parse(saved.document));
      if (parsed.success) this.registerWorkflow(saved.id, parsed.data);
      else this.#options.logger?.error({ workflow: saved.id }, "a registered workflow's document no longer parses");
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
      this.#wakeups.listen();
    }
    await this.loadRemoteApps();
    await this.#housekeeping.expireDeadlines();
    for (const pool of this.#pools.values()) {
      if (pool.app.unavailable) continue;
      if (this.#localRunners.spawnsRunners(pool)) for (let i = pool.runners.size; i < pool.app.knobs.min_runners; i++) this.#localRunners.spawn(pool);
      this.#dispatcher.pump(pool.app.id);
    }
    this.#tick = setInterval(() => void this.#housekeep(), this.#options.tickMs);
    this.#tick.unref();
    // After the apps' own min runners, which need the CPU first.
    this.#spares?.fill();
  }

  /** Stops taking work, lets runners finish in-flight requests for up to `graceMs`, then kills the rest. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#stopping = true;
    if (this.#tick) clearInterval(this.#tick);
    this.#wakeups.stopListening();
    this.events.close();
    this.#wakeups.wakeAll();
    this.#remoteCalls.stop();
    this.#workflowExecutor.stop();
    this.#reuse.stop();
    const spares = this.#spares?.stop() ?? [];
    // A run whose stored input is still being read must reach its runner before the drain does.
    const reading = this.#dispatcher.inputReadsSettled();
    if (reading) await Promise.race([reading, new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref())]);
    const runners = [...this.#pools.values()].flatMap((p) => [...p.runners.values()]).concat(spares);
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
    this.#cancellations.stop();
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
    if (stored.spilledKey === null) return this.#dispatcher.enqueue({ ...request, inputJson: stored.json });
    try {
      return await this.#dispatcher.enqueue({ ...request, input: stored.input, inputJson: stored.json });
    } catch (err) {
      // Not enqueued (the database is down, say): nothing will ever read the file.
      await storage?.delete(stored.spilledKey).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Submits like `submit`, reusing a result where the app allows it (src/reuse/): `asked` is the
   * request's `X-Darkroom-Cache` (null: the app's default). A HIT comes back finished.
   */
  async submitReusing(request: NewRequest, asked: CacheMode | null): Promise<Reused> {
    const app = this.#pools.get(request.appId)?.app;
    const mode = app ? effectiveCacheMode(app, asked) : "off";
    if (!app || mode === "off") return { ...(await this.submit(request)), cacheStatus: null };
    return this.#reuse.submit(app, request, mode);
  }

  /** The document of a workflow this gateway serves. */
  workflowOf(appId: string): WorkflowDocument | undefined {
    return this.#workflows.get(appId);
  }

  /** The revision results of `app` are kept under (src/reuse/app-revision.ts). */
  revisionOf(app: AppManifest): string {
    return this.#reuse.revisionOf(app);
  }

  progressOf(requestId: string): Progress | undefined {
    return this.events.progressOf(requestId);
  }

  /** Resolves with the terminal record of a request (subscribing before reading, so no event is missed). */
  waitForTerminal(requestId: string, signal?: AbortSignal): Promise<RequestRecord> {
    return waitForTerminal({ store: this.#options.store, events: this.events }, requestId, signal);
  }

  /** Cancels a request: a queued one is removed; a running one is signalled and its runner killed after a grace period. */
  async cancel(requestId: string): Promise<"removed" | "signalled" | "already_completed" | "not_found"> {
    const result = await this.#options.store.cancel(requestId);
    if (result.kind === "removed") this.#finished(result.record);
    // A joined request runs nothing: it ends now, and its leader runs on for the others.
    if (result.kind === "signalled" && this.#reuse.joins(requestId)) {
      await this.#reuse.cancelJoined(result.record);
      return result.kind;
    }
    if (result.kind === "signalled") {
      this.#cancellations.signal(result.record);
      if (this.#workflows.has(result.record.appId)) this.#workflowExecutor.cancel(result.record.id);
    }
    return result.kind;
  }

  /**
   * Runs a non-durable call (a realtime message) on a warm runner of the app. It never touches the
   * store: a realtime client that loses its connection simply reconnects.
   */
  invokeEphemeral(appId: string, endpoint: string, input: unknown, baseUrl: string, onPartial?: (data: unknown) => void): Promise<unknown> {
    const pool = this.#pools.get(appId);
    if (!pool) return Promise.reject(new PlatformError("ERR_APP_NOT_FOUND"));
    if (pool.app.unavailable) return Promise.reject(new PlatformError("ERR_APP_UNAVAILABLE", { message: `${appId} is unavailable: ${pool.app.unavailable.reason}` }));
    // No runner of this gateway will take it: the app's remote runners do (remote-calls.ts).
    if (!this.#localRunners.spawnsRunners(pool) && pool.runners.size === 0) return this.#remoteCalls.invoke(pool, endpoint, input, baseUrl, onPartial);
    return new Promise((resolve, reject) => {
      pool.ephemeralQueue.push({ id: `rt-${++this.#ephemeralSeq}`, endpoint, input, baseUrl, resolve, reject, ...(onPartial ? { onPartial } : {}) });
      this.#dispatcher.pump(appId);
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
      recent_cold_starts: pool.recentColdStarts.map((start) => ({ ...start })),
      setup_failures: pool.setupFailures,
      last_setup_error: pool.lastSetupError,
      recent_errors: pool.recentErrors.map((e) => ({ at: e.at, request_id: e.requestId, message: e.message })),
    }));
  }

  /** The spare runners (spare-runners.ts), for `/v1/ops`: none when they are off. */
  spareRunners(): SpareRunnersSnapshot {
    return this.#spares?.snapshot() ?? { target: 0, ready: 0, starting: 0, runners: [] };
  }

  #finished(record: RequestRecord): void {
    this.#pools.get(record.appId)?.suspects.delete(record.id);
    const m = this.#options.metrics;
    if (m && record.finishedAt !== null) {
      m.requestsTotal.inc({ app: record.appId, state: record.state });
      m.requestDuration.observe({ app: record.appId, state: record.state }, (record.finishedAt - record.createdAt) / 1000);
      const tenant = m.tenantLabels.labelOf(record.tenant);
      m.tenantRequests.inc({ tenant, state: record.state });
      if (record.startedAt !== null) m.tenantRunSeconds.inc({ tenant }, Math.max(0, record.finishedAt - record.startedAt) / 1000);
      m.tenantQueueWait.observe({ tenant }, Math.max(0, (record.startedAt ?? record.finishedAt) - record.createdAt) / 1000);
    }
    this.events.emit(record.id, { type: "state", record });
    try {
      this.#options.onFinished?.(record);
    } catch (err) {
      this.#options.logger?.error({ err }, "onFinished hook failed");
    }
  }

  /**
   * Calls `wake` whenever a request of `appId` may have become claimable here or, on a shared store,
   * on any gateway. Returns the function that stops watching. Runner-protocol long polls wait on it.
   */
  watchQueue(appId: string, wake: () => void): () => void {
    return this.#wakeups.watch(appId, wake);
  }

  // --- remote runners (runner protocol over HTTP, remote-runners.ts) ---

  /** Claims up to `slots` requests of `appId` for a remote runner, leased under the runner's id in the store. */
  /**
   * Serves a workflow (src/workflows/) as an app of this gateway, or replaces its document: its
   * requests are run by the workflow executor. An app of another kind keeps its id (the registry
   * refuses such a workflow).
   */
  registerWorkflow(id: string, doc: WorkflowDocument): void {
    const known = this.#pools.get(id);
    if (known && known.app.workflow !== true) return;
    const manifest = workflowManifest(id, doc);
    if (known) known.app = manifest;
    else this.#addPool(manifest);
    if (!this.#workflows.has(id)) this.#wakeups.watch(id, () => void this.#pumpWorkflow(id));
    this.#workflows.set(id, doc);
    void this.#pumpWorkflow(id);
    // Other gateways on the store learn of it from the wake-up (loadRemoteApps).
    if (!known) this.#wakeups.announce(id);
  }

  /** A workflow was deleted: listed no more as available, its queued requests refused when run. */
  unregisterWorkflow(id: string): void {
    const pool = this.#pools.get(id);
    if (!pool || pool.app.workflow !== true) return;
    this.#workflows.delete(id);
    pool.app = { ...pool.app, unavailable: { reason: `The workflow ${id} was deleted`, remedy: "Register it again with PUT /v1/workflows/{owner}/{name}" } };
  }

  async #pumpWorkflow(appId: string): Promise<void> {
    try {
      await this.#workflowExecutor.pump(appId);
    } catch (err) {
      this.#options.logger?.warn({ err, app: appId }, "claiming workflow requests failed");
    }
  }

  /** Realtime messages of `appId` waiting for a remote runner, handed to `runnerId` (remote-calls.ts). */
  takeRemoteCalls(appId: string, runnerId: string, slots: number): EphemeralCall[] {
    const pool = this.#pools.get(appId);
    return pool && !this.#stopping ? this.#remoteCalls.take(pool, runnerId, slots) : [];
  }

  /** The realtime message `id` when the remote runner `runnerId` holds it on this gateway, else null. */
  remoteCall(id: string, runnerId: string): LeasedCall | null {
    return this.#remoteCalls.held(id, runnerId);
  }

  /** A remote runner's partial output of a realtime message it holds. */
  remoteCallPartial(id: string, runnerId: string, data: unknown): void {
    this.#remoteCalls.partial(id, runnerId, data);
  }

  /** A remote runner's answer to a realtime message it holds; false when it holds none of that id here. */
  remoteCallAnswered(id: string, runnerId: string, outcome: RunEnd): boolean {
    return this.#remoteCalls.answer(id, runnerId, outcome);
  }

  /** A remote runner's start, as it reported it on registering (remote-runners.ts). */
  remoteRunnerStarted(appId: string, runnerId: string, phases: RemoteStartPhases): void {
    this.#remote.remoteRunnerStarted(appId, runnerId, phases);
  }

  claimForRemote(appId: string, runnerId: string, slots: number, leaseMs?: number): Promise<RequestRecord[]> {
    return this.#remote.claimForRemote(appId, runnerId, slots, leaseMs);
  }

  /** Puts back claims a remote runner never received, at the same attempt, and wakes the runners. */
  releaseRemote(records: RequestRecord[], runnerId: string): Promise<void> {
    return this.#remote.releaseRemote(records, runnerId);
  }

  /** A remote runner's log line, progress or partial output for a request it holds. */
  remoteEvent(requestId: string, event: Extract<RequestEvent, { type: "log" | "progress" | "partial" }>): Promise<void> {
    return this.#remote.remoteEvent(requestId, event);
  }

  /**
   * A remote runner's outcome for a request it holds under `guard`. Returns the resulting record, or
   * null when the guard no longer matches (the lease was lost and the request retried or ended).
   */
  remoteOutcome(requestId: string, guard: { owner: string; attempt: number }, outcome: RunEnd): Promise<RequestRecord | null> {
    return this.#remote.remoteOutcome(requestId, guard, outcome);
  }

  async #housekeep(): Promise<void> {
    if (this.#stopping) return;
    // Workflows requeued by housekeeping (their gateway died) are taken up again.
    for (const appId of this.#workflows.keys()) void this.#pumpWorkflow(appId);
    try {
      await this.#housekeeping.tick();
    } catch (err) {
      this.#options.logger?.error({ err }, "housekeeping failed");
    }
  }
}
