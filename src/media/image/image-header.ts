/**
 * Reading an input image's header before decoding it: apps refuse undecodable and oversized images
 * with a 422 on the input field before any pixel is decoded.
 * @module
 */
import sharp from "sharp";
import { fieldError } from "../../core/errors.js";
import type { InputFiles } from "../context.js";

const megapixels = (pixels: number): string => (pixels / 1e6).toFixed(2);
const reason = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The image's metadata; size after EXIF orientation is in `autoOrient`. Undecodable → 422 on `field`. */
export async function readImageHeader(data: Buffer, field = "image_url"): Promise<sharp.Metadata> {
  try {
    return await sharp(data).metadata();
  } catch (err) {
    throw fieldError(field, `could not decode the image: ${reason(err)}`);
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

/**
 * The header of an image within `maxPixels` after EXIF orientation: an oversized image is refused
 * from its header alone, before any pixel is decoded.
 */
export async function readImageHeaderWithin(data: Buffer, maxPixels: number, field = "image_url"): Promise<sharp.Metadata> {
  const meta = await readImageHeader(data, field);
  assertPixelLimit(meta.autoOrient.width, meta.autoOrient.height, maxPixels, field);
  return meta;
}

/** Reads the input image at `url` and refuses it from its header when it is over `maxPixels`. */
export async function readInputImage(ctx: InputFiles, url: string, maxPixels: number, field = "image_url"): Promise<Buffer> {
  const { data } = await ctx.files.read(url);
  await readImageHeaderWithin(data, maxPixels, field);
  return data;
}

/** Runs `decode`; its failure is a 422 on `field`, since a header can parse while the pixel data is truncated or corrupt. */
export async function decodeImageOrRefuse<T>(decode: () => Promise<T>, field = "image_url"): Promise<T> {
  try {
    return await decode();
  } catch (err) {
    throw fieldError(field, `could not decode the image: ${reason(err)}`);
  }
}
