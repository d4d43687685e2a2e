/**
 * 8-bit RGB images and the float tensors the pipeline's models take and give: VAE output (CHW,
 * [-1, 1]) and TAESD output ([0, 1]) to RGB, RGB to the VAE encoder's input, and a cheap preview of
 * SD latents without any model.
 * @module
 */

/** 8-bit RGB, rows top to bottom, 3 bytes per pixel. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * The well-known linear map from SD 1.x/2.x latent channels to RGB (rows: latent channels 0–3,
 * columns: R, G, B). Good enough for a preview, and it costs a few multiply-adds per latent pixel.
 */
export const LATENT_RGB_FACTORS: readonly (readonly [number, number, number])[] = [
  [0.298, 0.207, 0.208],
  [0.187, 0.286, 0.173],
  [-0.158, 0.189, 0.264],
  [-0.184, -0.271, -0.473],
];

/** Values in [-1, 1] (or [0, 1] with `unit`), CHW float → HWC bytes. */
export function toRgb(chw: Float32Array, width: number, height: number, unit = false): RgbImage {
  const plane = width * height;
  const data = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) {
      const v = chw[c * plane + p] ?? 0;
      const x = unit ? v : v / 2 + 0.5;
      data[p * 3 + c] = Math.round(Math.min(1, Math.max(0, x)) * 255);
    }
  }
  return { data, width, height };
}

/** HWC bytes → CHW float in [-1, 1], the VAE encoder's input range. */
export function fromRgb(image: RgbImage): Float32Array {
  const plane = image.width * image.height;
  const out = new Float32Array(plane * 3);
  for (let c = 0; c < 3; c++) for (let p = 0; p < plane; p++) out[c * plane + p] = ((image.data[p * 3 + c] ?? 0) / 255) * 2 - 1;
  return out;
}

/** A preview at latent resolution (1/8 of the image) through {@link LATENT_RGB_FACTORS}. */
export function latentPreview(latents: Float32Array, latentWidth: number, latentHeight: number): RgbImage {
  const plane = latentWidth * latentHeight;
  const data = new Uint8Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      let v = 0;
      for (let k = 0; k < 4; k++) v += (latents[k * plane + p] ?? 0) * (LATENT_RGB_FACTORS[k]?.[c] ?? 0);
      data[p * 3 + c] = Math.round(Math.min(1, Math.max(0, (v + 1) / 2)) * 255);
    }
  }
  return { data, width: latentWidth, height: latentHeight };
}
