/**
 * What the denoising loop needs from a scheduler. Steps are addressed by index (0 … n−1) rather
 * than by timestep value, which is what diffusers tracks internally too (`_step_index`).
 * @module
 */
import type { Random } from "../random.js";

export interface Scheduler {
  readonly name: string;
  /** The timestep fed to the UNet at each step, high to low. */
  readonly timesteps: readonly number[];
  /** Standard deviation of the initial latent noise (multiply N(0, 1) latents by it). */
  readonly initNoiseSigma: number;
  /** The UNet's input at step `i` (Euler: sample / sqrt(σ² + 1); LCM: unchanged). */
  scaleModelInput(sample: Float32Array, i: number): Float32Array;
  /** The sample for step `i + 1` from the model's output at step `i`. `rng` supplies the noise of stochastic schedulers. */
  step(modelOutput: Float32Array, i: number, sample: Float32Array, rng: Random): Float32Array;
}

export function checkIndex(s: Scheduler, i: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= s.timesteps.length) throw new RangeError(`step index ${i} outside 0..${s.timesteps.length - 1}`);
}

export function checkSizes(a: Float32Array, b: Float32Array): void {
  if (a.length !== b.length) throw new RangeError(`model output has ${a.length} values, sample ${b.length}`);
}
