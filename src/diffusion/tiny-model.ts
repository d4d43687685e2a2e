/**
 * Writes a tiny, randomly initialised Stable Diffusion model in the diffusers ONNX layout: the same
 * files, graph input/output names and dtypes as an SD-Turbo ONNX export (optimum), with toy
 * graphs and a 16-wide hidden size instead of 1024. It loads in ONNX Runtime and runs the whole
 * pipeline in milliseconds, so the model manager, tokenizer, schedulers and app code can be tested
 * end to end without real weights. The images it makes are noise.
 *
 * | file | inputs | outputs |
 * |---|---|---|
 * | text_encoder/model.onnx | input_ids int32 [batch, sequence] | last_hidden_state f32 [batch, sequence, H], pooler_output f32 [batch, H] |
 * | unet/model.onnx | sample f32 [batch, 4, h, w], timestep int64 (or f32) [steps], encoder_hidden_states f32 [batch, sequence, H] | out_sample f32 [batch, 4, h, w] |
 * | vae_decoder/model.onnx | latent_sample f32 [batch, 4, h, w] | sample f32 [batch, 3, 8h, 8w] |
 * | vae_encoder/model.onnx | sample f32 [batch, 3, 8h, 8w] | latent_sample f32 [batch, 4, h, w] |
 * @module
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { bytesToUnicode, END_OF_TEXT, START_OF_TEXT } from "./clip-tokenizer.js";
import { DataType, encodeModel, type DataTypeCode, type Graph, type Tensor } from "./onnx-writer.js";
import { Random } from "./random.js";

export interface TinyModelOptions {
  /** @default 0 */
  seed?: number;
  /** Text embedding width (SD-Turbo: 1024). @default 16 */
  hidden?: number;
  /** optimum exports the UNet's timestep as int64; the older diffusers script as float32. @default "int64" */
  timestepType?: "int64" | "float32";
  /** Write vae_encoder/ too (image-to-image); SD-Turbo's ONNX exports have one. @default true */
  vaeEncoder?: boolean;
  /**
   * An LCM-shaped model instead: LCMScheduler config and a UNet with a `timestep_cond` input of
   * this width (the guidance embedding of LCM distillations such as LCM Dreamshaper, 256).
   */
  lcmTimestepCond?: number;
  /** float16 inputs and outputs (the UNet's timestep too, when float), as fp16 exports have. @default false */
  float16?: boolean;
}

/** CLIP's vocabulary size: ids up to <|endoftext|> = 49407 must index the embedding. */
const VOCAB_SIZE = 49408;
const MERGES = ["t h", "th e</w>", "c a", "ca t</w>", "a </w>"];

function weights(rng: Random, name: string, dims: number[], scale: number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = rng.normal() * scale;
  return { name, type: DataType.FLOAT, dims, values };
}

const int64 = (name: string, values: number[]): Tensor => ({ name, type: DataType.INT64, dims: [values.length], values });
const f32 = (name: string, values: number[], dims = [values.length]): Tensor => ({ name, type: DataType.FLOAT, dims, values });

/** ONNX's FLOAT16 type code, which the writer's DataType table does not list. */
const FLOAT16 = 10 as DataTypeCode;

/**
 * The graph with float16 inputs and outputs around its float32 body, as fp16 exports (ONNX
 * Runtime's optimized Stable Diffusion models) present themselves: a Cast after every float input,
 * a Cast before every float output.
 */
export function halfIo(graph: Graph): Graph {
  const rename = new Map<string, string>();
  const castsIn = graph.inputs
    .filter((v) => v.type === DataType.FLOAT)
    .map((v) => {
      rename.set(v.name, `${v.name}__f32`);
      return { op: "Cast", inputs: [v.name], outputs: [`${v.name}__f32`], attributes: [{ name: "to", int: DataType.FLOAT }] };
    });
  const outputs = new Set(graph.outputs.filter((v) => v.type === DataType.FLOAT).map((v) => v.name));
  for (const name of outputs) rename.set(name, `${name}__f32`);
  const body = graph.nodes.map((n) => ({ ...n, inputs: n.inputs.map((x) => rename.get(x) ?? x), outputs: n.outputs.map((x) => (outputs.has(x) ? `${x}__f32` : x)) }));
  const castsOut = [...outputs].map((name) => ({ op: "Cast", inputs: [`${name}__f32`], outputs: [name], attributes: [{ name: "to", int: FLOAT16 }] }));
  const half = <T extends { type: DataTypeCode }>(v: T): T => (v.type === DataType.FLOAT ? { ...v, type: FLOAT16 } : v);
  return { ...graph, nodes: [...castsIn, ...body, ...castsOut], inputs: graph.inputs.map(half), outputs: graph.outputs.map(half) };
}

const encodeGraph = (half: boolean, graph: Graph): Buffer => encodeModel(half ? halfIo(graph) : graph);

export function textEncoderOnnx(rng: Random, hidden: number, half = false): Buffer {
  return encodeGraph(half, {
    name: "text_encoder",
    initializers: [weights(rng, "embedding", [VOCAB_SIZE, hidden], 1)],
    nodes: [
      { op: "Cast", inputs: ["input_ids"], outputs: ["ids64"], attributes: [{ name: "to", int: DataType.INT64 }] },
      { op: "Gather", inputs: ["embedding", "ids64"], outputs: ["embedded"] },
      { op: "Tanh", inputs: ["embedded"], outputs: ["last_hidden_state"] },
      { op: "ReduceMean", inputs: ["last_hidden_state"], outputs: ["pooler_output"], attributes: [{ name: "axes", ints: [1] }, { name: "keepdims", int: 0 }] },
    ],
    inputs: [{ name: "input_ids", type: DataType.INT32, shape: ["batch", "sequence"] }],
    outputs: [
      { name: "last_hidden_state", type: DataType.FLOAT, shape: ["batch", "sequence", hidden] },
      { name: "pooler_output", type: DataType.FLOAT, shape: ["batch", hidden] },
    ],
  });
}

export function unetOnnx(rng: Random, hidden: number, timestepType: "int64" | "float32", timestepCond?: number, half = false): Buffer {
  // With timestep_cond, its mean joins the output like the text term does.
  const condNodes = timestepCond
    ? [
        { op: "ReduceMean", inputs: ["timestep_cond"], outputs: ["cond_mean"], attributes: [{ name: "axes", ints: [1] }, { name: "keepdims", int: 1 }] },
        { op: "Reshape", inputs: ["cond_mean", "shape4"], outputs: ["cond4"] },
        { op: "Mul", inputs: ["cond4", "text_k"], outputs: ["cond_term"] },
        { op: "Add", inputs: ["pre_out", "cond_term"], outputs: ["out_sample"] },
      ]
    : [];
  return encodeGraph(half, {
    name: "unet",
    initializers: [weights(rng, "conv_w", [4, 4, 3, 3], 0.1), weights(rng, "conv_b", [4], 0.1), int64("shape4", [-1, 1, 1, 1]), f32("text_k", [0.5]), f32("time_k", [0.001])],
    nodes: [
      { op: "Conv", inputs: ["sample", "conv_w", "conv_b"], outputs: ["conv"], attributes: [{ name: "pads", ints: [1, 1, 1, 1] }] },
      { op: "ReduceMean", inputs: ["encoder_hidden_states"], outputs: ["text_mean"], attributes: [{ name: "axes", ints: [1, 2] }, { name: "keepdims", int: 1 }] },
      { op: "Reshape", inputs: ["text_mean", "shape4"], outputs: ["text4"] },
      { op: "Mul", inputs: ["text4", "text_k"], outputs: ["text_term"] },
      { op: "Cast", inputs: ["timestep"], outputs: ["time_f"], attributes: [{ name: "to", int: DataType.FLOAT }] },
      { op: "ReduceMean", inputs: ["time_f"], outputs: ["time_mean"], attributes: [{ name: "keepdims", int: 0 }] },
      { op: "Mul", inputs: ["time_mean", "time_k"], outputs: ["time_term"] },
      { op: "Add", inputs: ["conv", "text_term"], outputs: ["with_text"] },
      { op: "Add", inputs: ["with_text", "time_term"], outputs: [timestepCond ? "pre_out" : "out_sample"] },
      ...condNodes,
    ],
    inputs: [
      { name: "sample", type: DataType.FLOAT, shape: ["batch", 4, "height", "width"] },
      { name: "timestep", type: timestepType === "int64" ? DataType.INT64 : DataType.FLOAT, shape: ["steps"] },
      { name: "encoder_hidden_states", type: DataType.FLOAT, shape: ["batch", "sequence", hidden] },
      ...(timestepCond ? [{ name: "timestep_cond", type: DataType.FLOAT, shape: ["batch", timestepCond] }] : []),
    ],
    outputs: [{ name: "out_sample", type: DataType.FLOAT, shape: ["batch", 4, "height", "width"] }],
  });
}

export function vaeDecoderOnnx(rng: Random, half = false): Buffer {
  return encodeGraph(half, {
    name: "vae_decoder",
    initializers: [weights(rng, "conv_w", [3, 4, 1, 1], 0.5), weights(rng, "conv_b", [3], 0.1), f32("scales", [1, 1, 8, 8])],
    nodes: [
      { op: "Conv", inputs: ["latent_sample", "conv_w", "conv_b"], outputs: ["rgb"] },
      { op: "Resize", inputs: ["rgb", "", "scales"], outputs: ["big"], attributes: [{ name: "mode", string: "nearest" }] },
      { op: "Tanh", inputs: ["big"], outputs: ["sample"] },
    ],
    inputs: [{ name: "latent_sample", type: DataType.FLOAT, shape: ["batch", 4, "latent_height", "latent_width"] }],
    outputs: [{ name: "sample", type: DataType.FLOAT, shape: ["batch", 3, "height", "width"] }],
  });
}

/** An 8×8, stride-8 convolution: each 8×8 pixel patch becomes one latent pixel. */
export function vaeEncoderOnnx(rng: Random, half = false): Buffer {
  return encodeGraph(half, {
    name: "vae_encoder",
    initializers: [weights(rng, "conv_w", [4, 3, 8, 8], 0.07), weights(rng, "conv_b", [4], 0.1)],
    nodes: [{ op: "Conv", inputs: ["sample", "conv_w", "conv_b"], outputs: ["latent_sample"], attributes: [{ name: "strides", ints: [8, 8] }] }],
    inputs: [{ name: "sample", type: DataType.FLOAT, shape: ["batch", 3, "height", "width"] }],
    outputs: [{ name: "latent_sample", type: DataType.FLOAT, shape: ["batch", 4, "latent_height", "latent_width"] }],
  });
}

/** CLIP's layout: the 256 byte symbols, the same with `</w>`, the merges' results, the specials at 49406/49407. */
export function tinyVocab(): Record<string, number> {
  const table = bytesToUnicode();
  // CLIP lists printable bytes first, in byte order, then the remapped ones: sort by code point.
  const symbols = [...table].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  const tokens = [...symbols, ...symbols.map((s) => `${s}</w>`), ...MERGES.map((m) => m.replace(" ", ""))];
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  vocab[START_OF_TEXT] = VOCAB_SIZE - 2;
  vocab[END_OF_TEXT] = VOCAB_SIZE - 1;
  return vocab;
}

const LCM_SCHEDULER = {
  _class_name: "LCMScheduler",
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  beta_start: 0.00085,
  clip_sample: false,
  clip_sample_range: 1.0,
  num_train_timesteps: 1000,
  original_inference_steps: 50,
  prediction_type: "epsilon",
  set_alpha_to_one: true,
  steps_offset: 1,
  timestep_scaling: 10.0,
  timestep_spacing: "leading",
  trained_betas: null,
};

const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;

/** Writes the model into `dir` (created if needed) and returns the files written, relative to it. */
export async function writeTinyDiffusionModel(dir: string, options: TinyModelOptions = {}): Promise<string[]> {
  const rng = new Random(options.seed ?? 0);
  const hidden = options.hidden ?? 16;
  const withEncoder = options.vaeEncoder ?? true;
  const half = options.float16 ?? false;
  const files: Record<string, string | Buffer> = {
    "model_index.json": json({
      _class_name: "OnnxStableDiffusionPipeline",
      _diffusers_version: "0.24.0",
      scheduler: ["diffusers", "EulerDiscreteScheduler"],
      text_encoder: ["diffusers", "OnnxRuntimeModel"],
      tokenizer: ["transformers", "CLIPTokenizer"],
      unet: ["diffusers", "OnnxRuntimeModel"],
      vae_decoder: ["diffusers", "OnnxRuntimeModel"],
      ...(withEncoder ? { vae_encoder: ["diffusers", "OnnxRuntimeModel"] } : {}),
    }),
    // SD-Turbo's scheduler_config.json, or LCM Dreamshaper v7's.
    "scheduler/scheduler_config.json": json(options.lcmTimestepCond ? LCM_SCHEDULER : {
      _class_name: "EulerDiscreteScheduler",
      beta_end: 0.012,
      beta_schedule: "scaled_linear",
      beta_start: 0.00085,
      clip_sample: false,
      interpolation_type: "linear",
      num_train_timesteps: 1000,
      prediction_type: "epsilon",
      set_alpha_to_one: false,
      steps_offset: 1,
      timestep_spacing: "trailing",
      trained_betas: null,
      use_karras_sigmas: false,
    }),
    "tokenizer/vocab.json": json(tinyVocab()),
    "tokenizer/merges.txt": `#version: 0.2\n${MERGES.join("\n")}\n`,
    // SD 2.x/Turbo tokenizers pad with "!".
    "tokenizer/tokenizer_config.json": json({ bos_token: START_OF_TEXT, eos_token: END_OF_TEXT, pad_token: "!", unk_token: END_OF_TEXT, model_max_length: 77 }),
    "text_encoder/model.onnx": textEncoderOnnx(rng, hidden, half),
    "unet/model.onnx": unetOnnx(rng, hidden, options.timestepType ?? "int64", options.lcmTimestepCond, half),
    "vae_decoder/model.onnx": vaeDecoderOnnx(rng, half),
  };
  // Drawn after the other graphs, so their weights stay what they were before the encoder existed.
  if (withEncoder) files["vae_encoder/model.onnx"] = vaeEncoderOnnx(rng, half);
  for (const [rel, content] of Object.entries(files)) {
    const target = path.join(dir, ...rel.split("/"));
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, content);
  }
  return Object.keys(files);
}
