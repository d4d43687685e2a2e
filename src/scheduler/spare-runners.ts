/**
 * Spare runners: processes started before any app needs them, with Node, the loader and the
 * runner's own modules already loaded, waiting for an app (runner-main.ts). A pool that needs a
 * runner takes a ready spare and tells it which app to load, so its cold start is the app's import
 * and setup alone. Taken spares are replaced in the background, once the runner a spare became has
 * answered its first request and no runner is starting (a replacement loading at once would take
 * CPU from that setup and that first request).
 *
 * Each spare is a whole Node process (about 60 MB resident before any app is loaded), so their
 * number is a setting (`--spare-runners`, 1 by default for `darkroom serve`, 0 turns them off). A
 * spare that dies before it is ready is replaced, but after three such deaths in a row no more are
 * started: something is wrong with the runtime itself, and runners started for an app will say what.
 * @module
 */
import type { SchedulerLogger } from "./scheduler.js";
import type { Metrics } from "../observability/metrics.js";
import { RunnerProcess, type RunnerHandlers } from "./runner-process.js";

export interface SpareRunnersOptions {
  /** How many spares to keep. */
  count: number;
  env: Record<string, string>;
  logger?: SchedulerLogger;
  metrics?: Metrics;
  /** The modules of the apps a spare may become (the pools that start runners here). */
  appModules?: () => readonly string[];
  /** Starts a runner process; tests give a stand-in. */
  spawn?: (handlers: RunnerHandlers, env: Record<string, string>) => RunnerProcess;
  /**
   * Whether runners are starting now: a spare is then started a little later, so that it does not
   * take CPU from the starts that are needed now.
   */
  busy?: () => boolean;
}

/** How long a fill waits while runners are starting, before it looks again. */
const BUSY_RETRY_MS = 250;

export interface SpareRunnersSnapshot {
  /** How many are kept (0: off). */
  target: number;
  ready: number;
  starting: number;
  runners: { id: string; pid: number | undefined; state: "starting" | "ready" }[];
}

/** Spares that die before they are ready, in a row, after which none are started any more. */
const MAX_FAILED_STARTS = 3;

export class SpareRunners {
  readonly #options: SpareRunnersOptions;
  readonly #spares = new Set<RunnerProcess>();
  #failedStarts = 0;
  #stopped = false;
  #retry: NodeJS.Timeout | undefined;

  constructor(options: SpareRunnersOptions) {
    this.#options = options;
  }

  /**
   * Starts spares up to the count (none after stop(), or after repeated failed starts); while
   * runners are starting, later.
   */
  fill(): void {
    if (this.#stopped || this.#failedStarts >= MAX_FAILED_STARTS || this.#spares.size >= this.#options.count) return;
    if (this.#options.busy?.()) {
      if (!this.#retry) {
        this.#retry = setTimeout(() => {
          this.#retry = undefined;
          this.fill();
        }, BUSY_RETRY_MS);
        this.#retry.unref();
      }
      return;
    }
    const spawn = this.#options.spawn ?? ((handlers, env) => new RunnerProcess({ app: null, spareFor: this.#options.appModules?.() ?? [], env, ...handlers }));
    while (this.#spares.size < this.#options.count) {
      const spare = spawn({ onMessage: (r, m) => this.#onMessage(r, m.t), onExit: (r, code, signal) => this.#onExit(r, code, signal) }, this.#options.env);
      this.#spares.add(spare);
    }
    this.#updateGauge();
  }

  /**
   * A spare made the runner of `app` (it reports to `handlers` from now on), or null when there is
   * none. A ready one is taken first; else one still loading, which is further along than a process
   * spawned now. The spare is not replaced here: the caller calls fill() when that suits it.
   */
  take(app: { id: string; modulePath: string }, handlers: RunnerHandlers): RunnerProcess | null {
    // A compiled spare loads only apps compiled in its own build while that build is fresh
    // (compiled-runtime.ts); another app gets a new process. One whose build went stale can serve
    // none: it exits, and its replacement (see #onExit) starts as the sources now allow.
    for (const spare of this.#spares) if (spare.spareReady && spare.outdated) spare.kill();
    const candidates = [...this.#spares].filter((s) => s.alive && s.canBecome(app.modulePath)).sort((a, b) => Number(b.spareReady) - Number(a.spareReady));
    for (const spare of candidates) {
      this.#spares.delete(spare);
      if (!spare.become(app, handlers)) {
        spare.kill();
        continue;
      }
      this.#options.metrics?.spareRunnersTaken.inc({ app: app.id });
      this.#updateGauge();
      return spare;
    }
    return null;
  }

  /** What `/v1/ops` shows. */
  snapshot(): SpareRunnersSnapshot {
    const runners = [...this.#spares].map((spare) => ({ id: spare.id, pid: spare.pid, state: spare.spareReady ? ("ready" as const) : ("starting" as const) }));
    const ready = runners.filter((r) => r.state === "ready").length;
    return { target: this.#options.count, ready, starting: runners.length - ready, runners };
  }

  /** Kills every spare; none are started after this. */
  stop(): RunnerProcess[] {
    this.#stopped = true;
    clearTimeout(this.#retry);
    const spares = [...this.#spares];
    for (const spare of spares) spare.kill();
    return spares;
  }

  #onMessage(spare: RunnerProcess, type: string): void {
    if (type !== "spare") return;
    this.#failedStarts = 0;
    this.#updateGauge();
  }

  #onExit(spare: RunnerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (!this.#spares.delete(spare)) return;
    if (this.#stopped) return;
    if (!spare.spareReady) {
      this.#failedStarts++;
      this.#options.logger?.warn({ runner: spare.id, code, signal, failed_starts: this.#failedStarts }, "spare runner exited before it was ready");
    }
    this.#updateGauge();
    // Replaced a little later, so that a runtime that cannot start does not fork in a tight loop.
    setTimeout(() => this.fill(), 1000).unref();
  }

  #updateGauge(): void {
    const { ready, starting } = this.snapshot();
    this.#options.metrics?.spareRunners.set({ state: "ready" }, ready);
    this.#options.metrics?.spareRunners.set({ state: "starting" }, starting);
  }
}
