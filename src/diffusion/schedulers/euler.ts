/**
 * diffusers' EulerDiscreteScheduler and EulerAncestralDiscreteScheduler (k-diffusion's Euler and
 * Euler-a) for ε- and v-prediction, linear sigma interpolation, no churn and no Karras sigmas.
 * @module
 */
import type { Random } from "../random.js";
import { alphasCumprod, interp, spacedTimesteps, trainingSigmas, type SchedulerConfig } from "./config.js";
import { checkIndex, checkSizes, type Scheduler } from "./scheduler.js";

/** σ at each inference timestep (interpolated between training steps), then a final 0. */
export function eulerSigmas(cfg: SchedulerConfig, timesteps: readonly number[]): number[] {
  const sigmas = trainingSigmas(alphasCumprod(cfg));
  return [...timesteps.map((t) => interp(t, sigmas)), 0];
}

/**
 * diffusers: the initial noise is σ_max for linspace/trailing spacing and sqrt(σ_max² + 1) for
 * leading, matching how each was trained into the original pipelines.
 */
export function eulerInitNoiseSigma(cfg: SchedulerConfig, sigmas: readonly number[]): number {
  const max = Math.max(...sigmas);
  return cfg.timestep_spacing === "linspace" || cfg.timestep_spacing === "trailing" ? max : Math.sqrt(max * max + 1);
}

abstract class EulerBase implements Scheduler {
  abstract readonly name: string;
  readonly timesteps: readonly number[];
  readonly sigmas: readonly number[];
  readonly initNoiseSigma: number;

  constructor(
    protected readonly cfg: SchedulerConfig,
    steps: number,
  ) {
    if (cfg.prediction_type === "sample") throw new Error("Euler schedulers here support epsilon and v_prediction only");
    this.timesteps = spacedTimesteps(cfg, steps);
    this.sigmas = eulerSigmas(cfg, this.timesteps);
    this.initNoiseSigma = eulerInitNoiseSigma(cfg, this.sigmas);
  }

  scaleModelInput(sample: Float32Array, i: number): Float32Array {
    checkIndex(this, i);
    const sigma = this.sigmas[i] ?? 0;
    const k = 1 / Math.sqrt(sigma * sigma + 1);
    return sample.map((v) => v * k);
  }

  /** x̂₀ from the model output: ε → x − σε; v → v·(−σ/sqrt(σ²+1)) + x/(σ²+1). */
  protected predictOriginal(modelOutput: Float32Array, sample: Float32Array, sigma: number): Float32Array {
    if (this.cfg.prediction_type === "epsilon") return sample.map((x, j) => x - sigma * (modelOutput[j] ?? 0));
    const a = -sigma / Math.sqrt(sigma * sigma + 1);
    const b = 1 / (sigma * sigma + 1);
    return sample.map((x, j) => (modelOutput[j] ?? 0) * a + x * b);
  }

  abstract step(modelOutput: Float32Array, i: number, sample: Float32Array, rng: Random): Float32Array;
}

export class EulerDiscreteScheduler extends EulerBase {
  readonly name = "EulerDiscreteScheduler";

  /** x_{i+1} = x + (σ_{i+1} − σ_i)·(x − x̂₀)/σ_i, which for ε-prediction is x + (σ_{i+1} − σ_i)·ε. */
  step(modelOutput: Float32Array, i: number, sample: Float32Array, _rng?: Random): Float32Array {
    checkIndex(this, i);
    checkSizes(modelOutput, sample);
    const sigma = this.sigmas[i] ?? 0;
    const dt = (this.sigmas[i + 1] ?? 0) - sigma;
    const x0 = this.predictOriginal(modelOutput, sample, sigma);
    return sample.map((x, j) => x + ((x - (x0[j] ?? 0)) / sigma) * dt);
  }
}

export class EulerAncestralDiscreteScheduler extends EulerBase {
  readonly name = "EulerAncestralDiscreteScheduler";

  /** σ_up = sqrt(σ_to²(σ_from² − σ_to²)/σ_from²) and σ_down = sqrt(σ_to² − σ_up²). */
  ancestral(i: number): { sigmaUp: number; sigmaDown: number } {
    const from = this.sigmas[i] ?? 0;
    const to = this.sigmas[i + 1] ?? 0;
    const sigmaUp = Math.sqrt((to * to * (from * from - to * to)) / (from * from));
    return { sigmaUp, sigmaDown: Math.sqrt(to * to - sigmaUp * sigmaUp) };
  }

  /** Euler to σ_down, then fresh noise of σ_up: x + (σ_down − σ)·d + σ_up·z. */
  step(modelOutput: Float32Array, i: number, sample: Float32Array, rng: Random): Float32Array {
    checkIndex(this, i);
    checkSizes(modelOutput, sample);
    const sigma = this.sigmas[i] ?? 0;
    const { sigmaUp, sigmaDown } = this.ancestral(i);
    const dt = sigmaDown - sigma;
    const x0 = this.predictOriginal(modelOutput, sample, sigma);
    return sample.map((x, j) => x + ((x - (x0[j] ?? 0)) / sigma) * dt + (sigmaUp > 0 ? rng.normal() * sigmaUp : 0));
  }
}
