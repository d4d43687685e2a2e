/**
 * Loads the UpscalerJS ESRGAN models (tfjs layers models shipped inside their npm packages) from disk
 * and prepares the tfjs backend they run on. Kept free of platform code so that benchmarks and
 * tests can use it directly.
 * @module
 */
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { modelFileHandler } from "../tfjs/model-files.js";
import { packageDir } from "../tfjs/package-dir.js";
import { initBackend } from "../tfjs/wasm-backend.js";

/** The three model sizes UpscalerJS publishes: each trades latency for quality. */
export type ModelSize = "slim" | "medium" | "thick";
/** Scales every package ships a model for (folders `models/x2` ... `models/x8`). */
export type ModelScale = 2 | 3 | 4 | 8;

export const MODEL_SIZES: readonly ModelSize[] = ["slim", "medium", "thick"];

/** A loaded model plus what a caller must know to feed it. */
export interface UpscaleModel {
  readonly size: ModelSize;
  readonly scale: ModelScale;
  readonly layers: tf.LayersModel;
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

/** `model.json` of one size and scale. */
export function modelJsonPath(size: ModelSize, scale: ModelScale): string {
  return path.join(packageDir(PACKAGES[size]), "models", `x${scale}`, "model.json");
}

function firstInput(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  const t = Array.isArray(inputs) ? inputs[0] : inputs;
  if (!t) throw new Error("layer called without an input");
  return t;
}

/** Residual scaling of the RRDN blocks (ESRGAN's β = 0.2); the value is fixed in UpscalerJS's definition. */
class MultiplyBeta extends tf.layers.Layer {
  static readonly className = "MultiplyBeta";
  readonly beta = 0.2;

  constructor() {
    super({});
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.mul(firstInput(inputs), this.beta);
  }
}

/** Sub-pixel upsampling (depth-to-space) to RGB, one class per scale because the name encodes it. */
function pixelShuffle(scale: ModelScale): tf.serialization.SerializableConstructor<tf.layers.Layer> {
  return class PixelShuffle extends tf.layers.Layer {
    static readonly className = `PixelShuffle${scale}x`;

    constructor() {
      super({});
    }

    override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
      const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
      const mul = (d: number | null | undefined): number | null => (d == null ? null : d * scale);
      return [shape[0] ?? null, mul(shape[1]), mul(shape[2]), 3];
    }

    override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
      return tf.depthToSpace(firstInput(inputs) as tf.Tensor4D, scale, "NHWC");
    }
  };
}

let layersRegistered = false;

/** Registers the custom Keras layers of esrgan-thick (class names as they appear in its model.json). */
export function registerCustomLayers(): void {
  if (layersRegistered) return;
  tf.serialization.registerClass(MultiplyBeta);
  for (const scale of [2, 3, 4, 8] as const) tf.serialization.registerClass(pixelShuffle(scale));
  layersRegistered = true;
}

/** Loads one model from its package. The backend is initialised first if needed. */
export async function loadUpscaleModel(
  size: ModelSize,
  scale: ModelScale,
  log: (message: string) => void = () => {},
): Promise<UpscaleModel> {
  await initBackend(log);
  if (size === "thick") registerCustomLayers();
  const layers = await tf.loadLayersModel(modelFileHandler(modelJsonPath(size, scale)));
  return { size, scale, layers, valueRange: VALUE_RANGE[size], contextPx: CONTEXT_PX[size] };
}

/**
 * Loads each (size, scale) model at most once and keeps it. Concurrent callers share one load;
 * a failed load is forgotten so that a later request can try again.
 */
export class ModelCache {
  readonly #loading = new Map<string, Promise<UpscaleModel>>();
  readonly #log: (message: string) => void;

  constructor(log: (message: string) => void = () => {}) {
    this.#log = log;
  }

  get(size: ModelSize, scale: ModelScale): Promise<UpscaleModel> {
    const key = `${size}/x${scale}`;
    let pending = this.#loading.get(key);
    if (!pending) {
      const started = performance.now();
      pending = loadUpscaleModel(size, scale, this.#log).then(
        (model) => {
          this.#log(`loaded esrgan-${key} in ${Math.round(performance.now() - started)} ms`);
          return model;
        },
        (err: unknown) => {
          this.#loading.delete(key);
          throw err;
        },
      );
      this.#loading.set(key, pending);
    }
    return pending;
  }

  /** Frees the weights of every loaded model. */
  async dispose(): Promise<void> {
    const loads = [...this.#loading.values()];
    this.#loading.clear();
    for (const result of await Promise.allSettled(loads)) {
      if (result.status === "fulfilled") result.value.layers.dispose();
    }
  }
}

/**
 * Setup shared by darkroom/upscale and darkroom/video-upscale: starts the backend (logging which one
 * runs) and loads the default models, slim ×2 and ×4, so that the first request pays no load time;
 * other sizes load on first use.
 */
export async function preloadModelCache(log: (message: string) => void): Promise<ModelCache> {
  const backend = await initBackend(log);
  log(`tfjs backend: ${backend}`);
  const models = new ModelCache(log);
  await Promise.all([models.get("slim", 2), models.get("slim", 4)]);
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
