/**
 * Loads the UpscalerJS ESRGAN models (tfjs layers models shipped inside their npm packages) from disk
 * and prepares the tfjs backend they run on. Kept free of platform code so that benchmarks and
 * tests can use it directly.
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";

/** The three model sizes UpscalerJS publishes: each trades latency for quality. */
export type ModelSize = "slim" | "medium" | "thick";
/** Scales every package ships a model for (folders `models/x2` ... `models/x8`). */
export type ModelScale = 2 | 3 | 4 | 8;

export const MODEL_SIZES: readonly ModelSize[] = ["slim", "medium", "thick"];

/** A loaded model plus what a caller must know to feed it. */
export interface UpscaleModel {
  readonly size: ModelSize;
  readonly scale: ModelScale;
  readonly layers: tf.LayersModel;
  /**
   * Pixel value that maps to full intensity at the model's input and output. The RDN models
   * (slim, medium) work on 0..255; the RRDN model (thick) on 0..1, as UpscalerJS's own model
   * definitions declare (`inputRange`/`outputRange`).
   */
  readonly valueRange: 1 | 255;
  /** Input pixels of context a tile needs on each side for its core to match a whole-image run. */
  readonly contextPx: number;
}

const PACKAGES: Record<ModelSize, string> = {
  slim: "@upscalerjs/esrgan-slim",
  medium: "@upscalerjs/esrgan-medium",
  thick: "@upscalerjs/esrgan-thick",
};

const VALUE_RANGE: Record<ModelSize, 1 | 255> = { slim: 255, medium: 255, thick: 1 };

/**
 * Summing the conv radii along the longest path of each model.json gives receptive radii of 10
 * (slim), 18 (medium) and 154 (thick) input pixels. Measured on a photo crop tiled at 32 px: 10 px
 * of context makes slim bit-identical to an untiled run, 16 px makes medium identical and thick
 * within one grey level (PSNR 96 dB); more context only costs time.
 */
const CONTEXT_PX: Record<ModelSize, number> = { slim: 10, medium: 16, thick: 16 };

const require = createRequire(import.meta.url);

/**
 * Directory of an installed package, found through Node's resolver so hoisting and workspaces work.
 * The UpscalerJS packages have an `exports` map without `./package.json`, so resolving that subpath
 * fails; resolve the package's entry point instead and walk up to the package.json that names it.
 */
function packageDir(name: string): string {
  let dir = path.dirname(require.resolve(name));
  for (;;) {
    const manifest = path.join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === name) {
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the package directory of ${name}`);
    dir = parent;
  }
}

/** `model.json` of one size and scale. */
export function modelJsonPath(size: ModelSize, scale: ModelScale): string {
  return path.join(packageDir(PACKAGES[size]), "models", `x${scale}`, "model.json");
}

interface ModelJson {
  modelTopology: object;
  format?: string;
  generatedBy?: string;
  convertedBy?: string;
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

/**
 * A tfjs IOHandler that reads `model.json` and its weight shards from the file system. tfjs's own
 * `file://` loader lives in tfjs-node, which cannot be installed offline (it downloads libtensorflow).
 */
export function fileSystemHandler(jsonPath: string): tf.io.IOHandler {
  return {
    async load(): Promise<tf.io.ModelArtifacts> {
      const json = JSON.parse(await readFile(jsonPath, "utf8")) as ModelJson;
      const dir = path.dirname(jsonPath);
      const weightSpecs: tf.io.WeightsManifestEntry[] = [];
      const shards: Buffer[] = [];
      // Shards are concatenated in manifest order: that is the order the weight specs index into.
      for (const group of json.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const shard of group.paths) shards.push(await readFile(path.join(dir, shard)));
      }
      const all = Buffer.concat(shards);
      return {
        modelTopology: json.modelTopology,
        weightSpecs,
        // A Buffer may be a view into Node's shared pool; tfjs needs an ArrayBuffer holding exactly the weights.
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
        ...(json.format !== undefined ? { format: json.format } : {}),
        ...(json.generatedBy !== undefined ? { generatedBy: json.generatedBy } : {}),
        ...(json.convertedBy !== undefined ? { convertedBy: json.convertedBy } : {}),
      };
    },
  };
}

function firstInput(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  const t = Array.isArray(inputs) ? inputs[0] : inputs;
  if (!t) throw new Error("layer called without an input");
  return t;
}

/** Residual scaling of the RRDN blocks (ESRGAN's β = 0.2); the value is fixed in UpscalerJS's definition. */
class MultiplyBeta extends tf.layers.Layer {
  static readonly className = "MultiplyBeta";
  readonly beta = 0.2;

  constructor() {
    super({});
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.mul(firstInput(inputs), this.beta);
  }
}

/** Sub-pixel upsampling (depth-to-space) to RGB, one class per scale because the name encodes it. */
function pixelShuffle(scale: ModelScale): tf.serialization.SerializableConstructor<tf.layers.Layer> {
  return class PixelShuffle extends tf.layers.Layer {
    static readonly className = `PixelShuffle${scale}x`;

    constructor() {
      super({});
    }

    override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
      const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
      const mul = (d: number | null | undefined): number | null => (d == null ? null : d * scale);
      return [shape[0] ?? null, mul(shape[1]), mul(shape[2]), 3];
    }

    override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
      return tf.depthToSpace(firstInput(inputs) as tf.Tensor4D, scale, "NHWC");
    }
  };
}

let layersRegistered = false;

/** Registers the custom Keras layers of esrgan-thick (class names as they appear in its model.json). */
export function registerCustomLayers(): void {
  if (layersRegistered) return;
  tf.serialization.registerClass(MultiplyBeta);
  for (const scale of [2, 3, 4, 8] as const) tf.serialization.registerClass(pixelShuffle(scale));
  layersRegistered = true;
}

/**
 * Emscripten's Node glue, run when the wasm module is instantiated, adds process-wide
 * `uncaughtException` and `unhandledRejection` listeners that rethrow. They would crash the host
 * process past any handler the runner installed itself, dumping a screen of minified source, so the
 * returned function removes every such listener added since the call.
 */
function keepProcessListeners(): () => void {
  // Seen as a plain EventEmitter: process's per-event overloads do not accept a union of event names.
  const emitter: NodeJS.EventEmitter = process;
  const events = ["uncaughtException", "unhandledRejection"];
  const before = new Map(events.map((e) => [e, new Set(emitter.listeners(e))]));
  return () => {
    for (const event of events) {
      for (const listener of emitter.listeners(event)) {
        if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener as (...args: unknown[]) => void);
      }
    }
  };
}

let backendReady: Promise<string> | undefined;

/**
 * Selects the wasm backend once per process and resolves to the backend in use. The pure-JS cpu
 * backend is ~35x slower on these conv nets, so falling back to it is logged loudly.
 */
export function initBackend(log: (message: string) => void = () => {}): Promise<string> {
  backendReady ??= (async () => {
    // In Node, emscripten reads the .wasm with fs, so a directory path works (a file:// URL too);
    // pointing at the installed package keeps it working wherever node_modules ends up.
    setWasmPaths(path.join(packageDir("@tensorflow/tfjs-backend-wasm"), "dist") + path.sep);
    let ok = false;
    const restoreListeners = keepProcessListeners();
    try {
      ok = await tf.setBackend("wasm");
    } catch (err) {
      log(`tfjs wasm backend failed to start: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      restoreListeners();
    }
    if (!ok) {
      log("falling back to the tfjs cpu backend: upscaling will be much slower");
      await tf.setBackend("cpu");
    }
    await tf.ready();
    return tf.getBackend();
  })();
  return backendReady;
}

/** Loads one model from its package. The backend is initialised first if needed. */
export async function loadUpscaleModel(
  size: ModelSize,
  scale: ModelScale,
  log: (message: string) => void = () => {},
): Promise<UpscaleModel> {
  await initBackend(log);
  if (size === "thick") registerCustomLayers();
  const layers = await tf.loadLayersModel(fileSystemHandler(modelJsonPath(size, scale)));
  return { size, scale, layers, valueRange: VALUE_RANGE[size], contextPx: CONTEXT_PX[size] };
}

/**
 * Loads each (size, scale) model at most once and keeps it. Concurrent callers share one load;
 * a failed load is forgotten so that a later request can try again.
 */
export class ModelCache {
  readonly #loading = new Map<string, Promise<UpscaleModel>>();
  readonly #log: (message: string) => void;

  constructor(log: (message: string) => void = () => {}) {
    this.#log = log;
  }

  get(size: ModelSize, scale: ModelScale): Promise<UpscaleModel> {
    const key = `${size}/x${scale}`;
    let pending = this.#loading.get(key);
    if (!pending) {
      const started = performance.now();
      pending = loadUpscaleModel(size, scale, this.#log).then(
        (model) => {
          this.#log(`loaded esrgan-${key} in ${Math.round(performance.now() - started)} ms`);
          return model;
        },
        (err: unknown) => {
          this.#loading.delete(key);
          throw err;
        },
      );
      this.#loading.set(key, pending);
    }
    return pending;
  }

  /** Frees the weights of every loaded model. */
  async dispose(): Promise<void> {
    const loads = [...this.#loading.values()];
    this.#loading.clear();
    for (const result of await Promise.allSettled(loads)) {
      if (result.status === "fulfilled") result.value.layers.dispose();
    }
  }
}
