/**
 * How many threads one process gives to ESRGAN inference: `DARKROOM_MODEL_THREADS`, else the cores
 * it may use. One request's tiles (or a video's frames) spread over them; the requests of one
 * runner share them rather than each taking as many.
 * @module
 */
import { availableParallelism } from "node:os";

export const MODEL_THREADS_ENV = "DARKROOM_MODEL_THREADS";

/**
 * The default's ceiling. Each thread holds its own tfjs, the models it used and one tile's
 * activations (two threads add 70–175 MB to a runner's peak RSS, bench/README.md), and a 451×300
 * image has only 12 tiles to hand out: past 8, memory grows faster than the threads can be kept
 * busy. Set the variable to go higher.
 */
export const DEFAULT_MAX_MODEL_THREADS = 8;
/** What the variable accepts at most: a typo such as 1000 must not start a thousand tfjs instances. */
export const MAX_MODEL_THREADS = 64;

/**
 * The configured thread count. 1 runs the model on the calling thread, as before workers existed.
 * `availableParallelism` follows the CPU affinity mask but not a container's CPU quota: set the
 * variable to the quota there (docs/kubernetes.md).
 */
export function modelThreads(env: NodeJS.ProcessEnv = process.env, cores: number = availableParallelism()): number {
  const raw = env[MODEL_THREADS_ENV]?.trim();
  if (!raw) return Math.max(1, Math.min(cores, DEFAULT_MAX_MODEL_THREADS));
  const threads = Number(raw);
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_MODEL_THREADS) {
    throw new Error(`${MODEL_THREADS_ENV} must be a whole number from 1 to ${MAX_MODEL_THREADS}, not ${JSON.stringify(raw)}`);
  }
  return threads;
}
