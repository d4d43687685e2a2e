/**
 * `darkroom/safety-checker`: flags NSFW images with the nsfwjs MobileNetV2 classifier on the tfjs
 * wasm backend, answering in fal's safety-checker vocabulary (`has_nsfw_concepts`). This file is the
 * platform glue (input forms, limits, progress, billing); the model and the flagging rule live in
 * `src/media/safety/model.ts`, which the platform-wide `enable_safety_checker` shares.
 * @module
 */
import sharp from "sharp";
import { fieldError } from "../../core/errors.js";
import { defineApp, endpoint, FileUrl, z, type HandlerContext } from "../../runtime/sdk.js";
import { packageWeights } from "../../media/package-weights.js";
import {
  DEFAULT_THRESHOLD,
  decodeForModel,
  isNsfw,
  loadSafetyClassifier,
  type NsfwScores,
  type SafetyClassifier,
} from "../../media/safety/model.js";

/** Images per call: a call then takes a few seconds at most (~0.15 s per image on one core). */
export const MAX_IMAGES = 16;
/** 16 MP per image bounds sharp's decode (48 MB of RGB) before it is shrunk to 224×224. */
export const MAX_PIXELS = 16_000_000;

const SafetyInput = z.object({
  image_url: FileUrl.optional().describe(
    "One image to check (http(s) URL or data: URI): PNG, JPEG, WebP, GIF (first frame), TIFF or AVIF, " +
      "at most 16 megapixels. Give this, image_urls, or both (this one is then checked first).",
  ),
  image_urls: z
    .array(FileUrl)
    .min(1)
    .max(MAX_IMAGES, { error: `at most ${MAX_IMAGES} images per call` })
    .optional()
    .describe(`Images to check, 1 to ${MAX_IMAGES}, each at most 16 megapixels; results keep this order`),
  threshold: z
    .number()
    .min(0)
    .max(1)
    .default(DEFAULT_THRESHOLD)
    .describe(
      "An image is flagged when porn + hentai ≥ threshold, or when sexy ≥ (1 + threshold) / 2 " +
        "(0.75 at the default): suggestive content flags only at higher confidence",
    ),
});

const Scores = z.object({
  drawing: z.number(),
  hentai: z.number(),
  neutral: z.number(),
  porn: z.number(),
  sexy: z.number(),
});

const SafetyOutput = z.object({
  has_nsfw_concepts: z.array(z.boolean()).describe("Whether each image is flagged, in input order"),
  scores: z.array(Scores).describe("The classifier's probabilities per image (they sum to 1), in input order"),
  model: z.string().describe("The classifier that produced the scores"),
});

interface SafetyState {
  classifier: SafetyClassifier;
}

/** The images of a request with the field each came from, so that errors point at it. */
function collectInputs(input: z.output<typeof SafetyInput>): { url: string; loc: (string | number)[] }[] {
  const items: { url: string; loc: (string | number)[] }[] = [];
  if (input.image_url !== undefined) items.push({ url: input.image_url, loc: ["image_url"] });
  input.image_urls?.forEach((url, i) => items.push({ url, loc: ["image_urls", i] }));
  if (items.length === 0) throw fieldError("image_url", "give image_url or image_urls (or both)", "missing");
  if (items.length > MAX_IMAGES) {
    throw fieldError(
      "image_urls",
      `${items.length} images given (image_url plus image_urls); the limit is ${MAX_IMAGES} images per call`,
    );
  }
  return items;
}

async function check(
  input: z.output<typeof SafetyInput>,
  ctx: HandlerContext<SafetyState>,
): Promise<z.input<typeof SafetyOutput>> {
  const items = collectInputs(input);
  const { classifier } = ctx.state;

  // Every image is read and checked before any is classified, so that a bad image late in a batch
  // fails the call at once instead of after the work on the others.
  const images: Buffer[] = [];
  for (const item of items) {
    ctx.throwIfCancelled();
    const { data } = await ctx.files.read(item.url);
    let meta: sharp.Metadata;
    try {
      meta = await sharp(data).metadata();
    } catch (err) {
      throw fieldError(item.loc, `not a readable image: ${err instanceof Error ? err.message : String(err)}`);
    }
    const { width, height } = meta;
    if (width * height > MAX_PIXELS) {
      throw fieldError(
        item.loc,
        `image is ${width}×${height} (${((width * height) / 1e6).toFixed(1)} MP); the limit is ` +
          `${MAX_PIXELS / 1e6} megapixels (${MAX_PIXELS} pixels) per image`,
      );
    }
    images.push(data);
  }

  const scores: NsfwScores[] = [];
  for (const [i, image] of images.entries()) {
    ctx.throwIfCancelled();
    const pixels = await decodeForModel(image, classifier.inputSize, MAX_PIXELS);
    scores.push(await classifier.classify(pixels));
    ctx.progress(i + 1, images.length, `image ${i + 1}/${images.length}`);
  }

  ctx.bill(images.length);
  return {
    has_nsfw_concepts: scores.map((s) => isNsfw(s, input.threshold)),
    scores,
    model: classifier.modelName,
  };
}

export default defineApp<SafetyState>({
  id: "darkroom/safety-checker",
  version: "1.0.0",
  metadata: {
    display_name: "Safety Checker (NSFW)",
    category: "image-analysis",
    description:
      "Flags NSFW images. Each image gets probabilities for five classes (drawing, hentai, neutral, porn, sexy) " +
      "from the nsfwjs MobileNetV2 classifier, running on CPU through TensorFlow.js WebAssembly, and a flag " +
      "from a documented threshold rule. Up to 16 images per call.",
    tags: ["nsfw", "safety", "moderation", "classification", "image-analysis", "cpu"],
    license: "MIT (code and model weights: nsfwjs 4.3.0, © 2019 Infinite Red, Inc.)",
    weights_origin:
      "npm nsfwjs 4.3.0 (Infinite Red, github.com/infinitered/nsfwjs): the MobileNetV2 (224×224) model bundled " +
      "in the package as base64 JS modules (dist/models/mobilenet_v2), loaded from disk with no download",
  },
  // One runner: the model is single-threaded wasm. Loading took ~1 s here, but research measured up to
  // 11 s on a busy machine, so startup has a wide margin.
  knobs: { max_runners: 1, max_multiplexing: 2, keep_alive: 300, startup_timeout: 180 },
  // The same input gives the same output; requests reuse results when they ask (X-Darkroom-Cache).
  cache: { reuse: "deterministic", default: "off" },
  weights: () => packageWeights(["nsfwjs"]),
  async setup(log) {
    return { classifier: await loadSafetyClassifier(log) };
  },
  teardown(state) {
    state.classifier.dispose();
  },
  endpoints: [
    endpoint({
      path: "",
      description: "Check images for NSFW content",
      input: SafetyInput,
      output: SafetyOutput,
      handler: check,
    }),
  ],
});
