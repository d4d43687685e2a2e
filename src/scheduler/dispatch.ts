/**
 * Dispatch: leasing queued requests to free runner slots and sending them to their runners. One
 * pump per app claims, for every ready runner at once, what the claim plan allows (isolation.ts),
 * so that the claims commit together; a submit that finds a slot free claims in its own commit
 * instead. Realtime calls, which never touch the store, go first.
 * @module
 */
import { PlatformError } from "../core/errors.js";
import type { RequestRecord } from "../core/types.js";
import { UnparsedInput } from "../core/unparsed-input.js";
import { wantsSyncMode, type ToRunner } from "../runtime/protocol.js";
import { spilledInputKey } from "../storage/spilled-inputs.js";
import type { NewRequest, Store } from "../store/store.js";
import type { Cancellations } from "./cancellations.js";
import type { InputTransfers } from "./input-transfers.js";
import { planClaims, type ClaimPlan } from "./isolation.js";
import type { EphemeralCall, Pool } from "./pool.js";
import type { RequestEvents } from "./request-events.js";
import { terminalWriteFor, type RunEnd } from "./run-outcome.js";
import type { Assignment, RunnerProcess } from "./runner-process.js";
import type { SchedulerLogger } from "./scheduler.js";

export interface DispatchDeps {
  store: Store;
  leaseMs: number;
  logger?: SchedulerLogger;
  events: RequestEvents;
  inputTransfers: InputTransfers;
  cancellations: Cancellations;
  pool: (appId: string) => Pool | undefined;
  /** True once the scheduler stops: nothing is claimed any more. */
  stopping: () => boolean;
  /** Whether this scheduler starts the pool's runners itself. */
  spawnsRunners: (pool: Pool) => boolean;
  /** Starts runners up to what the queue needs; `claimedAll` when the last claim found the queue empty. */
  scale: (pool: Pool, claimedAll: boolean) => Promise<void>;
  /** A run on a local runner ended (here: it could not be sent). */
  onOutcome: (pool: Pool, runner: RunnerProcess, requestId: string, outcome: RunEnd) => Promise<void>;
  /** A terminal state was written. */
  finished: (record: RequestRecord) => void;
  /** A request went (back) into the queue. */
  announceQueued: (appId: string) => void;
  /** Keeps a store write started here: a failure is logged and stop() waits for it. */
  track: (work: Promise<void>, what: string) => void;
}

export class Dispatcher {
  readonly #deps: DispatchDeps;
  /** Stored inputs being read for dispatched requests; stop() lets their runs reach the runners before it drains them. */
  readonly #inputReads = new Set<Promise<void>>();

  constructor(deps: DispatchDeps) {
    this.#deps = deps;
  }

  /** Settles once the stored inputs being read now are sent (or failed); null when none is being read. */
  inputReadsSettled(): Promise<void[]> | null {
    return this.#inputReads.size > 0 ? Promise.all([...this.#inputReads]) : null;
  }

  /**
   * Durably enqueues a request, claiming the head of the app's queue in the same commit when a
   * runner slot is free (see Scheduler.submit).
   */
  async enqueue(request: NewRequest): Promise<{ record: RequestRecord; queuePosition: number | null }> {
    const { store, leaseMs } = this.#deps;
    const pool = this.#deps.pool(request.appId);
    // The pump's flag doubles as the lock on runner slots: a claim in flight is not yet in
    // `assignments`, so only one claimer at a time may count free slots. While suspects wait in the
    // queue the pump claims (the claim made with an enqueue could take one of them for any runner).
    const plan = pool && !pool.pumping && !this.#deps.stopping() && !pool.app.unavailable && pool.ephemeralQueue.length === 0 ? this.plan(pool) : undefined;
    const runner = pool && plan && plan.except.length === 0 ? this.#freeRunner(pool, plan) : undefined;
    if (!pool || !runner) {
      const submitted = await store.submit(request, null);
      this.pump(request.appId);
      this.#deps.announceQueued(request.appId);
      return { record: submitted.record, queuePosition: submitted.queuePosition };
    }
    pool.pumping = true;
    let tookNew = false;
    try {
      const submitted = await store.submit(request, { owner: runner.id, leaseMs, limit: 1 });
      for (const record of submitted.claimed) {
        if (record.id === request.id) tookNew = true;
        // The request is durable whatever happens here: a failed hand-back is the lease reaper's to fix.
        await this.#dispatchClaimed(pool, runner, runner.id, record).catch((err: unknown) => this.#deps.logger?.error({ err, app: pool.app.id }, "dispatch failed"));
      }
      return { record: submitted.record, queuePosition: submitted.queuePosition };
    } finally {
      pool.pumping = false;
      // Others may be waiting (submits that found the pool busy, or an older request that was
      // claimed instead of this one): pump. Otherwise only scaling is left to do.
      if (pool.pumpAgain || !tookNew) {
        pool.pumpAgain = false;
        this.pump(request.appId);
      } else {
        void this.#deps.scale(pool, true).catch((err: unknown) => this.#deps.logger?.error({ err, app: pool.app.id }, "scaling failed"));
      }
    }
  }

  /** Claims and dispatches what the app's runners can take now, then scales; a pump already running goes round once more. */
  pump(appId: string): void {
    const pool = this.#deps.pool(appId);
    if (!pool || this.#deps.stopping()) return;
    if (pool.pumping) {
      pool.pumpAgain = true;
      return;
    }
    pool.pumping = true;
    void this.#pumpLoop(pool)
      // The store can fail mid-pump (PostgreSQL restarting, a full disk): log it and let the next
      // housekeeping tick pump again, rather than let the rejection take the whole server down.
      .catch((err: unknown) => this.#deps.logger?.warn({ err, app: appId }, "dispatching failed; retrying on the next tick"))
      .finally(() => {
        pool.pumping = false;
        if (pool.pumpAgain) {
          pool.pumpAgain = false;
          this.pump(appId);
        }
      });
  }

  /** What each runner of the pool may claim now (suspects apart, see isolation.ts). */
  plan(pool: Pool): ClaimPlan {
    const alive = [...pool.runners.values()].filter((r) => r.state === "starting" || r.state === "ready").length;
    return planClaims({
      runners: [...pool.runners.values()].map((r) => ({ id: r.id, state: r.state, inFlight: r.assignments })),
      maxMultiplexing: pool.app.knobs.max_multiplexing,
      suspects: pool.suspects,
      canSpawn: this.#deps.spawnsRunners(pool) && !this.#deps.stopping() && alive < pool.app.knobs.max_runners,
    });
  }

  /** The least loaded runner with a slot free for ordinary work (not one that runs suspects or waits for them). */
  #freeRunner(pool: Pool, plan = this.plan(pool)): RunnerProcess | undefined {
    let best: RunnerProcess | undefined;
    for (const { runnerId } of plan.slots) {
      const r = pool.runners.get(runnerId);
      if (r && (!best || r.assignments.size < best.assignments.size)) best = r;
    }
    return best;
  }

  async #pumpLoop(pool: Pool): Promise<void> {
    const { store, leaseMs } = this.#deps;
    if (pool.app.unavailable) return;
    let claimedAll = false;
    const claimFailed = (err: unknown): null => {
      this.#deps.logger?.error({ err, app: pool.app.id }, "claim failed");
      return null;
    };
    for (;;) {
      for (let runner = this.#freeRunner(pool); runner && pool.ephemeralQueue.length > 0; runner = this.#freeRunner(pool)) {
        const call = pool.ephemeralQueue.shift();
        if (call) this.#dispatchEphemeral(pool, runner, call);
      }
      const plan = this.plan(pool);
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
    await this.#deps.scale(pool, claimedAll);
  }

  /** Dispatches a request just claimed for a runner, or hands it back if the runner died during the claim. */
  async #dispatchClaimed(pool: Pool, runner: RunnerProcess | undefined, owner: string, record: RequestRecord): Promise<void> {
    if (runner?.alive && runner.state === "ready") {
      this.#dispatch(pool, runner, record);
      return;
    }
    const back = await this.#deps.store.requeue(record.id, { owner, attempt: record.attempt }, terminalWriteFor(new PlatformError("ERR_RUNNER_DISCONNECTED")));
    if (back && back.state !== "QUEUED") this.#deps.finished(back);
  }

  #dispatch(pool: Pool, runner: RunnerProcess, record: RequestRecord): void {
    const now = Date.now();
    const assignment: Assignment = { requestId: record.id, attempt: record.attempt, startedAt: now, leaseRenewedAt: now, ephemeral: false };
    runner.assignments.set(record.id, assignment);
    this.#deps.events.emit(record.id, { type: "state", record });
    if (spilledInputKey(record.id, record.input) === null) {
      this.#sendDispatched(pool, runner, record, record.input);
      return;
    }
    // A spilled input is read back from storage first (spilled-inputs.ts), within the transfer
    // budget (input-transfers.ts) and without holding up the dispatches after it. One whose file is
    // gone fails its request, as an unsendable one does; a storage outage that outlasts the read's
    // retries puts it back in the queue for another attempt (ERR_STORE_UNAVAILABLE requeues).
    const read = this.#deps.inputTransfers.read(record);
    this.#deps.track(
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
          this.#deps.logger?.error({ err, request: record.id }, "the request's stored input cannot be read");
          await this.#deps.onOutcome(pool, runner, record.id, { ok: false, error });
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
    if (record.cancelRequested || this.#deps.cancellations.pending(record.id)) this.#deps.cancellations.signal(record);
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
      this.#deps.track(this.#deps.onOutcome(pool, runner, requestId, { ok: false, error }), "failing an unsendable request");
      return false;
    }
  }
}
