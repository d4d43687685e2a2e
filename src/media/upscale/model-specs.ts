/**
 * What is known about each ESRGAN model without loading it: sizes, scales, value ranges, the context
 * a tile needs, and where its files are. Free of tfjs, so that a thread that only hands out tiles
 * (the main thread when workers run the model) never pays tfjs's import.
 * @module
 */
import path from "node:path";
import { packageDir } from "../tfjs/package-dir.js";

/** The three model sizes UpscalerJS publishes: each trades latency for quality. */
export type ModelSize = "slim" | "medium" | "thick";
/** Scales every package ships a model for (folders `models/x2` ... `models/x8`). */
export type ModelScale = 2 | 3 | 4 | 8;

export const MODEL_SIZES: readonly ModelSize[] = ["slim", "medium", "thick"];

/** One model, named. */
export interface ModelKey {
  readonly size: ModelSize;
  readonly scale: ModelScale;
}

/** What a caller must know to feed a model and crop its output. */
export interface ModelSpec extends ModelKey {
  /**
   * Pixel value that maps to full intensity at the model's input and output. The RDN models
   * (slim, medium) work on 0..255; the RRDN model (thick) on 0..1, as UpscalerJS's own model
   * definitions declare (`inputRange`/`outputRange`).
   */
  readonly valueRange: 1 | 255;
  /** Input pixels of context a tile needs on each side for its core to match a whole-image run. */
  readonly contextPx: number;
}

const PACKAGES: Record<ModelSize, string> = {
  slim: "@upscalerjs/esrgan-slim",
  medium: "@upscalerjs/esrgan-medium",
  thick: "@upscalerjs/esrgan-thick",
};

const VALUE_RANGE: Record<ModelSize, 1 | 255> = { slim: 255, medium: 255, thick: 1 };

/**
 * Summing the conv radii along the longest path of each model.json gives receptive radii of 10
 * (slim), 18 (medium) and 154 (thick) input pixels. Measured on a photo crop tiled at 32 px: 10 px
 * of context makes slim bit-identical to an untiled run, 16 px makes medium identical and thick
 * within one grey level (PSNR 96 dB); more context only costs time.
 */
const CONTEXT_PX: Record<ModelSize, number> = { slim: 10, medium: 16, thick: 16 };

/** The models both upscale apps load in `setup()`, so that a default request pays no load time. */
export const PRELOADED_MODELS: readonly ModelKey[] = [
  { size: "slim", scale: 2 },
  { size: "slim", scale: 4 },
];

export function modelSpec(size: ModelSize, scale: ModelScale): ModelSpec {
  return { size, scale, valueRange: VALUE_RANGE[size], contextPx: CONTEXT_PX[size] };
}

/** `model.json` of one size and scale. */
export function modelJsonPath(size: ModelSize, scale: ModelScale): string {
  return path.join(packageDir(PACKAGES[size]), "models", `x${scale}`, "model.json");
}
