/**
 * The image encodings apps offer as `output_format`: the content type and file extension each is
 * stored under.
 * @module
 */

export const IMAGE_FORMATS = {
  png: { contentType: "image/png", ext: "png" },
  jpeg: { contentType: "image/jpeg", ext: "jpg" },
  webp: { contentType: "image/webp", ext: "webp" },
} as const;

export type ImageFormat = keyof typeof IMAGE_FORMATS;
