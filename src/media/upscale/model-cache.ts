/**
 * The ESRGAN models of one app, as tile upscalers: with one model thread, loaded here and run on
 * the calling thread; with more, run by the process's shared pool of worker threads, which loads
 * them itself. This module does not load tfjs: with workers, the main thread never needs it.
 * @module
 */
import { modelSpec, PRELOADED_MODELS, type ModelScale, type ModelSize } from "./model-specs.js";
import { modelThreads } from "./model-threads.js";
import type { UpscaleModel } from "./model-loader.js";
import type { TileUpscaler } from "./tile-upscaler.js";
import { acquireSharedTilePool, type TileWorkerPool } from "./tile-worker-pool.js";

export interface ModelCacheOptions {
  /** Model threads; 1 runs the model on the calling thread. @default modelThreads() (DARKROOM_MODEL_THREADS, else the cores) */
  threads?: number;
}

/**
 * Loads each (size, scale) model at most once and keeps it. Concurrent callers share one load;
 * a failed load is forgotten so that a later request can try again.
 */
export class ModelCache {
  readonly threads: number;
  readonly #loading = new Map<string, Promise<TileUpscaler>>();
  readonly #log: (message: string) => void;
  readonly #pool: { pool: TileWorkerPool; started: Promise<string>; release: () => Promise<void> } | undefined;

  constructor(log: (message: string) => void = () => {}, options: ModelCacheOptions = {}) {
    this.#log = log;
    this.threads = options.threads ?? modelThreads();
    this.#pool = this.threads > 1 ? acquireSharedTilePool(this.threads, PRELOADED_MODELS, log) : undefined;
  }

  /**
   * Starts the tfjs backend and resolves to its name: this thread's, or with workers, theirs once
   * every worker has loaded the preloaded models.
   */
  async start(): Promise<string> {
    if (this.#pool) return this.#pool.started;
    const { initBackend } = await import("../tfjs/wasm-backend.js");
    return initBackend(this.#log);
  }

  get(size: ModelSize, scale: ModelScale): Promise<TileUpscaler> {
    const key = `${size}/x${scale}`;
    let pending = this.#loading.get(key);
    if (!pending) {
      pending = this.#load(size, scale).catch((err: unknown) => {
        this.#loading.delete(key);
        throw err;
      });
      this.#loading.set(key, pending);
    }
    return pending;
  }

  async #load(size: ModelSize, scale: ModelScale): Promise<TileUpscaler> {
    // The workers load the model on its first tile (and a preloaded one as they start).
    if (this.#pool) return this.#pool.pool.upscaler(modelSpec(size, scale));
    const started = performance.now();
    const { loadUpscaleModel } = await import("./model-loader.js");
    const model = await loadUpscaleModel(size, scale, this.#log);
    this.#log(`loaded esrgan-${size}/x${scale} in ${Math.round(performance.now() - started)} ms`);
    return model;
  }

  /** Frees the weights of every model loaded here, and gives back this cache's hold on the worker pool. */
  async dispose(): Promise<void> {
    const loads = [...this.#loading.values()];
    this.#loading.clear();
    for (const result of await Promise.allSettled(loads)) {
      if (result.status === "fulfilled" && "layers" in result.value) (result.value as UpscaleModel).layers.dispose();
    }
    await this.#pool?.release();
  }
}

/**
 * Setup shared by darkroom/upscale and darkroom/video-upscale: starts the backend (logging which one
 * runs, and on how many threads) and loads the default models, slim ×2 and ×4, so that the first
 * request pays no load time; other sizes load on first use.
 */
export async function preloadModelCache(log: (message: string) => void, options: ModelCacheOptions = {}): Promise<ModelCache> {
  const models = new ModelCache(log, options);
  try {
    const started = performance.now();
    const backend = await models.start();
    if (models.threads > 1) {
      log(`tfjs backend: ${backend} on ${models.threads} worker threads, slim ×2 and ×4 loaded in ${Math.round(performance.now() - started)} ms`);
    } else {
      log(`tfjs backend: ${backend}`);
      await Promise.all(PRELOADED_MODELS.map((m) => models.get(m.size, m.scale)));
    }
  } catch (err) {
    await models.dispose();
    throw err;
  }
  return models;
}

/** The state of an app that upscales with ESRGAN: the preloaded models. */
export interface UpscaleAppState {
  models: ModelCache;
}

/** `setup` and `teardown` of an app whose state is {@link UpscaleAppState}: both upscale apps share them. */
export const upscaleAppLifecycle = {
  async setup(log: (message: string) => void): Promise<UpscaleAppState> {
    return { models: await preloadModelCache(log) };
  },
  async teardown(state: UpscaleAppState): Promise<void> {
    await state.models.dispose();
  },
};
