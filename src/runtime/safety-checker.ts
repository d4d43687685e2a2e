/**
 * The platform-wide `enable_safety_checker`. An endpoint declares `safetyChecker` (see `sdk.ts`);
 * the SDK then adds `enable_safety_checker` to its input and `has_nsfw_concepts` to its output, and
 * for requests that enable it the runner host wraps `ctx.files` in a {@link SafetyGuard}:
 *
 * - every image the handler stores (`ctx.files.put` with an `image/*` type) is scored with the
 *   NSFW classifier of `src/media/safety/model.ts` (the safety-checker app's) before it is written;
 *   a flagged image is stored blurred or black instead, so the original never reaches storage or a
 *   client (partial results included);
 * - when the handler returns, every image record of the output (an object with a `url` and an
 *   `image/*` `content_type`, found depth first in key and array order) gets its verdict, in that
 *   order, as `has_nsfw_concepts`. A record the handler did not store through `ctx.files` (an input
 *   URL passed through, say) is read, scored and, if flagged, replaced there and then;
 * - the request's log then says how many output images were checked and flagged, and, apart, how
 *   many previews: images stored through `ctx.files` that the output does not return (a generator's
 *   intermediate steps), which are screened all the same because clients received them as partials.
 *
 * The check fails closed: if the model cannot load or an image cannot be decoded, the request fails
 * rather than returning an unchecked image.
 *
 * The model (nsfwjs MobileNetV2 on tfjs wasm, 0.5–3 s to load) is imported and loaded on the first
 * checked request of a runner and kept; runners of endpoints that never run a check never import it.
 * @module
 */
import { Readable } from "node:stream";
import type { FormatEnum, Sharp } from "sharp";
import type { NsfwScores, SafetyClassifier } from "../media/safety/model.js";
import type { FileAccess, FileRef, PutFileOptions } from "./sdk.js";

/** `withhold`: a flagged image is replaced by a black image of the same size and format, as fal does. */
export type SafetyCheckerMode = "blur" | "withhold";

export interface SafetyCheckerConfig {
  /** @default "withhold" */
  mode: SafetyCheckerMode;
  /** The safety-checker app's threshold rule (`porn + hentai ≥ t`, or `sexy ≥ (1 + t) / 2`); 0 flags every image. @default 0.5 */
  threshold: number;
}

export const SAFETY_CHECKER_MODE_ENV = "DARKROOM_SAFETY_CHECKER_MODE";
export const SAFETY_CHECKER_THRESHOLD_ENV = "DARKROOM_SAFETY_CHECKER_THRESHOLD";

/** The safety-checker app's `DEFAULT_THRESHOLD`, repeated so that reading it does not load tfjs (a test keeps them equal). */
export const DEFAULT_SAFETY_THRESHOLD = 0.5;

/** Decoding bound for a checked image: far above any app's output limit, low enough to stop a decompression bomb. */
const MAX_CHECKED_PIXELS = 100_000_000;

/**
 * A blurred image is the original shrunk until its long side is this many pixels, blurred there,
 * then enlarged back: a Gaussian about 1/16 of the image wide (shapes and colours stay, no detail
 * does), at a cost linear in the pixels, where a direct Gaussian that wide would cost its radius
 * per pixel.
 */
const BLUR_GRID = 16;

/** Reads the configuration the server passes to runners in their environment. Throws on a bad value. */
export function safetyCheckerConfigFromEnv(env: NodeJS.ProcessEnv): SafetyCheckerConfig {
  const mode = env[SAFETY_CHECKER_MODE_ENV] || "withhold";
  if (mode !== "blur" && mode !== "withhold") {
    throw new Error(`${SAFETY_CHECKER_MODE_ENV}=${mode}: expected blur or withhold`);
  }
  const raw = env[SAFETY_CHECKER_THRESHOLD_ENV];
  const threshold = raw === undefined || raw.trim() === "" ? DEFAULT_SAFETY_THRESHOLD : Number(raw);
  if (!Number.isFinite(threshold) || threshold < 0 || threshold > 1) {
    throw new Error(`${SAFETY_CHECKER_THRESHOLD_ENV}=${raw}: expected a number from 0 to 1`);
  }
  return { mode, threshold };
}

// --- The model, once per process ---

interface NsfwModel {
  classifier: SafetyClassifier;
  score(image: Buffer): Promise<NsfwScores>;
  isNsfw(scores: NsfwScores, threshold: number): boolean;
}

export type NsfwModelState = "unloaded" | "loading" | "loaded";

let modelState: NsfwModelState = "unloaded";
let model: Promise<NsfwModel> | undefined;

/** Whether this process has loaded the NSFW model: the proof that unchecked runners stay without it. */
export function nsfwModelState(): NsfwModelState {
  return modelState;
}

function loadModel(log: (message: string) => void): Promise<NsfwModel> {
  model ??= (async (): Promise<NsfwModel> => {
    modelState = "loading";
    const started = performance.now();
    log("safety checker: loading the NSFW model (first checked request of this runner)");
    // Imported here, not at the top: the module pulls in tfjs and nsfwjs.
    const nsfw = await import("../media/safety/model.js");
    const classifier = await nsfw.loadSafetyClassifier();
    log(`safety checker: loaded nsfwjs ${classifier.modelName} in ${Math.round(performance.now() - started)} ms`);
    modelState = "loaded";
    return {
      classifier,
      score: async (image) => classifier.classify(await nsfw.decodeForModel(image, classifier.inputSize, MAX_CHECKED_PIXELS)),
      isNsfw: nsfw.isNsfw,
    };
  })().catch((err: unknown) => {
    // Forget the failure so that a later request tries again.
    model = undefined;
    modelState = "unloaded";
    throw err;
  });
  return model;
}

// --- Replacing a flagged image ---

interface Format {
  sharp: keyof FormatEnum;
  contentType: string;
  ext: string;
}

/** Formats a replacement keeps; any other input format (SVG, say) is replaced by a PNG. */
const FORMATS: Record<string, Format> = {
  png: { sharp: "png", contentType: "image/png", ext: "png" },
  jpeg: { sharp: "jpeg", contentType: "image/jpeg", ext: "jpg" },
  webp: { sharp: "webp", contentType: "image/webp", ext: "webp" },
  gif: { sharp: "gif", contentType: "image/gif", ext: "gif" },
  tiff: { sharp: "tiff", contentType: "image/tiff", ext: "tiff" },
  heif: { sharp: "avif", contentType: "image/avif", ext: "avif" },
};

interface Replacement {
  data: Buffer;
  contentType: string;
  ext: string;
  width: number;
  height: number;
}

/**
 * The blurred or black stand-in for a flagged image: same displayed size, same format where sharp
 * writes it (else PNG), and no metadata, so nothing of the original (an EXIF thumbnail) survives.
 */
async function replacement(image: Buffer, mode: SafetyCheckerMode): Promise<Replacement> {
  const { default: sharp } = await import("sharp");
  const meta = await sharp(image, { limitInputPixels: MAX_CHECKED_PIXELS }).metadata();
  const { width, height } = meta.autoOrient;
  const format = FORMATS[meta.format] ?? FORMATS["png"]!;
  let pixels: Sharp;
  if (mode === "withhold") {
    pixels = sharp({ create: { width, height, channels: 3, background: { r: 0, g: 0, b: 0 } } });
  } else {
    const shrink = Math.max(8, Math.max(width, height) / BLUR_GRID);
    const small = await sharp(image, { limitInputPixels: MAX_CHECKED_PIXELS })
      .autoOrient()
      .resize(Math.max(1, Math.round(width / shrink)), Math.max(1, Math.round(height / shrink)), { fit: "fill" })
      .blur(1)
      .raw()
      .toBuffer({ resolveWithObject: true });
    pixels = sharp(small.data, { raw: { width: small.info.width, height: small.info.height, channels: small.info.channels } })
      .resize(width, height, { fit: "fill", kernel: "cubic" });
  }
  const data = await pixels.toFormat(format.sharp).toBuffer();
  return { data, contentType: format.contentType, ext: format.ext, width, height };
}

function renamed(fileName: string | undefined, ext: string): string | undefined {
  if (fileName === undefined) return undefined;
  return /\.[A-Za-z0-9]+$/.test(fileName) ? fileName.replace(/\.[A-Za-z0-9]+$/, `.${ext}`) : `${fileName}.${ext}`;
}

// --- The per-request guard ---

const isImageType = (contentType: string): boolean => contentType.toLowerCase().startsWith("image/");

interface ImageRecord {
  url: string;
  content_type: string;
  file_name?: unknown;
  file_size?: unknown;
  width?: unknown;
  height?: unknown;
}

function isImageRecord(value: Record<string, unknown>): value is Record<string, unknown> & ImageRecord {
  return typeof value["url"] === "string" && typeof value["content_type"] === "string" && isImageType(value["content_type"]);
}

/** The output's image records, depth first, in key and array order: the order of `has_nsfw_concepts`. */
export function findImageRecords(value: unknown, found: ImageRecord[] = []): ImageRecord[] {
  if (Array.isArray(value)) {
    for (const item of value) findImageRecords(item, found);
  } else if (typeof value === "object" && value !== null) {
    const record = value as Record<string, unknown>;
    if (isImageRecord(record)) found.push(record);
    else for (const item of Object.values(record)) findImageRecords(item, found);
  }
  return found;
}

async function toBuffer(body: Buffer | Uint8Array | Readable): Promise<Buffer> {
  if (!(body instanceof Readable)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

export interface SafetyGuardOptions {
  /** The request's own file access, which the guard wraps. */
  files: FileAccess;
  config: SafetyCheckerConfig;
  /** The request's log. */
  log: (message: string) => void;
  signal: AbortSignal;
}

/** Screens the images of one request. Give the handler {@link SafetyGuard.files}, then pass its output to {@link SafetyGuard.finish}. */
export class SafetyGuard {
  /** `ctx.files` for the handler: image puts are screened, everything else passes through. */
  readonly files: FileAccess;
  readonly #inner: FileAccess;
  readonly #config: SafetyCheckerConfig;
  readonly #log: (message: string) => void;
  readonly #signal: AbortSignal;
  /** Verdicts by the URL the stored image got: one per image screened, previews included. */
  readonly #verdicts = new Map<string, boolean>();

  constructor(options: SafetyGuardOptions) {
    this.#inner = options.files;
    this.#config = options.config;
    this.#log = options.log;
    this.#signal = options.signal;
    this.files = {
      put: (body, put) => this.#put(body, put),
      read: (url, read) => this.#inner.read(url, read),
    };
  }

  async #put(body: Buffer | Uint8Array | Readable, options: PutFileOptions): Promise<FileRef> {
    if (!isImageType(options.contentType)) return this.#inner.put(body, options);
    const screened = await this.#screen(await toBuffer(body), options);
    const ref = await this.#inner.put(screened.data, screened.options);
    this.#verdicts.set(ref.url, screened.flagged);
    return ref;
  }

  /** Scores one image and, if it is flagged, swaps in its replacement. */
  async #screen(image: Buffer, options: PutFileOptions): Promise<{ flagged: boolean; data: Buffer; options: PutFileOptions }> {
    this.#signal.throwIfAborted();
    const nsfw = await loadModel(this.#log);
    this.#signal.throwIfAborted();
    let scores: NsfwScores;
    try {
      scores = await nsfw.score(image);
    } catch (err) {
      throw new Error(`safety checker: could not decode an output image, so it is not returned: ${err instanceof Error ? err.message : String(err)}`);
    }
    const flagged = nsfw.isNsfw(scores, this.#config.threshold);
    if (!flagged) return { flagged, data: image, options };
    const stand = await replacement(image, this.#config.mode);
    const fileName = renamed(options.fileName, stand.ext);
    return {
      flagged,
      data: stand.data,
      options: {
        ...options,
        contentType: stand.contentType,
        width: stand.width,
        height: stand.height,
        ...(fileName !== undefined ? { fileName } : {}),
      },
    };
  }

  /** Adds `has_nsfw_concepts` to the handler's output, screening any image record not stored through {@link files}. */
  async finish(output: unknown): Promise<Record<string, unknown>> {
    if (typeof output !== "object" || output === null || Array.isArray(output)) {
      throw new Error("an endpoint with the safety checker must return an object");
    }
    const flags: boolean[] = [];
    /** The verdicts of the images the output returns, by URL: an image listed twice was checked once. */
    const returned = new Map<string, boolean>();
    for (const record of findImageRecords(output)) {
      let flagged = this.#verdicts.get(record.url);
      if (flagged === undefined) {
        const { data } = await this.#inner.read(record.url);
        const screened = await this.#screen(data, {
          contentType: record.content_type,
          ...(typeof record.file_name === "string" ? { fileName: record.file_name } : {}),
        });
        flagged = screened.flagged;
        if (flagged) {
          const ref = await this.#inner.put(screened.data, screened.options);
          Object.assign(record, { url: ref.url, content_type: ref.content_type, file_name: ref.file_name, file_size: ref.file_size });
          if (record.width !== undefined) Object.assign(record, { width: screened.options.width, height: screened.options.height });
        }
        this.#verdicts.set(record.url, flagged);
      }
      flags.push(flagged);
      returned.set(record.url, flagged);
    }
    // Counted apart so that "images checked" is what the client gets back: a one-image request with
    // three previews is one image, not four.
    const previews = [...this.#verdicts].filter(([url]) => !returned.has(url)).map(([, flagged]) => flagged);
    const count = (verdicts: Iterable<boolean>): number => [...verdicts].filter(Boolean).length;
    this.#log(
      `safety checker: ${returned.size} image(s) checked, ${count(returned.values())} flagged` +
        (previews.length > 0 ? `; ${previews.length} preview(s) checked besides, ${count(previews)} flagged` : "") +
        ` (mode ${this.#config.mode}, threshold ${this.#config.threshold})`,
    );
    return { ...(output as Record<string, unknown>), has_nsfw_concepts: flags };
  }
}
