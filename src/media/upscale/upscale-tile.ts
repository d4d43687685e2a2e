/**
 * The model run on one tile, the one piece of arithmetic every thread shares: the main thread runs
 * it when it upscales alone, each worker of the pool when the work is split. Same window in, same
 * bytes out, whichever thread ran it.
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { ModelSpec } from "./model-specs.js";
import type { TileWindow } from "./tile-upscaler.js";

/** Runs `layers` on the tile's window and returns its core, rounded and clipped to 8 bits. */
export async function runModelOnTile(layers: tf.LayersModel, spec: ModelSpec, tile: TileWindow): Promise<Uint8Array> {
  const { pixels, width, height, coreX, coreY, coreWidth, coreHeight } = tile;
  const s = spec.scale;
  const toModel = spec.valueRange / 255;
  const fromModel = 255 / spec.valueRange;
  const input = new Float32Array(width * height * 3);
  for (let i = 0; i < input.length; i++) input[i] = pixels[i]! * toModel;

  const output = tf.tidy(() => layers.predict(tf.tensor4d(input, [1, height, width, 3])) as tf.Tensor);
  let values: Float32Array;
  try {
    values = (await output.data()) as Float32Array;
  } finally {
    output.dispose();
  }

  const core = new Uint8Array(coreWidth * s * coreHeight * s * 3);
  // The clamped view rounds and clips the model's float output to 0..255 as it is written.
  const coreClamped = new Uint8ClampedArray(core.buffer);
  const rowBytes = coreWidth * s * 3;
  const outWidth = width * s;
  for (let y = 0; y < coreHeight * s; y++) {
    const src = ((y + coreY * s) * outWidth + coreX * s) * 3;
    const dst = y * rowBytes;
    for (let i = 0; i < rowBytes; i++) coreClamped[dst + i] = values[src + i]! * fromModel;
  }
  return core;
}
