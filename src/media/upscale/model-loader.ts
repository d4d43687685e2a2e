/**
 * Loads the UpscalerJS ESRGAN models (tfjs layers models shipped inside their npm packages) from disk
 * into this thread's tfjs, and prepares the tfjs backend they run on. Kept free of platform code so
 * that benchmarks, tests and the pool's worker threads can use it directly.
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { modelFileHandler } from "../tfjs/model-files.js";
import { initBackend } from "../tfjs/wasm-backend.js";
import { modelJsonPath, modelSpec, type ModelScale, type ModelSize } from "./model-specs.js";
import type { TileUpscaler } from "./tile-upscaler.js";
import { runModelOnTile } from "./upscale-tile.js";

export { MODEL_SIZES, modelJsonPath, type ModelScale, type ModelSize } from "./model-specs.js";

/** A model loaded in this thread: it upscales one tile at a time, here. */
export interface UpscaleModel extends TileUpscaler {
  readonly layers: tf.LayersModel;
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

/** Loads one model from its package into this thread. The backend is initialised first if needed. */
export async function loadUpscaleModel(
  size: ModelSize,
  scale: ModelScale,
  log: (message: string) => void = () => {},
): Promise<UpscaleModel> {
  await initBackend(log);
  if (size === "thick") registerCustomLayers();
  const layers = await tf.loadLayersModel(modelFileHandler(modelJsonPath(size, scale)));
  const spec = modelSpec(size, scale);
  return {
    ...spec,
    layers,
    // One wasm thread: a second tile would only wait for the first.
    parallelism: 1,
    upscaleTile: async (tile, signal) => {
      signal?.throwIfAborted();
      return runModelOnTile(layers, spec, tile);
    },
  };
}
