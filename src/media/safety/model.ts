/**
 * NSFW classification with the nsfwjs MobileNetV2 model on the tfjs wasm backend, plus the flagging
 * rule. Kept free of platform code (no HandlerContext, no HTTP errors) so that the safety-checker
 * app, the platform-wide `enable_safety_checker` (`src/runtime/safety-checker.ts`), tests and
 * benchmarks can all share it; it lives in the media layer, below both the runtime and the apps.
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import sharp from "sharp";
import { initBackend } from "../tfjs/wasm-backend.js";

/** The model's five output classes, in the order of its softmax output (nsfwjs's NSFW_CLASSES). */
export const NSFW_CLASSES = ["drawing", "hentai", "neutral", "porn", "sexy"] as const;
export type NsfwClass = (typeof NSFW_CLASSES)[number];
/** One probability per class; they sum to 1 (softmax). */
export type NsfwScores = Record<NsfwClass, number>;

/** The only model loaded for now; nsfwjs also bundles MobileNetV2Mid and InceptionV3. */
export const DEFAULT_MODEL = "MobileNetV2";

export const DEFAULT_THRESHOLD = 0.5;

/**
 * The flagging rule (the pure decision, unit-tested on its own because no NSFW fixture may ship):
 *
 * - explicit content: `porn + hentai ≥ threshold`. The two classes are summed because an explicit
 *   image the model cannot place as photo or drawing splits its mass between them, and each alone
 *   could stay under the threshold;
 * - suggestive content: `sexy ≥ (1 + threshold) / 2`, halfway between the threshold and certainty
 *   (0.75 at the default 0.5). "sexy" also covers swimwear and underwear photos that are not
 *   explicit, so it flags only when the model is much surer of it.
 *
 * `threshold` 0 therefore flags every image, and 1 only images the model is certain of.
 */
export function isNsfw(scores: NsfwScores, threshold = DEFAULT_THRESHOLD): boolean {
  return scores.porn + scores.hentai >= threshold || scores.sexy >= (1 + threshold) / 2;
}

/** An image decoded to the model's square input: RGB, 8 bits per sample. */
export interface ModelInput {
  data: Uint8Array;
  size: number;
}

/**
 * Decodes an encoded image (any format sharp reads) to the model's input. Resizing happens here
 * with sharp rather than in nsfwjs: sharp's resize is anti-aliased, where nsfwjs's bilinear resize
 * samples only 4 pixels per output pixel and so aliases on large photos, and the model then sees
 * 150 KB instead of up to 48 MB of raw pixels. The image is stretched to the square without
 * cropping, as nsfwjs does, so that nothing at the edges escapes the check.
 */
export async function decodeForModel(image: Buffer, size: number, limitInputPixels: number): Promise<ModelInput> {
  const data = await sharp(image, { limitInputPixels })
    .autoOrient()
    // Transparent areas would otherwise show whatever colour hides under them: flatten onto white.
    .flatten({ background: "#ffffff" })
    .toColourspace("srgb")
    .resize(size, size, { fit: "fill" })
    .removeAlpha()
    .raw({ depth: "uchar" })
    .toBuffer();
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), size };
}

export interface SafetyClassifier {
  readonly modelName: string;
  /** Side of the square input the model expects (224 for MobileNetV2). */
  readonly inputSize: number;
  classify(input: ModelInput): Promise<NsfwScores>;
  dispose(): void;
}

/**
 * Starts the wasm backend (shared with the other tfjs models, once per process) and loads
 * MobileNetV2 from the base64 JS bundles inside the nsfwjs package; no network is used. Loading
 * takes seconds (the bundles are parsed and decoded in JS), so call this once and keep the result.
 */
/**
 * The part of nsfwjs's model object used here. Declared rather than imported: nsfwjs 4.3's type
 * declarations import their siblings without file extensions, which NodeNext cannot resolve.
 */
interface NsfwModel {
  model: { inputs: { shape?: (number | null)[] | undefined }[] };
  infer(image: tf.Tensor3D): tf.Tensor;
  dispose(): void;
}

export async function loadSafetyClassifier(log: (message: string) => void = () => {}): Promise<SafetyClassifier> {
  const backend = await initBackend(log);
  // Imported lazily so that importing this module (e.g. for isNsfw) stays cheap.
  const nsfwjs = (await import("nsfwjs")) as unknown as { load(model: string): Promise<NsfwModel> };
  const started = performance.now();
  const model = await nsfwjs.load(DEFAULT_MODEL);
  log(`loaded nsfwjs ${DEFAULT_MODEL} on tfjs ${backend} in ${Math.round(performance.now() - started)} ms`);

  const shape = model.model.inputs[0]?.shape;
  const inputSize = shape?.[1] ?? 224;

  return {
    modelName: DEFAULT_MODEL,
    inputSize,
    async classify(input) {
      if (input.size !== inputSize) throw new Error(`input is ${input.size} px square, the model needs ${inputSize}`);
      const probabilities = tf.tidy(() => {
        const pixels = tf.tensor3d(input.data, [input.size, input.size, 3], "int32");
        // infer() scales to 0..1 and runs the model; the last layer is a softmax over NSFW_CLASSES.
        return model.infer(pixels);
      });
      try {
        const values = await probabilities.data();
        const scores = {} as NsfwScores;
        NSFW_CLASSES.forEach((name, i) => (scores[name] = values[i] ?? 0));
        return scores;
      } finally {
        probabilities.dispose();
      }
    },
    dispose() {
      model.dispose();
    },
  };
}
