/**
 * `scheduler/scheduler_config.json` fields and the noise schedule they define (diffusers'
 * `betas` → `alphas_cumprod` → `sigmas`).
 * @module
 */
import { readFile } from "node:fs/promises";
import path from "node:path";

export type TimestepSpacing = "linspace" | "leading" | "trailing";
export type PredictionType = "epsilon" | "v_prediction" | "sample";

/** The scheduler_config.json fields these schedulers read; diffusers' defaults where absent. */
export interface SchedulerConfig {
  _class_name: string;
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: "linear" | "scaled_linear";
  prediction_type: PredictionType;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
  /** LCM: the distillation schedule's length. */
  original_inference_steps: number;
  /** LCM: multiplies the timestep in c_skip/c_out. */
  timestep_scaling: number;
  /** LCM/DDIM: the final alpha_cumprod is 1 (true) or alphas_cumprod[0]. */
  set_alpha_to_one: boolean;
  clip_sample: boolean;
  clip_sample_range: number;
}

export const SCHEDULER_DEFAULTS: Omit<SchedulerConfig, "_class_name"> = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  prediction_type: "epsilon",
  timestep_spacing: "linspace",
  steps_offset: 0,
  original_inference_steps: 50,
  timestep_scaling: 10,
  set_alpha_to_one: true,
  clip_sample: false,
  clip_sample_range: 1,
};

export function parseSchedulerConfig(raw: Record<string, unknown>): SchedulerConfig {
  const cfg: SchedulerConfig = { ...SCHEDULER_DEFAULTS, _class_name: "EulerDiscreteScheduler" };
  for (const key of Object.keys(cfg) as (keyof SchedulerConfig)[]) {
    const v = raw[key];
    if (v !== undefined && v !== null && typeof v === typeof cfg[key]) (cfg as unknown as Record<string, unknown>)[key] = v;
  }
  if (cfg.beta_schedule !== "linear" && cfg.beta_schedule !== "scaled_linear") throw new Error(`unsupported beta_schedule '${String(cfg.beta_schedule)}'`);
  if (!["linspace", "leading", "trailing"].includes(cfg.timestep_spacing)) throw new Error(`unsupported timestep_spacing '${String(cfg.timestep_spacing)}'`);
  if (!["epsilon", "v_prediction", "sample"].includes(cfg.prediction_type)) throw new Error(`unsupported prediction_type '${String(cfg.prediction_type)}'`);
  return cfg;
}

export async function loadSchedulerConfig(modelDir: string): Promise<SchedulerConfig> {
  const raw = JSON.parse(await readFile(path.join(modelDir, "scheduler", "scheduler_config.json"), "utf8")) as Record<string, unknown>;
  return parseSchedulerConfig(raw);
}

/** `np.linspace(start, stop, n)` */
export function linspace(start: number, stop: number, n: number): number[] {
  if (n === 1) return [start];
  return Array.from({ length: n }, (_, i) => start + ((stop - start) * i) / (n - 1));
}

/**
 * ᾱ_t = Π(1 − β). diffusers builds betas in float32 (`torch.linspace(..., dtype=torch.float32)`);
 * this keeps float64, which moves sigmas by about 1e-7 relative.
 */
export function alphasCumprod(cfg: SchedulerConfig): Float64Array {
  const n = cfg.num_train_timesteps;
  const betas =
    cfg.beta_schedule === "scaled_linear" ? linspace(Math.sqrt(cfg.beta_start), Math.sqrt(cfg.beta_end), n).map((b) => b * b) : linspace(cfg.beta_start, cfg.beta_end, n);
  const out = new Float64Array(n);
  let acc = 1;
  for (let i = 0; i < n; i++) {
    acc *= 1 - (betas[i] ?? 0);
    out[i] = acc;
  }
  return out;
}

/** σ_t = sqrt((1 − ᾱ_t) / ᾱ_t) for every training timestep. */
export function trainingSigmas(alphas: Float64Array): Float64Array {
  return alphas.map((a) => Math.sqrt((1 - a) / a));
}

/**
 * Inference timesteps for the Euler schedulers, high to low (diffusers' `set_timesteps`):
 * linspace → linspace(0, T−1, n) reversed; leading → (0..n−1)·(T÷n) reversed, + steps_offset;
 * trailing → round(arange(T, 0, −T/n)) − 1.
 */
export function spacedTimesteps(cfg: SchedulerConfig, steps: number): number[] {
  const T = cfg.num_train_timesteps;
  if (!Number.isInteger(steps) || steps < 1 || steps > T) throw new RangeError(`num_inference_steps must be 1..${T}, got ${steps}`);
  switch (cfg.timestep_spacing) {
    case "linspace":
      return linspace(0, T - 1, steps).reverse();
    case "leading": {
      const ratio = Math.floor(T / steps);
      return Array.from({ length: steps }, (_, i) => roundHalfEven(i * ratio) + cfg.steps_offset).reverse();
    }
    case "trailing": {
      const ratio = T / steps;
      // np.arange(T, 0, -ratio): ceil((0 − T) / −ratio) values T + i·(−ratio), as numpy computes them.
      const count = Math.ceil((0 - T) / -ratio);
      return Array.from({ length: count }, (_, i) => roundHalfEven(T + i * -ratio) - 1);
    }
  }
}

/** numpy's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `np.interp(x, arange(len(ys)), ys)` */
export function interp(x: number, ys: ArrayLike<number>): number {
  const n = ys.length;
  if (x <= 0) return ys[0] ?? 0;
  if (x >= n - 1) return ys[n - 1] ?? 0;
  const i = Math.floor(x);
  const f = x - i;
  return (ys[i] ?? 0) * (1 - f) + (ys[i + 1] ?? 0) * f;
}
