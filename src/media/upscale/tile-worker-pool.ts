/**
 * Worker threads that upscale tiles, each with its own tfjs and wasm backend (tfjs-wasm runs one
 * thread per instance in Node), taking tiles from one queue in the order they were asked for. One
 * pool serves every request of a process, so two requests at once share its threads rather than
 * each bringing its own. A tile waits here until a worker is free; a worker that dies fails only
 * the tile it held (the request of that tile fails with it), and the next tile starts a new one.
 * @module
 */
import path from "node:path";
import { Worker } from "node:worker_threads";
import { abortReason } from "../video/ffmpeg.js";
import type { ModelKey, ModelSpec } from "./model-specs.js";
import type { TileUpscaler, TileWindow } from "./tile-upscaler.js";
import type { TileJob, TileWorkerData, TileWorkerReply } from "./tile-worker.js";

export interface TileWorkerPoolOptions {
  threads: number;
  /** Models every worker loads as it starts. */
  preload?: readonly ModelKey[];
  /** For the pool's messages: a worker's backend fallback, a worker that died. */
  log?: (message: string) => void;
  /** The worker's module; tests give one that fails on purpose. */
  workerModule?: URL;
}

interface Job {
  message: TileJob;
  resolve: (core: Uint8Array) => void;
  reject: (error: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  settled: boolean;
}

interface Slot {
  worker: Worker;
  job: Job | null;
  /** Resolves to the backend's name once the worker has loaded its models. */
  ready: Promise<string>;
}

/** The worker module beside this one, as TypeScript or as compiled JavaScript, whichever runs. */
const DEFAULT_WORKER_MODULE = new URL(`./tile-worker${path.extname(new URL(import.meta.url).pathname)}`, import.meta.url);

/**
 * Workers start without the parent's loader: a TypeScript module gets tsx registered first
 * (resolved here, so it is found wherever the process started), as the gateway's body workers do.
 */
function bootstrap(module: URL): string {
  const load = `import(${JSON.stringify(module.href)})`;
  if (!module.pathname.endsWith(".ts")) return load;
  return `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((tsx) => { tsx.register(); return ${load}; });`;
}

export class TileWorkerPool {
  readonly threads: number;
  readonly #preload: ModelKey[];
  readonly #log: (message: string) => void;
  readonly #source: string;
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  #ids = 0;
  #closed = false;

  constructor(options: TileWorkerPoolOptions) {
    if (!Number.isInteger(options.threads) || options.threads < 1) throw new Error(`invalid thread count ${options.threads}`);
    this.threads = options.threads;
    this.#preload = [...(options.preload ?? [])];
    this.#log = options.log ?? (() => {});
    this.#source = bootstrap(options.workerModule ?? DEFAULT_WORKER_MODULE);
  }

  /**
   * Starts every worker and waits until each has loaded the preloaded models; resolves to the tfjs
   * backend they run. Optional: tiles start workers as they need them, but then the first request
   * pays for the start.
   */
  async start(): Promise<string> {
    while (this.#slots.length < this.threads) this.#spawn();
    const backends = await Promise.all(this.#slots.map((s) => s.ready));
    return backends[0] ?? "none";
  }

  /** A {@link TileUpscaler} that sends each tile of the model `spec` to the pool. */
  upscaler(spec: ModelSpec): TileUpscaler {
    const model: ModelKey = { size: spec.size, scale: spec.scale };
    return { ...spec, parallelism: this.threads, upscaleTile: (tile, signal) => this.run(model, tile, signal) };
  }

  /**
   * Upscales one tile on the first free worker. An abort drops a tile that is still waiting and
   * rejects at once for one in hand; its worker finishes that tile (wasm cannot be interrupted) and
   * the result is thrown away.
   */
  run(model: ModelKey, tile: TileWindow, signal?: AbortSignal): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new Error("the tile worker pool is closed"));
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise((resolve, reject) => {
      const job: Job = { message: { id: this.#ids++, model, tile }, resolve, reject, signal, onAbort: undefined, settled: false };
      if (signal) {
        job.onAbort = () => {
          const waiting = this.#queue.indexOf(job);
          if (waiting >= 0) this.#queue.splice(waiting, 1);
          this.#settle(job, () => reject(abortReason(signal)));
        };
        signal.addEventListener("abort", job.onAbort, { once: true });
      }
      this.#queue.push(job);
      this.#pump();
    });
  }

  /** Stops every worker; tiles waiting or in hand are rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    const error = new Error("the tile worker pool was closed");
    for (const job of this.#queue.splice(0)) this.#settle(job, () => job.reject(error));
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }

  #pump(): void {
    while (this.#queue.length > 0 && !this.#closed) {
      const slot = this.#slots.find((s) => s.job === null) ?? (this.#slots.length < this.threads ? this.#spawn() : undefined);
      if (!slot) return;
      const job = this.#queue.shift()!;
      slot.job = job;
      slot.worker.ref();
      const { pixels } = job.message.tile;
      // Transferring a view of a larger buffer would detach all of it: such a view is copied instead.
      const own = pixels.byteOffset === 0 && pixels.byteLength === pixels.buffer.byteLength;
      try {
        slot.worker.postMessage(job.message, own ? [pixels.buffer as ArrayBuffer] : []);
      } catch (err) {
        // Nothing reached the worker: the slot is free again, and only this tile fails.
        slot.job = null;
        this.#settle(job, () => job.reject(err));
      }
    }
  }

  #spawn(): Slot {
    const workerData: TileWorkerData = { preload: this.#preload };
    // No execArgv from the parent: a runner's `--import tsx` would register tsx twice in the thread.
    const worker = new Worker(this.#source, { eval: true, workerData, execArgv: [] });
    let markReady!: (backend: string) => void;
    let failReady!: (error: Error) => void;
    const ready = new Promise<string>((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    // Awaited by start() only; a worker started for a tile reports its failure through the tile.
    ready.catch(() => {});
    const slot: Slot = { worker, job: null, ready };
    let crash: Error | undefined;

    worker.on("message", (reply: TileWorkerReply) => {
      if (reply.type === "log") return this.#log(reply.message);
      if (reply.type === "ready") {
        // Held until now so that a process waiting only for start() does not exit under it.
        if (!slot.job) worker.unref();
        return markReady(reply.backend);
      }
      const job = slot.job;
      if (!job || job.message.id !== reply.id) return;
      slot.job = null;
      // Idle workers never keep the process alive.
      worker.unref();
      if (reply.type === "result") this.#settle(job, () => job.resolve(reply.core));
      else this.#settle(job, () => job.reject(new Error(`upscaling a tile failed: ${reply.message}`)));
      this.#pump();
    });
    worker.on("error", (error) => {
      crash = error;
    });
    worker.on("exit", (code) => {
      const index = this.#slots.indexOf(slot);
      if (index >= 0) this.#slots.splice(index, 1);
      const why = this.#closed
        ? "the tile worker pool was closed"
        : `an upscale worker thread stopped (exit code ${code})${crash ? `: ${crash.message}` : ""}`;
      const error = new Error(why, crash ? { cause: crash } : undefined);
      failReady(error);
      const job = slot.job;
      slot.job = null;
      if (job) this.#settle(job, () => job.reject(error));
      if (this.#closed) return;
      this.#log(why);
      // Tiles still waiting get a new worker.
      this.#pump();
    });
    this.#slots.push(slot);
    return slot;
  }

  /** Settles a job once: an aborted job's late result, or its worker's death, changes nothing. */
  #settle(job: Job, settle: () => void): void {
    if (job.settled) return;
    job.settled = true;
    if (job.onAbort) job.signal?.removeEventListener("abort", job.onAbort);
    settle();
  }
}

const shared = new Map<number, { pool: TileWorkerPool; users: number; started: Promise<string> }>();

/**
 * The process's pool of `threads` workers, started (models preloaded) by the first caller and kept
 * while anyone holds it. `release` gives the hold back; the last one stops the workers.
 */
export function acquireSharedTilePool(
  threads: number,
  preload: readonly ModelKey[],
  log: (message: string) => void,
): { pool: TileWorkerPool; started: Promise<string>; release: () => Promise<void> } {
  let entry = shared.get(threads);
  if (!entry) {
    const pool = new TileWorkerPool({ threads, preload, log });
    const started = pool.start();
    // A start that failed leaves nothing behind for the next caller to inherit.
    started.catch(() => {
      if (shared.get(threads)?.pool === pool) shared.delete(threads);
      void pool.close();
    });
    entry = { pool, users: 0, started };
    shared.set(threads, entry);
  }
  entry.users += 1;
  const held = entry;
  let released = false;
  return {
    pool: held.pool,
    started: held.started,
    release: async () => {
      if (released) return;
      released = true;
      held.users -= 1;
      if (held.users > 0) return;
      if (shared.get(threads) === held) shared.delete(threads);
      await held.pool.close();
    },
  };
}
