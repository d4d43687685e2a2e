/**
 * diffusers' LCMScheduler (Latent Consistency Models, Luo et al. 2023, multistep Algorithm 3):
 * timesteps picked from the `original_inference_steps`-long distillation schedule, and the
 * consistency boundary condition denoised = c_out·x̂₀ + c_skip·x.
 * @module
 */
import type { Random } from "../random.js";
import { alphasCumprod, type SchedulerConfig } from "./config.js";
import { checkIndex, checkSizes, type Scheduler } from "./scheduler.js";

/**
 * The distillation schedule is k·(1..original) − 1 with k = T ÷ original (50 steps: 19, 39 … 999);
 * reversed, then `steps` indices floor(linspace(0, len, steps, endpoint=false)) taken from it.
 */
export function lcmTimesteps(cfg: SchedulerConfig, steps: number, strength = 1): number[] {
  const T = cfg.num_train_timesteps;
  const original = cfg.original_inference_steps;
  if (original > T) throw new RangeError(`original_inference_steps ${original} exceeds num_train_timesteps ${T}`);
  const k = Math.floor(T / original);
  const origin = Array.from({ length: Math.floor(original * strength) }, (_, i) => (i + 1) * k - 1).reverse();
  if (!Number.isInteger(steps) || steps < 1 || steps > origin.length) throw new RangeError(`LCM takes 1..${origin.length} steps, got ${steps}`);
  return Array.from({ length: steps }, (_, i) => origin[Math.floor((i * origin.length) / steps)] ?? 0);
}

/** c_skip = σ_d²/((10t)² + σ_d²), c_out = 10t/sqrt((10t)² + σ_d²) with σ_d = 0.5 and 10 = timestep_scaling. */
export function lcmBoundaryScalings(cfg: SchedulerConfig, timestep: number): { cSkip: number; cOut: number } {
  const sigmaData = 0.5;
  const t = timestep * cfg.timestep_scaling;
  return { cSkip: (sigmaData * sigmaData) / (t * t + sigmaData * sigmaData), cOut: t / Math.sqrt(t * t + sigmaData * sigmaData) };
}

export class LCMScheduler implements Scheduler {
  readonly name = "LCMScheduler";
  readonly timesteps: readonly number[];
  readonly initNoiseSigma = 1;
  readonly #alphas: Float64Array;
  readonly #finalAlpha: number;

  constructor(
    private readonly cfg: SchedulerConfig,
    steps: number,
  ) {
    this.#alphas = alphasCumprod(cfg);
    this.#finalAlpha = cfg.set_alpha_to_one ? 1 : (this.#alphas[0] ?? 1);
    this.timesteps = lcmTimesteps(cfg, steps);
  }

  scaleModelInput(sample: Float32Array, i: number): Float32Array {
    checkIndex(this, i);
    return sample;
  }

  step(modelOutput: Float32Array, i: number, sample: Float32Array, rng: Random): Float32Array {
    checkIndex(this, i);
    checkSizes(modelOutput, sample);
    const t = this.timesteps[i] ?? 0;
    const last = i === this.timesteps.length - 1;
    const prevT = last ? t : (this.timesteps[i + 1] ?? 0);
    const alphaT = this.#alphas[t] ?? 1;
    const alphaPrev = prevT >= 0 ? (this.#alphas[prevT] ?? 1) : this.#finalAlpha;
    const { cSkip, cOut } = lcmBoundaryScalings(this.cfg, t);
    const sa = Math.sqrt(alphaT);
    const sb = Math.sqrt(1 - alphaT);
    const clip = this.cfg.clip_sample ? this.cfg.clip_sample_range : Infinity;
    const denoised = sample.map((x, j) => {
      const out = modelOutput[j] ?? 0;
      let x0 = this.cfg.prediction_type === "epsilon" ? (x - sb * out) / sa : this.cfg.prediction_type === "v_prediction" ? sa * x - sb * out : out;
      x0 = Math.min(Math.max(x0, -clip), clip);
      return cOut * x0 + cSkip * x;
    });
    // No noise after the last step, so one-step sampling is deterministic.
    if (last) return denoised;
    const pa = Math.sqrt(alphaPrev);
    const pb = Math.sqrt(1 - alphaPrev);
    return denoised.map((d) => pa * d + pb * rng.normal());
  }
}
