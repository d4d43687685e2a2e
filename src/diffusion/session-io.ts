/**
 * The inputs and outputs of an ONNX Runtime session as the pipeline uses them: reading a graph
 * input's type and shape, finding an input by its usual name, and running a session in float32
 * whatever precision the export declares.
 * @module
 */
import ort from "onnxruntime-node";
import { fromHalfBits, toHalfBits } from "./fp16.js";

/** A graph input's element type and shape; throws when the input is not a tensor. */
export function inputMeta(session: ort.InferenceSession, name: string): { type: string; shape: readonly (number | string)[] } {
  const meta = session.inputMetadata.find((m) => m.name === name);
  if (!meta?.isTensor) throw new Error(`input '${name}' is not a tensor`);
  return { type: meta.type, shape: meta.shape };
}

/** The input named `preferred` if the graph has it, else the one at `index`. */
export function pickName(names: readonly string[], preferred: string, index: number, what: string): string {
  if (names.includes(preferred)) return preferred;
  const name = names[index];
  if (!name) throw new Error(`${what}: expected an input or output '${preferred}' (has ${names.join(", ")})`);
  return name;
}

/**
 * `session.run` with float32 on this side whatever the graph declares: float32 feeds become
 * float16 where the input is float16 (fp16 exports), and float16 outputs come back as float32.
 */
export async function runFloat32(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const converted: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of Object.entries(feeds)) {
    const meta = session.inputMetadata.find((m) => m.name === name);
    const half = meta?.isTensor && meta.type === "float16" && tensor.type === "float32";
    converted[name] = half ? new ort.Tensor("float16", Uint16Array.from(tensor.data as Float32Array, toHalfBits), tensor.dims) : tensor;
  }
  const out: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of Object.entries(await session.run(converted))) {
    out[name] = tensor.type === "float16" ? new ort.Tensor("float32", Float32Array.from(tensor.data as Uint16Array, fromHalfBits), tensor.dims) : tensor;
  }
  return out;
}
