/**
 * Schedulers for the turbo and LCM models, built from a model's scheduler_config.json.
 * @module
 */
import { parseSchedulerConfig, type SchedulerConfig } from "./config.js";
import { EulerAncestralDiscreteScheduler, EulerDiscreteScheduler } from "./euler.js";
import { LCMScheduler } from "./lcm.js";
import type { Scheduler } from "./scheduler.js";

export { alphasCumprod, linspace, loadSchedulerConfig, parseSchedulerConfig, spacedTimesteps, trainingSigmas, type PredictionType, type SchedulerConfig, type TimestepSpacing } from "./config.js";
export { EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, eulerInitNoiseSigma, eulerSigmas } from "./euler.js";
export { LCMScheduler, lcmBoundaryScalings, lcmTimesteps } from "./lcm.js";
export type { Scheduler } from "./scheduler.js";

export const SCHEDULER_NAMES = ["EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "LCMScheduler"] as const;

/**
 * The scheduler named by `_class_name` (or `override`, to run a model with another one), set for
 * `steps` inference steps.
 */
export function createScheduler(config: SchedulerConfig | Record<string, unknown>, steps: number, override?: (typeof SCHEDULER_NAMES)[number]): Scheduler {
  const cfg = parseSchedulerConfig({ ...config });
  switch (override ?? cfg._class_name) {
    case "EulerDiscreteScheduler":
      return new EulerDiscreteScheduler(cfg, steps);
    case "EulerAncestralDiscreteScheduler":
      return new EulerAncestralDiscreteScheduler(cfg, steps);
    case "LCMScheduler":
      return new LCMScheduler(cfg, steps);
    default:
      throw new Error(`scheduler '${cfg._class_name}' is not supported (supported: ${SCHEDULER_NAMES.join(", ")})`);
  }
}
