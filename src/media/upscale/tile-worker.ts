/**
 * A worker thread of the tile pool (`tile-worker-pool.ts`): its own tfjs and wasm backend, the
 * preloaded models, and one tile at a time. Tiles arrive one by one from the pool, which sends the
 * next only after the reply; a model not preloaded is loaded on its first tile.
 * @module
 */
import { parentPort, workerData } from "node:worker_threads";
import { initBackend } from "../tfjs/wasm-backend.js";
import { loadUpscaleModel, type UpscaleModel } from "./model-loader.js";
import type { ModelKey } from "./model-specs.js";
import type { TileWindow } from "./tile-upscaler.js";

/** What the pool passes as `workerData`. */
export interface TileWorkerData {
  preload: ModelKey[];
}

/** One tile to upscale. */
export interface TileJob {
  id: number;
  model: ModelKey;
  tile: TileWindow;
}

export type TileWorkerReply =
  /** The backend is up and the preloaded models are in; sent once, before any other reply. */
  | { type: "ready"; backend: string; ms: number }
  | { type: "log"; message: string }
  | { type: "result"; id: number; core: Uint8Array }
  | { type: "error"; id: number; message: string };

const port = parentPort;
if (!port) throw new Error("tile-worker.ts runs as a worker thread of the tile pool");
const { preload } = workerData as TileWorkerData;

const post = (reply: TileWorkerReply, transfer: ArrayBuffer[] = []): void => port.postMessage(reply, transfer);
const log = (message: string): void => post({ type: "log", message });
const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

const models = new Map<string, Promise<UpscaleModel>>();

/** Loads each model once; a failed load is forgotten so that the next tile tries again. */
function model(key: ModelKey): Promise<UpscaleModel> {
  const name = `${key.size}/x${key.scale}`;
  let pending = models.get(name);
  if (!pending) {
    pending = loadUpscaleModel(key.size, key.scale, log);
    pending.catch(() => models.delete(name));
    models.set(name, pending);
  }
  return pending;
}

const started = performance.now();
// A backend or preload failure is thrown out of the thread: the pool sees the worker die and
// fails whatever waited on it, rather than talking to a worker that can never upscale.
const ready = (async () => {
  const backend = await initBackend(log);
  await Promise.all(preload.map(model));
  post({ type: "ready", backend, ms: performance.now() - started });
})();

async function upscale(job: TileJob): Promise<void> {
  try {
    const core = await (await model(job.model)).upscaleTile(job.tile);
    post({ type: "result", id: job.id, core }, [core.buffer as ArrayBuffer]);
  } catch (err) {
    post({ type: "error", id: job.id, message: messageOf(err) });
  }
}

port.on("message", (job: TileJob) => void ready.then(() => upscale(job)));
await ready;
