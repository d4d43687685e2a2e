/**
 * `darkroom/upscale`: ×2 or ×4 super-resolution with the UpscalerJS ESRGAN models on the tfjs wasm
 * backend. This file is the platform glue (input, limits, progress, storage); the model work lives in
 * `src/media/upscale/` (models, tiling, the worker threads that share one request's tiles), which
 * `darkroom/video-upscale` shares.
 * @module
 */
import sharp from "sharp";
import { fieldError } from "../../core/errors.js";
import { defineApp, endpoint, FileUrl, ImageSchema, z, type HandlerContext } from "../../runtime/sdk.js";
import { packageWeights } from "../../media/package-weights.js";
import { type UpscaleAppState, upscaleAppLifecycle } from "../../media/upscale/model-cache.js";
import { upscaleRaw } from "../../media/upscale/tiled-upscale.js";
import { readImageHeader } from "../../media/image/image-header.js";
import { IMAGE_FORMATS } from "../../media/image/formats.js";

/** 2048² pixels: decoding and tiling stay within a few hundred MB of memory. */
export const MAX_INPUT_PIXELS = 2048 * 2048;
/** 4096² pixels: the raw output (48 MiB RGB) and its encoding stay bounded, and ×4 of 1024² still fits. */
export const MAX_OUTPUT_PIXELS = 4096 * 4096;

const UpscaleInput = z.object({
  image_url: FileUrl.describe(
    "Image to upscale (http(s) URL or data: URI): PNG, JPEG, WebP, GIF, TIFF or AVIF. At most 4.2 megapixels " +
      "(2048×2048), and the output at most 16.8 megapixels (4096×4096). EXIF orientation is applied.",
  ),
  scale: z.literal([2, 4]).default(2).describe("Upscaling factor"),
  model: z
    .enum(["slim", "medium", "thick"])
    .default("slim")
    .describe(
      "ESRGAN size: slim is fastest, medium a little sharper at about 2× the time, thick sharpest but about 20× " +
        "slower than slim (15 s for a 128×128 input on one CPU core, so inputs much over 0.5 MP can exceed the " +
        "600 s request timeout)",
    ),
  output_format: z.enum(["png", "jpeg", "webp"]).default("png").describe("Encoding of the output image"),
});

const UpscaleOutput = z.object({ image: ImageSchema.describe("The upscaled image") });

const megapixels = (pixels: number): string => (pixels / 1e6).toFixed(2);

/** Rejects images over the documented limits from the header alone, before decoding any pixels. */
function checkLimits(width: number, height: number, scale: number): void {
  if (width * height > MAX_INPUT_PIXELS) {
    throw fieldError(
      "image_url",
      `image is ${width}×${height} (${megapixels(width * height)} MP); the input limit is ` +
        `${megapixels(MAX_INPUT_PIXELS)} MP (${MAX_INPUT_PIXELS} pixels, e.g. 2048×2048)`,
    );
  }
  const outPixels = width * scale * height * scale;
  if (outPixels > MAX_OUTPUT_PIXELS) {
    throw fieldError(
      "image_url",
      `output would be ${width * scale}×${height * scale} (${megapixels(outPixels)} MP); the output limit is ` +
        `${megapixels(MAX_OUTPUT_PIXELS)} MP (${MAX_OUTPUT_PIXELS} pixels, e.g. 4096×4096): use a smaller scale or image`,
    );
  }
}

async function upscale(
  input: z.output<typeof UpscaleInput>,
  ctx: HandlerContext<UpscaleAppState>,
): Promise<z.input<typeof UpscaleOutput>> {
  const { data } = await ctx.files.read(input.image_url);

  const meta = await readImageHeader(data);
  // autoOrient holds the size after the EXIF rotation, which is the size that gets upscaled.
  const { width, height } = meta.autoOrient;
  checkLimits(width, height, input.scale);

  const channels = meta.hasAlpha ? 4 : 3;
  const decoder = sharp(data, { limitInputPixels: MAX_INPUT_PIXELS }).autoOrient().toColourspace("srgb");
  const pixels = await (channels === 4 ? decoder.ensureAlpha() : decoder.removeAlpha())
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  ctx.throwIfCancelled();

  const model = await ctx.state.models.get(input.model, input.scale);
  const started = performance.now();
  ctx.log(`upscaling ${width}×${height} ×${input.scale} with ESRGAN ${input.model}`);
  const result = await upscaleRaw(
    model,
    { data: pixels.data, width: pixels.info.width, height: pixels.info.height, channels },
    {
      scale: input.scale,
      signal: ctx.signal,
      onTile: (done, total) => ctx.progress(done, total, `tile ${done}/${total}`),
    },
  );

  let encoder = sharp(result.data, { raw: { width: result.width, height: result.height, channels: result.channels } });
  if (input.output_format === "png") encoder = encoder.png();
  // JPEG has no alpha: flatten onto white, else colour hidden under transparent pixels shows through.
  else if (input.output_format === "jpeg") encoder = encoder.flatten({ background: "#ffffff" }).jpeg({ quality: 95 });
  else encoder = encoder.webp({ quality: 95 });
  const encoded = await encoder.toBuffer();
  ctx.log(`${result.width}×${result.height} ${input.output_format} in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const format = IMAGE_FORMATS[input.output_format];
  const file = await ctx.files.put(encoded, {
    contentType: format.contentType,
    fileName: `upscaled-x${input.scale}.${format.ext}`,
    width: result.width,
    height: result.height,
  });
  ctx.bill((result.width * result.height) / 1e6);
  return { image: { ...file, width: result.width, height: result.height } };
}

export default defineApp<UpscaleAppState>({
  id: "darkroom/upscale",
  version: "1.0.0",
  metadata: {
    // Made from this app's own output by scripts/make-thumbnails.ts.
    thumbnail_url: "/thumbnails/upscale.webp",
    display_name: "Upscale (ESRGAN)",
    category: "image-to-image",
    description:
      "Upscales images ×2 or ×4 with ESRGAN-family super-resolution networks (slim, medium, thick), " +
      "running on CPU through TensorFlow.js WebAssembly. Alpha is kept (resized with Lanczos).",
    tags: ["upscale", "super-resolution", "esrgan", "image-to-image", "cpu"],
    license: "MIT (code and model weights: @upscalerjs/esrgan-slim, -medium, -thick 1.0.0, © 2022 Kevin Scott)",
    weights_origin:
      "npm @upscalerjs/esrgan-slim, @upscalerjs/esrgan-medium and @upscalerjs/esrgan-thick 1.0.0 (UpscalerJS, " +
      "github.com/thekevinscott/UpscalerJS). RDN (slim, medium) and RRDN (thick) networks in the Keras architecture " +
      "of idealo/image-super-resolution (Apache-2.0), trained by UpscalerJS on DIV2K, as the model names in the " +
      "packages record (e.g. rdn-C1-D2-G4-G064-T10-x4-…-datadiv2k); not idealo's own published weights",
  },
  // Two runners: a second request starts at once rather than queue behind the first. One request
  // alone spreads its tiles over every core (DARKROOM_MODEL_THREADS worker threads per runner); two
  // at once share them, at the images per second of two one-thread runners (bench/README.md,
  // model-threads). Tiling keeps each runner's memory bounded. Fewer or more with --app-knobs.
  knobs: { max_runners: 2, keep_alive: 300, request_timeout: 600, startup_timeout: 120 },
  // The same input gives the same output; requests reuse results when they ask (X-Darkroom-Cache).
  cache: { reuse: "deterministic", default: "off" },
  weights: () => packageWeights(["@upscalerjs/esrgan-slim", "@upscalerjs/esrgan-medium", "@upscalerjs/esrgan-thick"]),
  ...upscaleAppLifecycle,
  endpoints: [
    endpoint({
      path: "",
      description: "Upscale one image",
      input: UpscaleInput,
      output: UpscaleOutput,
      handler: upscale,
      // Off unless asked: an upscale invents no content, so its output is as safe as the client's own
      // input, and checking costs ~0.2 s per image plus the NSFW model's load (0.5 s in this runner).
      safetyChecker: { default: false },
    }),
  ],
});
