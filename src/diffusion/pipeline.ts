/**
 * Stable Diffusion over ONNX Runtime for a model folder in the diffusers ONNX layout (what
 * `darkroom models pull` keeps): CLIP tokenizer → text_encoder → denoising loop (scheduler from
 * scheduler/scheduler_config.json, classifier-free guidance above a guidance scale of 1) →
 * vae_decoder → RGB. Image-to-image goes through vae_encoder when the model has one.
 *
 * Sessions are created once by {@link DiffusionPipeline.load} and reused for every image. Graph
 * input/output names and the dtypes of the token ids and the timestep are read from the sessions'
 * metadata, since exports differ (optimum: int64 timestep; the older diffusers script: float32).
 * @module
 */
import { access, readFile } from "node:fs/promises";
import path from "node:path";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import ort from "onnxruntime-node";
import { PlatformError } from "../core/errors.js";
import { ClipTokenizer } from "./clip-tokenizer.js";
import { denoise } from "./denoise.js";
import { fromRgb, latentPreview, toRgb, type RgbImage } from "./images.js";
import { MAX_SEED, Random } from "./random.js";
import { interp } from "./schedulers/config.js";
import { alphasCumprod, createScheduler, loadSchedulerConfig, trainingSigmas, type Scheduler, type SchedulerConfig } from "./schedulers/index.js";
import { inputMeta, pickName, runFloat32 } from "./session-io.js";

export type { RgbImage } from "./images.js";

/** SD 1.x/2.x VAE scaling factor, used when vae_decoder/config.json does not name one. */
export const DEFAULT_VAE_SCALING = 0.18215;

/** Optional TAESD decoder for previews, in the model folder beside the full VAE. */
export const TAESD_DECODER = "taesd_decoder/model.onnx";

export interface PipelineLoadOptions {
  /** ONNX Runtime intra-op threads per session; unset lets ONNX Runtime pick (one per core). */
  intraOpNumThreads?: number;
  /** e.g. `["cuda", "cpu"]` with onnxruntime-node's CUDA build. @default ["cpu"] */
  executionProviders?: string[];
  log?: (message: string) => void;
}

export interface GenerateOptions {
  prompt: string;
  negativePrompt?: string;
  /** Multiples of 8. */
  width: number;
  height: number;
  steps: number;
  /** Above 1 runs classifier-free guidance against the negative prompt (two UNet batches). @default 0 */
  guidanceScale?: number;
  seed: number;
  /** Image-to-image: the start image, already `width`×`height`. */
  image?: RgbImage;
  /** Image-to-image: how much of the schedule runs, 0 (the image back) to 1 (from noise). @default 0.8 */
  strength?: number;
  signal?: AbortSignal;
  onStep?: (step: number, total: number) => void;
  /** Previews after every `previewEvery` steps (not after the last one); 0 or unset: none. */
  previewEvery?: number;
  onPreview?: (preview: RgbImage, step: number, total: number) => void | Promise<void>;
}

interface UnetIo {
  sample: string;
  timestep: string;
  hidden: string;
  /** float16 timesteps are fed as float32 and converted by {@link runFloat32}. */
  timestepType: "int64" | "float32";
  /** Whether the timestep is a scalar (shape []) rather than shape [1]. */
  timestepScalar: boolean;
  /** 1 when the export fixed the batch at one: guidance then runs the UNet twice per step. */
  fixedBatch1: boolean;
  output: string;
  /** LCM distillations with guidance built in: the `timestep_cond` input and its width. */
  timestepCond: { name: string; dim: number } | null;
}

/**
 * The guidance-scale embedding LCM UNets take as `timestep_cond` (diffusers'
 * `get_guidance_scale_embedding`): sines then cosines of 1000·w at geometric frequencies.
 */
export function guidanceEmbedding(w: number, dim: number): Float32Array {
  const half = Math.floor(dim / 2);
  const k = Math.log(10000) / (half - 1);
  const out = new Float32Array(dim);
  for (let i = 0; i < half; i++) {
    const x = w * 1000 * Math.exp(-k * i);
    out[i] = Math.sin(x);
    out[half + i] = Math.cos(x);
  }
  return out;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

async function readJson(file: string): Promise<Record<string, unknown> | null> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** Throws the platform's cancellation error, whatever the signal was aborted with. */
function checkCancelled(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  throw signal.reason instanceof PlatformError ? signal.reason : new PlatformError("ERR_CLIENT_CANCELLED", { cause: signal.reason });
}

/**
 * A view of `inner` that starts at step `start` (image-to-image skips the noisiest steps) and
 * remembers the latest sample, so previews can be made from it.
 */
class ScheduleView implements Scheduler {
  readonly name: string;
  readonly timesteps: readonly number[];
  readonly initNoiseSigma: number;
  latest: Float32Array | null = null;

  constructor(
    private readonly inner: Scheduler,
    private readonly start: number,
  ) {
    this.name = inner.name;
    this.timesteps = inner.timesteps.slice(start);
    // Image-to-image latents arrive already noised to the start step.
    this.initNoiseSigma = start === 0 ? inner.initNoiseSigma : 1;
  }

  scaleModelInput(sample: Float32Array, i: number): Float32Array {
    return this.inner.scaleModelInput(sample, i + this.start);
  }

  step(modelOutput: Float32Array, i: number, sample: Float32Array, rng: Random): Float32Array {
    this.latest = this.inner.step(modelOutput, i + this.start, sample, rng);
    return this.latest;
  }
}

/** The number of denoising steps image-to-image runs for `steps` and `strength` (diffusers' rule). */
export function img2imgSteps(steps: number, strength: number): number {
  return Math.min(Math.floor(steps * strength), steps);
}

export class DiffusionPipeline {
  readonly modelDir: string;
  readonly vaeScaling: number;
  readonly #tokenizer: ClipTokenizer;
  readonly #schedulerConfig: SchedulerConfig;
  readonly #textEncoder: ort.InferenceSession;
  readonly #unet: ort.InferenceSession;
  readonly #vaeDecoder: ort.InferenceSession;
  readonly #vaeEncoder: ort.InferenceSession | null;
  readonly #taesd: ort.InferenceSession | null;
  readonly #unetIo: UnetIo;
  readonly #idsType: "int32" | "int64";

  private constructor(parts: {
    modelDir: string;
    tokenizer: ClipTokenizer;
    schedulerConfig: SchedulerConfig;
    vaeScaling: number;
    textEncoder: ort.InferenceSession;
    unet: ort.InferenceSession;
    vaeDecoder: ort.InferenceSession;
    vaeEncoder: ort.InferenceSession | null;
    taesd: ort.InferenceSession | null;
  }) {
    this.modelDir = parts.modelDir;
    this.#tokenizer = parts.tokenizer;
    this.#schedulerConfig = parts.schedulerConfig;
    this.vaeScaling = parts.vaeScaling;
    this.#textEncoder = parts.textEncoder;
    this.#unet = parts.unet;
    this.#vaeDecoder = parts.vaeDecoder;
    this.#vaeEncoder = parts.vaeEncoder;
    this.#taesd = parts.taesd;

    const ids = inputMeta(this.#textEncoder, this.#textEncoder.inputNames[0] ?? "input_ids");
    if (ids.type !== "int32" && ids.type !== "int64") throw new Error(`text_encoder: token ids of type ${ids.type} are not supported`);
    this.#idsType = ids.type;

    const names = this.#unet.inputNames;
    const sample = pickName(names, "sample", 0, "unet");
    const timestep = pickName(names, "timestep", 1, "unet");
    const hidden = pickName(names, "encoder_hidden_states", 2, "unet");
    const t = inputMeta(this.#unet, timestep);
    if (t.type !== "int64" && t.type !== "float32" && t.type !== "float16") throw new Error(`unet: timestep of type ${t.type} is not supported (int64, float32 or float16)`);
    const s = inputMeta(this.#unet, sample);
    if (s.type !== "float32" && s.type !== "float16") throw new Error(`unet: sample of type ${s.type} is not supported (float32 or float16)`);
    this.#unetIo = {
      sample,
      timestep,
      hidden,
      timestepType: t.type === "int64" ? "int64" : "float32",
      timestepScalar: t.shape.length === 0,
      fixedBatch1: s.shape[0] === 1,
      output: this.#unet.outputNames[0] ?? "out_sample",
      timestepCond: null,
    };
    const unknown = names.filter((n) => ![sample, timestep, hidden, "timestep_cond"].includes(n));
    if (unknown.length > 0) {
      // SDXL UNets also take text_embeds and time_ids, which need its second text encoder.
      throw new Error(`unet: inputs ${unknown.join(", ")} are not supported (SD 1.x/2.x, turbo and LCM UNets only; SDXL is not)`);
    }
    if (names.includes("timestep_cond")) {
      const dim = inputMeta(this.#unet, "timestep_cond").shape[1];
      this.#unetIo.timestepCond = { name: "timestep_cond", dim: typeof dim === "number" ? dim : 256 };
    }
  }

  static async load(modelDir: string, options: PipelineLoadOptions = {}): Promise<DiffusionPipeline> {
    const log = options.log ?? (() => {});
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: options.executionProviders ?? ["cpu"],
      graphOptimizationLevel: "all",
      ...(options.intraOpNumThreads ? { intraOpNumThreads: options.intraOpNumThreads } : {}),
    };
    const open = async (rel: string): Promise<ort.InferenceSession> => {
      const started = Date.now();
      const session = await ort.InferenceSession.create(path.join(modelDir, ...rel.split("/")), sessionOptions);
      log(`loaded ${rel} in ${Date.now() - started} ms`);
      return session;
    };
    const optional = async (rel: string): Promise<ort.InferenceSession | null> => ((await exists(path.join(modelDir, ...rel.split("/")))) ? open(rel) : null);

    const vaeConfig = (await readJson(path.join(modelDir, "vae_decoder", "config.json"))) ?? {};
    const scaling = typeof vaeConfig["scaling_factor"] === "number" ? vaeConfig["scaling_factor"] : DEFAULT_VAE_SCALING;
    return new DiffusionPipeline({
      modelDir,
      tokenizer: await ClipTokenizer.load(modelDir),
      schedulerConfig: await loadSchedulerConfig(modelDir),
      vaeScaling: scaling,
      textEncoder: await open("text_encoder/model.onnx"),
      unet: await open("unet/model.onnx"),
      vaeDecoder: await open("vae_decoder/model.onnx"),
      vaeEncoder: await optional("vae_encoder/model.onnx"),
      taesd: await optional(TAESD_DECODER),
    });
  }

  get hasVaeEncoder(): boolean {
    return this.#vaeEncoder !== null;
  }

  get hasTaesd(): boolean {
    return this.#taesd !== null;
  }

  get schedulerName(): string {
    return this.#schedulerConfig._class_name;
  }

  /** UNet steps one image takes (what `onStep` counts to). */
  denoisingSteps(steps: number, strength?: number): number {
    return strength === undefined ? steps : img2imgSteps(steps, strength);
  }

  async #embed(text: string): Promise<ort.Tensor> {
    const { ids } = this.#tokenizer.encode(text);
    const data = this.#idsType === "int32" ? Int32Array.from(ids) : BigInt64Array.from(ids.map((id) => BigInt(id)));
    const name = this.#textEncoder.inputNames[0] ?? "input_ids";
    const out = await runFloat32(this.#textEncoder, { [name]: new ort.Tensor(this.#idsType, data, [1, ids.length]) });
    const hidden = out["last_hidden_state"] ?? out[this.#textEncoder.outputNames[0] ?? ""];
    if (!hidden) throw new Error("text_encoder returned no hidden states");
    return hidden;
  }

  #timestep(t: number): ort.Tensor {
    const dims = this.#unetIo.timestepScalar ? [] : [1];
    return this.#unetIo.timestepType === "int64" ? new ort.Tensor("int64", BigInt64Array.from([BigInt(Math.round(t))]), dims) : new ort.Tensor("float32", Float32Array.from([t]), dims);
  }

  async #unetRun(sample: Float32Array, batch: number, latentH: number, latentW: number, t: number, hidden: ort.Tensor, guidanceCond: ort.Tensor | null = null): Promise<Float32Array> {
    const io = this.#unetIo;
    const out = await runFloat32(this.#unet, {
      [io.sample]: new ort.Tensor("float32", sample, [batch, 4, latentH, latentW]),
      [io.timestep]: this.#timestep(t),
      [io.hidden]: hidden,
      ...(io.timestepCond && guidanceCond ? { [io.timestepCond.name]: guidanceCond } : {}),
    });
    const result = out[io.output];
    if (!result) throw new Error(`unet returned no '${io.output}'`);
    return result.data as Float32Array;
  }

  /** Scaled latents (what the UNet works on) of an image, `width`×`height`, multiples of 8. */
  async encodeImage(image: RgbImage): Promise<Float32Array> {
    if (!this.#vaeEncoder) throw new Error("this model has no vae_encoder");
    const session = this.#vaeEncoder;
    const input = session.inputNames[0] ?? "sample";
    const out = await runFloat32(session, { [input]: new ort.Tensor("float32", fromRgb(image), [1, 3, image.height, image.width]) });
    const tensor = out["latent_sample"] ?? out[session.outputNames[0] ?? ""];
    if (!tensor) throw new Error("vae_encoder returned nothing");
    const plane = (image.width / 8) * (image.height / 8);
    const data = tensor.data as Float32Array;
    // Some exports return the distribution's mean and log-variance (8 channels): take the mean.
    const mean = tensor.dims[1] === 8 ? data.subarray(0, 4 * plane) : data;
    return mean.map((v) => v * this.vaeScaling);
  }

  /** RGB of scaled latents. */
  async decodeLatents(latents: Float32Array, width: number, height: number): Promise<RgbImage> {
    const session = this.#vaeDecoder;
    const input = session.inputNames[0] ?? "latent_sample";
    const unscaled = latents.map((v) => v / this.vaeScaling);
    const out = await runFloat32(session, { [input]: new ort.Tensor("float32", unscaled, [1, 4, height / 8, width / 8]) });
    const tensor = out[session.outputNames[0] ?? "sample"];
    if (!tensor) throw new Error("vae_decoder returned nothing");
    const [, , h, w] = tensor.dims;
    if (h !== height || w !== width) throw new Error(`vae_decoder made ${w}×${h}, expected ${width}×${height}`);
    return toRgb(tensor.data as Float32Array, width, height);
  }

  async #preview(latents: Float32Array, latentW: number, latentH: number): Promise<RgbImage> {
    if (!this.#taesd) return latentPreview(latents, latentW, latentH);
    const session = this.#taesd;
    const out = await runFloat32(session, { [session.inputNames[0] ?? "latent_sample"]: new ort.Tensor("float32", latents, [1, 4, latentH, latentW]) });
    const tensor = out[session.outputNames[0] ?? ""];
    if (!tensor) throw new Error("TAESD decoder returned nothing");
    const [, , h = 0, w = 0] = tensor.dims;
    // madebyollin's TAESD decoder takes the latents as the UNet sees them and outputs [0, 1].
    return toRgb(tensor.data as Float32Array, w, h, true);
  }

  /** Noise added to image latents for a start at timestep `t` (diffusers' `add_noise`). */
  #addNoise(latents: Float32Array, noise: Float32Array, t: number): Float32Array {
    const alphas = alphasCumprod(this.#schedulerConfig);
    if (this.#schedulerConfig._class_name.startsWith("Euler")) {
      // Euler works in σ space: x_t = x_0 + σ_t·ε.
      const sigma = interp(t, trainingSigmas(alphas));
      return latents.map((v, i) => v + sigma * (noise[i] ?? 0));
    }
    const a = alphas[Math.round(t)] ?? 1;
    return latents.map((v, i) => Math.sqrt(a) * v + Math.sqrt(1 - a) * (noise[i] ?? 0));
  }

  async generate(options: GenerateOptions): Promise<RgbImage> {
    const latents = await this.latents(options);
    checkCancelled(options.signal);
    return this.decodeLatents(latents, options.width, options.height);
  }

  /** The denoised, scaled latents {@link generate} decodes. */
  async latents(options: GenerateOptions): Promise<Float32Array> {
    const { width, height, signal } = options;
    if (width % 8 !== 0 || height % 8 !== 0) throw new RangeError(`width and height must be multiples of 8, got ${width}×${height}`);
    const latentW = width / 8;
    const latentH = height / 8;
    const size = 4 * latentW * latentH;
    const guidance = options.guidanceScale ?? 0;
    const cond = this.#unetIo.timestepCond;
    // An LCM UNet with timestep_cond has guidance distilled in: the scale goes in as an embedding
    // of w = scale − 1 (diffusers' LCM pipeline) and no unconditional batch is run.
    const guided = guidance > 1 && !cond;
    const guidanceCond = cond ? new ort.Tensor("float32", guidanceEmbedding(Math.max(0, guidance - 1), cond.dim), [1, cond.dim]) : null;
    checkCancelled(signal);

    const positive = await this.#embed(options.prompt);
    let hidden = positive;
    if (guided) {
      const uncond = await this.#embed(options.negativePrompt ?? "");
      const a = uncond.data as Float32Array;
      const b = positive.data as Float32Array;
      const both = new Float32Array(a.length + b.length);
      both.set(a);
      both.set(b, a.length);
      const [, seq = 0, width_ = 0] = positive.dims;
      hidden = new ort.Tensor("float32", both, [2, seq, width_]);
    }

    const full = createScheduler(this.#schedulerConfig, options.steps);
    let start = 0;
    let latents: Float32Array | undefined;
    // The loop's own generator gets the next seed, so a stochastic scheduler's per-step noise is
    // not the same numbers as the noise added to the image.
    let loopSeed = options.seed;
    if (options.image) {
      const strength = options.strength ?? 0.8;
      const run = img2imgSteps(options.steps, strength);
      start = options.steps - run;
      const init = await this.encodeImage(options.image);
      if (run === 0) return init;
      const noise = new Random(options.seed).normals(size);
      latents = this.#addNoise(init, noise, full.timesteps[start] ?? 0);
      loopSeed = (options.seed + 1) % MAX_SEED;
    }
    const schedule = new ScheduleView(full, start);
    const total = schedule.timesteps.length;
    const every = options.previewEvery ?? 0;
    let pendingPreview: number | null = null;

    const result = await denoise({
      scheduler: schedule,
      size,
      seed: loopSeed,
      guidanceScale: guided ? guidance : 0,
      ...(latents ? { latents } : {}),
      predict: async (input, t) => {
        if (pendingPreview !== null && schedule.latest && options.onPreview) {
          await options.onPreview(await this.#preview(schedule.latest, latentW, latentH), pendingPreview, total);
        }
        pendingPreview = null;
        // ONNX Runtime runs off the event loop; yielding here lets a cancel message in before each step.
        await yieldToEventLoop();
        checkCancelled(signal);
        if (!guided) return this.#unetRun(input, 1, latentH, latentW, t, hidden, guidanceCond);
        if (!this.#unetIo.fixedBatch1) {
          const batch = new Float32Array(2 * size);
          batch.set(input);
          batch.set(input, size);
          return this.#unetRun(batch, 2, latentH, latentW, t, hidden);
        }
        const hiddenData = hidden.data as Float32Array;
        const half = hiddenData.length / 2;
        const [, seq = 0, h = 0] = hidden.dims;
        const u = await this.#unetRun(input, 1, latentH, latentW, t, new ort.Tensor("float32", hiddenData.slice(0, half), [1, seq, h]));
        const c = await this.#unetRun(input, 1, latentH, latentW, t, new ort.Tensor("float32", hiddenData.slice(half), [1, seq, h]));
        const out = new Float32Array(2 * size);
        out.set(u);
        out.set(c, size);
        return out;
      },
      onStep: (step, n) => {
        options.onStep?.(step, n);
        if (every > 0 && step < n && step % every === 0) pendingPreview = step;
      },
    });
    return result;
  }

  async release(): Promise<void> {
    const sessions = [this.#textEncoder, this.#unet, this.#vaeDecoder, this.#vaeEncoder, this.#taesd];
    for (const session of sessions) if (session) await session.release();
  }
}
