/**
 * Image measures the app tests compare outputs with: differences between two equally sized 8-bit
 * planes (mean absolute difference, PSNR) and the sharpness of one image (Laplacian variance).
 * @module
 */
import assert from "node:assert/strict";
import sharp from "sharp";

/** Mean absolute difference of two equally sized 8-bit planes, 0..255. */
export function mad(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length, "same number of samples");
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] ?? 0) - (b[i] ?? 0));
  return sum / a.length;
}

/** Peak signal-to-noise ratio of two equally sized 8-bit planes, in dB (Infinity when identical). */
export function psnr(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length, "same number of samples");
  let se = 0;
  for (let i = 0; i < a.length; i++) se += ((a[i] ?? 0) - (b[i] ?? 0)) ** 2;
  return 10 * Math.log10((255 * 255) / (se / a.length));
}

/** Variance of the 4-neighbour Laplacian of the grey image: high-frequency energy, which a blur removes. */
export async function laplacianVariance(image: Buffer): Promise<number> {
  const { data, info } = await sharp(image).greyscale().raw().toBuffer({ resolveWithObject: true });
  const { width: w, height: h } = info;
  let sum = 0;
  let sumSq = 0;
  let n = 0;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const i = y * w + x;
      const v = 4 * data[i]! - data[i - 1]! - data[i + 1]! - data[i - w]! - data[i + w]!;
      sum += v;
      sumSq += v * v;
      n++;
    }
  }
  return sumSq / n - (sum / n) ** 2;
}
