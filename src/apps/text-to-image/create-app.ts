/**
 * A text-to-image app over one pulled diffusers ONNX model: fal's text-to-image input and output
 * (`images`, `seed`, `timings`, `has_nsfw_concepts`, `prompt`), an image-to-image endpoint and a
 * realtime endpoint. `app.ts` serves SD-Turbo with it; another module can serve another pulled
 * model (an LCM, say) with `export default createTextToImageApp({ id, model, ... })`.
 * @module
 */
import { access } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { fieldError } from "../../core/errors.js";
import { DiffusionPipeline, img2imgSteps, type RgbImage } from "../../diffusion/pipeline.js";
import { MAX_SEED, randomSeed } from "../../diffusion/random.js";
import type { ModelManager } from "../../models/index.js";
import { defineApp, endpoint, FileUrl, ImageSchema, z, type DefinedApp, type HandlerContext } from "../../runtime/sdk.js";
import { modelLicenseLine } from "./model-license.js";
import { modelManagerAt, modelsDir } from "./pulled-model-apps.js";

/** fal's presets (toolkit/image/image.py). */
export const IMAGE_SIZE_PRESETS = {
  square_hd: { width: 1024, height: 1024 },
  square: { width: 512, height: 512 },
  portrait_4_3: { width: 768, height: 1024 },
  portrait_16_9: { width: 576, height: 1024 },
  landscape_4_3: { width: 1024, height: 768 },
  landscape_16_9: { width: 1024, height: 576 },
} as const;

/** 64: the UNet's 3 downsamplings of an 8× smaller latent need at least 8 latent pixels. */
export const MIN_SIDE = 64;
/** 2048: about 4 MP; a CPU step at that size already takes minutes with SD-Turbo. */
export const MAX_SIDE = 2048;
export const MAX_STEPS = 8;

export interface TextToImageAppOptions {
  /** @default "darkroom/sd-turbo" */
  id?: string;
  /** The name the model was pulled under. @default "sd-turbo" */
  model?: string;
  /** What the remedy tells the operator to pull. @default "jdp8/sd-turbo-onnx" */
  source?: string;
  display_name?: string;
  description?: string;
  /** Default `num_inference_steps` (turbo: 1; LCM: 4). */
  defaultSteps?: number;
  /** Default `guidance_scale` (turbo and LCM: 0, no guidance). */
  defaultGuidance?: number;
  /** @default "square" (SD-Turbo's native 512×512) */
  defaultImageSize?: keyof typeof IMAGE_SIZE_PRESETS;
}

interface State {
  pipeline: DiffusionPipeline;
}

const FORMATS = {
  png: { contentType: "image/png", ext: "png" },
  jpeg: { contentType: "image/jpeg", ext: "jpg" },
} as const;

const manager = (): ModelManager => modelManagerAt(modelsDir());

/**
 * The `license` line for the model pulled as `model`, from its own files (model-license.ts). A
 * DARKROOM_MODELS_DIR the manager refuses leaves it unknown here; checkAvailability and setup report
 * that error, where the operator sees it.
 */
function licenseOf(model: string): string {
  let models: ModelManager | null = null;
  try {
    models = manager();
  } catch {
    models = null;
  }
  return modelLicenseLine(models, model);
}

const intFromEnv = (name: string): number | undefined => {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got '${raw}'`);
  return n;
};

const Side = z.number().int().min(MIN_SIDE).max(MAX_SIDE).multipleOf(8);

const ImageSize = z.union([
  z.enum(Object.keys(IMAGE_SIZE_PRESETS) as [keyof typeof IMAGE_SIZE_PRESETS, ...(keyof typeof IMAGE_SIZE_PRESETS)[]]),
  z.object({ width: Side.default(512), height: Side.default(512) }),
]);

const Output = z.object({
  images: z.array(ImageSchema).describe("The generated images"),
  seed: z.number().int().describe("The seed of the first image; image i used seed + i"),
  timings: z.object({ inference: z.number() }).describe("Seconds spent in the model"),
  prompt: z.string(),
});

function sizeOf(value: z.output<typeof ImageSize>): { width: number; height: number } {
  return typeof value === "string" ? IMAGE_SIZE_PRESETS[value] : value;
}

async function encode(image: RgbImage, format: keyof typeof FORMATS): Promise<Buffer> {
  const s = sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength), { raw: { width: image.width, height: image.height, channels: 3 } });
  return format === "png" ? s.png().toBuffer() : s.jpeg({ quality: 90 }).toBuffer();
}

/** Previews after every few steps: 3 or 4 per image, none for 1-step turbo runs. */
const previewEvery = (steps: number): number => Math.max(1, Math.ceil(steps / 4));

export function createTextToImageApp(options: TextToImageAppOptions = {}): DefinedApp<State> {
  const id = options.id ?? "darkroom/sd-turbo";
  const model = options.model ?? "sd-turbo";
  const source = options.source ?? "jdp8/sd-turbo-onnx";
  const defaultSteps = options.defaultSteps ?? 1;
  const defaultGuidance = options.defaultGuidance ?? 0;

  const common = {
    prompt: z.string().max(10_000).describe("What to draw. CLIP reads the first 75 tokens."),
    negative_prompt: z.string().max(10_000).default("").describe("What to steer away from; used only when guidance_scale > 1"),
    num_inference_steps: z.number().int().min(1).max(MAX_STEPS).default(defaultSteps).describe("Denoising steps (turbo models: 1–4)"),
    guidance_scale: z
      .number()
      .min(0)
      .max(20)
      .default(defaultGuidance)
      .describe("Classifier-free guidance; at most 1 turns it off (turbo and LCM models are trained without it), above 1 doubles the UNet's work"),
    seed: z.number().int().min(0).max(MAX_SEED).optional().describe("Same seed, same inputs → same image; random when absent"),
    num_images: z.number().int().min(1).max(4).default(1).describe("Images to generate, with seeds seed, seed + 1, …"),
    output_format: z.enum(["jpeg", "png"]).default("jpeg"),
    sync_mode: z.boolean().default(false).describe("Return the images inline as data URIs instead of storing them"),
  };
  const TextInput = z.object({
    ...common,
    image_size: ImageSize.default(options.defaultImageSize ?? "square").describe(`A preset or {width, height}: multiples of 8, ${MIN_SIDE}–${MAX_SIDE}`),
  });
  const ImageInput = z.object({
    ...common,
    image_url: FileUrl.describe("The start image (http(s) URL or data: URI); resized to image_size"),
    strength: z.number().min(0).max(1).default(0.5).describe("How far from the image to go: 0 returns it (through the VAE), 1 ignores it"),
    num_inference_steps: common.num_inference_steps.default(Math.max(2, defaultSteps)).describe("Steps of the full schedule; strength × steps of them run"),
    image_size: ImageSize.optional().describe("Output size; by default the image's own, scaled to fit 1024×1024 and rounded down to multiples of 8"),
  });

  type Common = z.output<typeof TextInput> | z.output<typeof ImageInput>;

  async function run(input: Common, size: { width: number; height: number }, ctx: HandlerContext<State>, image?: RgbImage, strength?: number): Promise<z.input<typeof Output>> {
    const { pipeline } = ctx.state;
    const seed = input.seed ?? randomSeed();
    const perImage = pipeline.denoisingSteps(input.num_inference_steps, strength);
    const total = perImage * input.num_images;
    const checked = (input as { enable_safety_checker?: boolean }).enable_safety_checker === true;
    const format = FORMATS[input.output_format];
    const images: z.input<typeof Output>["images"] = [];
    let inference = 0;
    for (let n = 0; n < input.num_images; n++) {
      const started = performance.now();
      const rgb = await pipeline.generate({
        prompt: input.prompt,
        negativePrompt: input.negative_prompt,
        width: size.width,
        height: size.height,
        steps: input.num_inference_steps,
        guidanceScale: input.guidance_scale,
        // Wraps past MAX_SEED to 0, so seed + i stays a valid seed.
        seed: seed + n <= MAX_SEED ? seed + n : seed + n - MAX_SEED - 1,
        ...(image ? { image, strength: strength ?? 0 } : {}),
        signal: ctx.signal,
        onStep: (step, steps) => ctx.progress(n * perImage + step, total, `image ${n + 1}/${input.num_images}, step ${step}/${steps}`),
        previewEvery: previewEvery(perImage),
        onPreview: async (preview, step, steps) => {
          const png = await sharp(Buffer.from(preview.data), { raw: { width: preview.width, height: preview.height, channels: 3 } })
            .png()
            .toBuffer();
          // With the safety checker on, a preview goes through the checked store like any output
          // image; otherwise it travels inline and nothing is stored.
          const file = checked
            ? await ctx.files.put(png, { contentType: "image/png", fileName: `preview-${n}-${step}.png`, width: preview.width, height: preview.height })
            : { url: `data:image/png;base64,${png.toString("base64")}`, content_type: "image/png", width: preview.width, height: preview.height };
          ctx.emit({ preview: { ...file, width: preview.width, height: preview.height }, image_index: n, step, total_steps: steps });
        },
      });
      inference += (performance.now() - started) / 1000;
      const bytes = await encode(rgb, input.output_format);
      const file = await ctx.files.put(bytes, { contentType: format.contentType, fileName: `image-${n}.${format.ext}`, width: rgb.width, height: rgb.height });
      images.push({ ...file, width: rgb.width, height: rgb.height });
    }
    ctx.bill((size.width * size.height * input.num_images) / 1e6);
    return { images, seed, timings: { inference }, prompt: input.prompt };
  }

  async function textToImage(input: z.output<typeof TextInput>, ctx: HandlerContext<State>): Promise<z.input<typeof Output>> {
    return run(input, sizeOf(input.image_size), ctx);
  }

  async function imageToImage(input: z.output<typeof ImageInput>, ctx: HandlerContext<State>): Promise<z.input<typeof Output>> {
    if (!ctx.state.pipeline.hasVaeEncoder) {
      throw fieldError("image_url", `model '${model}' has no vae_encoder/model.onnx, which image-to-image needs: pull an export that includes it`);
    }
    if (input.strength > 0 && img2imgSteps(input.num_inference_steps, input.strength) === 0) {
      throw fieldError("strength", `num_inference_steps × strength must be at least 1 (got ${input.num_inference_steps} × ${input.strength})`);
    }
    const { data } = await ctx.files.read(input.image_url);
    let decoder;
    let meta;
    try {
      decoder = sharp(data, { limitInputPixels: 8192 * 8192 }).autoOrient();
      meta = await decoder.metadata();
    } catch (err) {
      throw fieldError("image_url", `not a readable image: ${err instanceof Error ? err.message : String(err)}`);
    }
    let size: { width: number; height: number };
    if (input.image_size) size = sizeOf(input.image_size);
    else {
      const w = meta.autoOrient.width;
      const h = meta.autoOrient.height;
      const k = Math.min(1, 1024 / Math.max(w, h));
      const round = (v: number): number => Math.max(MIN_SIDE, Math.floor((v * k) / 8) * 8);
      size = { width: round(w), height: round(h) };
    }
    const raw = await decoder.resize(size.width, size.height, { fit: "fill" }).removeAlpha().toColourspace("srgb").raw().toBuffer();
    ctx.throwIfCancelled();
    return run(input, size, ctx, { data: raw, width: size.width, height: size.height }, input.strength);
  }

  return defineApp<State>({
    id,
    version: "1.0.0",
    metadata: {
      display_name: options.display_name ?? "SD-Turbo (ONNX)",
      category: "text-to-image",
      description:
        options.description ??
        `Text-to-image and image-to-image with the diffusers ONNX model pulled as '${model}' (SD-Turbo by default: 1–4 steps, ` +
          "no guidance), on ONNX Runtime. Pull the model first: see docs/text-to-image.md.",
      tags: ["text-to-image", "image-to-image", "stable-diffusion", "turbo", "onnx", "realtime"],
      // Whatever checkpoint was pulled under the name (a test model, a fine-tune): never SD-Turbo's licence by assumption.
      license: licenseOf(model),
      weights_origin: `pulled by the operator with 'darkroom models pull ${source} --name ${model}'`,
    },
    knobs: { max_runners: 1, keep_alive: 300, max_multiplexing: 1, request_timeout: 600, startup_timeout: 300 },
    // The same seed and inputs give the same images; without a seed they are random.
    cache: { reuse: "seeded", default: "off" },
    // The pulled files by content: another model pulled under the same name is another revision.
    async weights() {
      const pulled = await manager().get(model);
      return (pulled?.files ?? []).map((f) => ({ name: `${model}/${f.path}`, sha256: f.sha256 }));
    },
    async checkAvailability() {
      const m = manager();
      const remedy = `darkroom models pull ${source} --name ${model}${process.env["DARKROOM_MODELS_DIR"] ? ` --data-dir ${path.dirname(m.root)}` : ""}, then restart the server`;
      if (!(await m.get(model))) return { reason: `model '${model}' is not pulled (looked in ${m.root})`, remedy };
      const unet = path.join(m.modelDir(model), "unet", "model.onnx");
      const ok = await access(unet).then(
        () => true,
        () => false,
      );
      return ok ? null : { reason: `model '${model}' is incomplete: ${unet} is missing`, remedy };
    },
    async setup(log) {
      const m = manager();
      if (!(await m.get(model))) throw new Error(`model '${model}' is not pulled: darkroom models pull ${source} --name ${model}`);
      const threads = intFromEnv("DARKROOM_ORT_THREADS");
      const providers = process.env["DARKROOM_ORT_PROVIDERS"]?.split(",").map((p) => p.trim()).filter(Boolean);
      const pipeline = await DiffusionPipeline.load(m.modelDir(model), {
        log,
        ...(threads ? { intraOpNumThreads: threads } : {}),
        ...(providers?.length ? { executionProviders: providers } : {}),
      });
      log(`model '${model}': ${pipeline.schedulerName}, image-to-image ${pipeline.hasVaeEncoder ? "on" : "off (no vae_encoder)"}, previews ${pipeline.hasTaesd ? "TAESD" : "latent projection"}`);
      return { pipeline };
    },
    async teardown(state) {
      await state.pipeline.release();
    },
    endpoints: [
      endpoint({ path: "", description: "Generate images from a prompt", input: TextInput, output: Output, handler: textToImage, safetyChecker: { default: true } }),
      endpoint({
        path: "image-to-image",
        description: "Redraw an image guided by a prompt",
        input: ImageInput,
        output: Output,
        handler: imageToImage,
        safetyChecker: { default: true },
      }),
      endpoint({
        path: "realtime",
        kind: "realtime",
        description: "One image per WebSocket message, returned inline (turbo and LCM models are fast enough for it)",
        input: TextInput.extend({ request_id: z.string().optional() }),
        output: Output,
        handler: textToImage,
        safetyChecker: { default: true },
      }),
    ],
  });
}
