/**
 * Reading an input image's header before decoding it: apps refuse undecodable and oversized images
 * with a 422 on the input field before any pixel is decoded.
 * @module
 */
import sharp from "sharp";
import { fieldError } from "../../core/errors.js";

const megapixels = (pixels: number): string => (pixels / 1e6).toFixed(2);

/** The image's metadata; size after EXIF orientation is in `autoOrient`. Undecodable → 422 on `field`. */
export async function readImageHeader(data: Buffer, field = "image_url"): Promise<sharp.Metadata> {
  try {
    return await sharp(data).metadata();
  } catch (err) {
    throw fieldError(field, `could not decode the image: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Refuses an image over `maxPixels` with a 422 on `field` that names the limit. */
export function assertPixelLimit(width: number, height: number, maxPixels: number, field = "image_url"): void {
  if (width * height <= maxPixels) return;
  throw fieldError(
    field,
    `image is ${width}×${height} (${megapixels(width * height)} MP); the input limit is ${megapixels(maxPixels)} MP (${maxPixels} pixels)`,
  );
}
