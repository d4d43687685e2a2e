/**
 * The denoising loop around a UNet: seeded initial latents, the scheduler's input scaling and
 * steps, and classifier-free guidance. The UNet itself is a callback, so the loop runs the same
 * with ONNX Runtime, a remote runner, or a test double.
 * @module
 */
import { Random } from "./random.js";
import type { Scheduler } from "./schedulers/scheduler.js";

export interface DenoiseOptions {
  scheduler: Scheduler;
  /** Number of latent values (1·4·64·64 for a 512×512 image). */
  size: number;
  seed: number;
  /**
   * The model's output for the scaled latents at `timestep`. With `guidanceScale > 1` it must
   * return two outputs back to back, unconditional first (a batch of 2, as diffusers runs it).
   */
  predict: (input: Float32Array, timestep: number, step: number) => Promise<Float32Array>;
  /** Classifier-free guidance weight; ≤ 1 runs the conditional prediction only (SD-Turbo, LCM). @default 0 */
  guidanceScale?: number;
  /** Starting latents instead of seeded noise (image-to-image); still scaled by initNoiseSigma. */
  latents?: Float32Array;
  onStep?: (step: number, total: number) => void;
  signal?: AbortSignal;
}

export async function denoise(options: DenoiseOptions): Promise<Float32Array> {
  const { scheduler, size, predict } = options;
  const rng = new Random(options.seed);
  // Latent noise comes first from the generator, then the schedulers' per-step noise, so one seed fixes both.
  const initial = options.latents ?? rng.normals(size);
  if (initial.length !== size) throw new RangeError(`latents have ${initial.length} values, expected ${size}`);
  let sample: Float32Array = initial.map((v) => v * scheduler.initNoiseSigma);
  const guided = (options.guidanceScale ?? 0) > 1;
  const total = scheduler.timesteps.length;
  for (let i = 0; i < total; i++) {
    options.signal?.throwIfAborted();
    const t = scheduler.timesteps[i] ?? 0;
    const out = await predict(scheduler.scaleModelInput(sample, i), t, i);
    let eps: Float32Array = out;
    if (guided) {
      if (out.length !== 2 * size) throw new RangeError(`guided prediction has ${out.length} values, expected ${2 * size}`);
      const g = options.guidanceScale ?? 0;
      eps = new Float32Array(size);
      for (let j = 0; j < size; j++) {
        const u = out[j] ?? 0;
        eps[j] = u + g * ((out[size + j] ?? 0) - u);
      }
    } else if (out.length !== size) throw new RangeError(`prediction has ${out.length} values, expected ${size}`);
    sample = scheduler.step(eps, i, sample, rng);
    options.onStep?.(i + 1, total);
  }
  return sample;
}
