/**
 * `darkroom/face-analysis`: finds faces in an image and describes each one (box, 68 landmarks, age,
 * gender, expression) with `@vladmandic/face-api` on the tfjs wasm backend. This file is the platform
 * glue (input, limits, progress, billing); the model work lives in `face-model.ts`.
 * @module
 */
import sharp from "sharp";
import { defineApp, endpoint, FileUrl, z, type HandlerContext } from "../../runtime/sdk.js";
import { packageWeights } from "../../media/package-weights.js";
import { EMOTIONS, analyseFaces, loadFaceModels, type FaceModels } from "./face-model.js";
import { decodeImageOrRefuse, readInputImage } from "../../media/image/image-header.js";

/**
 * 16 megapixels (e.g. 4096×4096 or a 16 MP camera photo): the decoded RGB buffer (48 MiB) and its
 * int32 tensor copy (192 MiB in the wasm heap) stay bounded. The detector works on a 512×512
 * resize anyway, so larger inputs would not find smaller faces.
 */
export const MAX_INPUT_PIXELS = 16_000_000;

const FaceAnalysisInput = z.object({
  image_url: FileUrl.describe(
    "Image to analyse (http(s) URL or data: URI): PNG, JPEG, WebP, GIF, TIFF or AVIF, at most 16 megapixels. " +
      "EXIF orientation is applied, and coordinates refer to the image as displayed.",
  ),
  min_confidence: z
    .number()
    .min(0)
    .max(1)
    .default(0.5)
    .describe("Smallest detector score for a face to be reported (0..1)"),
  max_faces: z
    .number()
    .int()
    .min(1)
    .max(100)
    .default(20)
    .describe("Most faces to report; the most confident ones are kept"),
});

const Point = z.tuple([z.number(), z.number()]);

const Face = z.object({
  box: z
    .object({ x: z.number(), y: z.number(), width: z.number(), height: z.number() })
    .describe("Face bounding box in input pixels (top-left corner, size), clipped to the image"),
  confidence: z.number().describe("Detector score, 0..1"),
  landmarks: z
    .array(Point)
    .length(68)
    .describe("68 [x, y] points in input pixels, iBUG 300-W order: jaw 0–16, brows 17–26, nose 27–35, eyes 36–47, mouth 48–67"),
  age: z.number().describe("Estimated age in years"),
  gender: z.enum(["male", "female"]).describe("Predicted gender presentation"),
  gender_confidence: z.number().describe("Probability of the predicted gender, 0.5..1"),
  emotion: z.enum(EMOTIONS).describe("The most probable expression"),
  emotions: z
    .object(Object.fromEntries(EMOTIONS.map((e) => [e, z.number()])) as Record<(typeof EMOTIONS)[number], z.ZodNumber>)
    .describe("Probability of each expression (they sum to about 1)"),
});

const FaceAnalysisOutput = z.object({
  faces: z.array(Face).describe("Faces found, most confident first"),
  image: z
    .object({ width: z.number().int(), height: z.number().int() })
    .describe("Size of the analysed image after EXIF orientation"),
});

interface FaceAnalysisState {
  models: FaceModels;
}


async function analyse(
  input: z.output<typeof FaceAnalysisInput>,
  ctx: HandlerContext<FaceAnalysisState>,
): Promise<z.input<typeof FaceAnalysisOutput>> {
  const steps = 3;
  ctx.progress(0, steps, "decode");
  const data = await readInputImage(ctx, input.image_url, MAX_INPUT_PIXELS);
  const pixels = await decodeImageOrRefuse(() =>
    sharp(data, { limitInputPixels: MAX_INPUT_PIXELS })
      .autoOrient()
      .toColourspace("srgb")
      // Transparent areas become white, as they would look on a page, rather than their hidden colour.
      .flatten({ background: "#ffffff" })
      .removeAlpha()
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true }),
  );
  const image = { data: new Uint8Array(pixels.data), width: pixels.info.width, height: pixels.info.height };
  ctx.throwIfCancelled();

  ctx.progress(1, steps, "detect");
  const faces = await analyseFaces(ctx.state.models, image, {
    minConfidence: input.min_confidence,
    maxFaces: input.max_faces,
    signal: ctx.signal,
    onDetected: (count) => ctx.progress(2, steps, `describe ${count} face${count === 1 ? "" : "s"}`),
  });
  ctx.throwIfCancelled();
  ctx.progress(3, steps, "done");
  ctx.log(`found ${faces.length} face(s) in ${image.width}×${image.height}`);
  // One unit per analysed image: the cost is dominated by the fixed-size detector pass.
  ctx.bill(1);
  return { faces, image: { width: image.width, height: image.height } };
}

export default defineApp<FaceAnalysisState>({
  id: "darkroom/face-analysis",
  version: "1.0.0",
  metadata: {
    display_name: "Face analysis (face-api)",
    category: "image-analysis",
    description:
      "Detects faces (SSD MobileNet v1) and describes each one: bounding box, 68 facial landmarks, estimated " +
      "age, gender and facial expression (neutral, happy, sad, angry, fearful, disgusted, surprised). Runs on " +
      "CPU through TensorFlow.js WebAssembly. Age, gender and expression are statistical estimates from " +
      "appearance and can be wrong, especially across demographics; do not use them for decisions about people.",
    tags: ["face", "face-detection", "landmarks", "age", "gender", "emotion", "image-analysis", "cpu"],
    license:
      "MIT: the LICENSE of @vladmandic/face-api 1.7.15 (© Vladimir Mandic), which ships the code and the weights " +
      "in its model/ folder",
    weights_origin:
      "npm @vladmandic/face-api 1.7.15, folder model/ (ssd_mobilenetv1, face_landmark_68, age_gender, " +
      "face_expression). The package is a fork of face-api.js 0.22.2 (github.com/justadudewhohacks/face-api.js); " +
      "its README credits the original weights to github.com/justadudewhohacks/face-api.js-models. The package " +
      "does not name the training data sets",
  },
  // Two runners: the wasm backend runs one thread, so a second runner uses the second core: 1.3× the
  // images per second of one runner on 2 cores (bench/README.md). Fewer or more with --app-knobs.
  knobs: { max_runners: 2, keep_alive: 300, startup_timeout: 120 },
  // The same input gives the same output; requests reuse results when they ask (X-Darkroom-Cache).
  cache: { reuse: "deterministic", default: "off" },
  weights: () => packageWeights(["@vladmandic/face-api"]),
  async setup(log) {
    const started = performance.now();
    const models = await loadFaceModels(log);
    log(`face-api models loaded on tfjs ${models.backend} in ${Math.round(performance.now() - started)} ms`);
    return { models };
  },
  endpoints: [
    endpoint({
      path: "",
      description: "Detect and describe the faces in one image",
      input: FaceAnalysisInput,
      output: FaceAnalysisOutput,
      handler: analyse,
    }),
  ],
});
