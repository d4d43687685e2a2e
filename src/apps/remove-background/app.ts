/**
 * `darkroom/remove-background`: cuts the people out of a photo with Robust Video Matting on the tfjs
 * wasm backend, returning an RGBA cut-out and the alpha matte. This file is the platform glue (input,
 * limits, progress, storage); the model work lives in `src/media/matting/`.
 * @module
 */
import sharp from "sharp";
import { defineApp, endpoint, FileUrl, ImageSchema, z, type HandlerContext } from "../../runtime/sdk.js";
import { packageWeights } from "../../media/package-weights.js";
import { RVM_PACKAGE } from "../../media/matting/rvm-model.js";
import { decodeImageOrRefuse, readImageHeaderWithin } from "../../media/image/image-header.js";
import { IMAGE_FORMATS } from "../../media/image/formats.js";
import { alphaOf, cutout } from "../../media/matting/compose.js";
import { RVM_LICENSE, RVM_WEIGHTS_ORIGIN } from "../../media/matting/provenance.js";
import { readLimited } from "../../media/matting/read-input.js";
import { autoDownsampleRatio, type RvmAppState, rvmAppLifecycle } from "../../media/matting/rvm-model.js";

/**
 * 2048² pixels: RVM refines at full resolution, and a 2048² image peaks at about 1.1 GB of runner
 * memory and 4 s on one core; larger inputs would gain nothing from a first stage that sees 256 px.
 */
export const MAX_INPUT_PIXELS = 2048 * 2048;
/** 25 MiB of encoded input: above any 8-bit PNG within the pixel limit, and under the gateway's 32 MiB JSON body as a data URI. */
export const MAX_INPUT_BYTES = 25 * 1024 * 1024;

const RemoveBackgroundInput = z.object({
  image_url: FileUrl.describe(
    "Image to cut out (http(s) URL or data: URI): PNG, JPEG, WebP, GIF, TIFF or AVIF, at most 4.2 megapixels " +
      "(2048×2048) and 25 MiB. EXIF orientation is applied. Transparent areas of the input stay transparent.",
  ),
  output_format: z
    .enum(["png", "webp"])
    .default("png")
    .describe("Encoding of the cut-out, both with alpha: PNG (lossless) or WebP (lossy colour, lossless alpha)"),
  return_mask: z.boolean().default(true).describe("Also return the alpha matte as a grayscale PNG (mask_image)"),
  refine_foreground: z
    .boolean()
    .default(true)
    .describe(
      "Colour the cut-out with RVM's predicted foreground, which removes the background's colour from soft edges " +
        "(hair); false keeps the original pixels",
    ),
  downsample_ratio: z
    .number()
    .min(0.05)
    .max(1)
    .optional()
    .describe(
      "Scale at which RVM's first stage looks at the image (0.05 to 1). Default: chosen from the size so that the " +
        "short side is about 256 px (1 for images up to 256 px, 0.5 at 512 px), as the RVM authors recommend",
    ),
  sync_mode: z.boolean().default(false).describe("Return the images inline as data: URIs instead of storing them"),
});

const RemoveBackgroundOutput = z.object({
  image: ImageSchema.describe("The cut-out: RGBA, transparent where there is no person"),
  mask_image: ImageSchema.optional().describe("The alpha matte as a grayscale PNG (white = person); absent when return_mask is false"),
});

type Input = z.output<typeof RemoveBackgroundInput>;

/** The image upright in sRGB: RGB for the model, plus its own alpha when it has one. */
async function decode(data: Buffer, hasAlpha: boolean): Promise<{ rgb: Uint8Array; alpha?: Uint8Array; width: number; height: number }> {
  const decoder = sharp(data, { limitInputPixels: MAX_INPUT_PIXELS }).autoOrient().toColourspace("srgb");
  const raw = await decodeImageOrRefuse(() => (hasAlpha ? decoder.ensureAlpha() : decoder.removeAlpha()).raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true }));
  const { width, height } = raw.info;
  const pixels = width * height;
  if (!hasAlpha) return { rgb: new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength), width, height };
  // The model sees transparent areas as white, as on a page, rather than whatever colour hides under them.
  const rgb = new Uint8Array(pixels * 3);
  const alpha = new Uint8Array(pixels);
  for (let p = 0; p < pixels; p++) {
    const a = raw.data[p * 4 + 3]!;
    alpha[p] = a;
    for (let c = 0; c < 3; c++) rgb[p * 3 + c] = Math.round((raw.data[p * 4 + c]! * a + 255 * (255 - a)) / 255);
  }
  return { rgb, alpha, width, height };
}

async function removeBackground(input: Input, ctx: HandlerContext<RvmAppState>): Promise<z.input<typeof RemoveBackgroundOutput>> {
  const steps = 3;
  ctx.progress(0, steps, "decode");
  const data = await readLimited(ctx, input.image_url, "image_url", MAX_INPUT_BYTES);
  const meta = await readImageHeaderWithin(data, MAX_INPUT_PIXELS);
  const image = await decode(data, meta.hasAlpha === true);
  ctx.throwIfCancelled();

  ctx.progress(1, steps, "matting");
  const ratio = input.downsample_ratio ?? autoDownsampleRatio(image.width, image.height);
  // A fresh session per image: recurrent state from another request must never leak into this one.
  const session = ctx.state.model.session(ratio);
  let rgba: Uint8Array;
  try {
    const matte = await session.next({ data: image.rgb, width: image.width, height: image.height });
    rgba = cutout(matte, {
      ...(input.refine_foreground ? {} : { source: image.rgb }),
      ...(image.alpha ? { sourceAlpha: image.alpha } : {}),
    });
  } finally {
    session.dispose();
  }
  ctx.throwIfCancelled();

  ctx.progress(2, steps, "encode");
  const raw = { raw: { width: image.width, height: image.height, channels: 4 as const } };
  const format = IMAGE_FORMATS[input.output_format];
  const encoded =
    input.output_format === "png"
      ? await sharp(rgba, raw).png().toBuffer()
      : await sharp(rgba, raw).webp({ quality: 90, alphaQuality: 100 }).toBuffer();
  const dims = { width: image.width, height: image.height };
  const file = await ctx.files.put(encoded, { contentType: format.contentType, fileName: `background-removed.${format.ext}`, ...dims });
  let mask: z.input<typeof ImageSchema> | undefined;
  if (input.return_mask) {
    // Without the explicit colour space sharp writes one-channel input as RGB.
    const png = await sharp(alphaOf(rgba), { raw: { ...dims, channels: 1 } }).toColourspace("b-w").png().toBuffer();
    mask = { ...(await ctx.files.put(png, { contentType: "image/png", fileName: "mask.png", ...dims })), ...dims };
  }
  ctx.progress(3, steps, "done");
  ctx.log(`matted ${image.width}×${image.height} at downsample ratio ${ratio.toFixed(3)}`);
  ctx.bill((image.width * image.height) / 1e6);
  return { image: { ...file, ...dims }, ...(mask ? { mask_image: mask } : {}) };
}

export default defineApp<RvmAppState>({
  id: "darkroom/remove-background",
  version: "1.0.0",
  metadata: {
    // Made from this app's own output by scripts/make-thumbnails.ts.
    thumbnail_url: "/thumbnails/remove-background.webp",
    display_name: "Remove background (Robust Video Matting)",
    category: "image-to-image",
    description:
      "Cuts people out of a photo: an RGBA PNG or WebP that is transparent where there is no person, plus the alpha " +
      "matte. Uses Robust Video Matting (MobileNetV3), a human matting network, so objects and animals without a " +
      "person are treated as background. Runs on CPU through TensorFlow.js WebAssembly.",
    tags: ["background-removal", "matting", "segmentation", "person", "image-to-image", "cpu"],
    license: RVM_LICENSE,
    weights_origin: RVM_WEIGHTS_ORIGIN,
  },
  // Two runners: the wasm backend runs one thread, so a second runner uses the second core. Measured
  // on 2 cores (bench/README.md, app-throughput): 1.6× the images per second of one runner, at
  // up to ~1.1 GB of memory per runner for a 2048² input. Fewer or more with --app-knobs.
  knobs: { max_runners: 2, keep_alive: 300, request_timeout: 300, startup_timeout: 120 },
  // The same input gives the same output; requests reuse results when they ask (X-Darkroom-Cache).
  cache: { reuse: "deterministic", default: "off" },
  weights: () => packageWeights([RVM_PACKAGE]),
  ...rvmAppLifecycle,
  endpoints: [
    endpoint({
      path: "",
      description: "Cut the people out of one image",
      input: RemoveBackgroundInput,
      output: RemoveBackgroundOutput,
      handler: removeBackground,
      // Off by default, like upscale: a cut-out shows nothing the client did not send.
      safetyChecker: { default: false },
    }),
  ],
});
