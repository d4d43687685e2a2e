/**
 * What a pulled model must contain to be usable. Darkroom's diffusion apps read the diffusers ONNX
 * layout (the one `optimum` exports), so that is the layout a repository or folder is checked against.
 * @module
 */

export type ModelLayout = "diffusers-onnx" | "any";

/** Files ONNX Runtime and the tokenizer/scheduler code open by path; a pull without them is refused. */
export const DIFFUSERS_ONNX_REQUIRED = [
  "model_index.json",
  "text_encoder/model.onnx",
  "unet/model.onnx",
  "vae_decoder/model.onnx",
  "tokenizer/vocab.json",
  "tokenizer/merges.txt",
  "scheduler/scheduler_config.json",
] as const;

export function requiredFiles(layout: ModelLayout): readonly string[] {
  return layout === "diffusers-onnx" ? DIFFUSERS_ONNX_REQUIRED : [];
}

export function missingFiles(layout: ModelLayout, paths: Iterable<string>): string[] {
  const have = new Set(paths);
  return requiredFiles(layout).filter((p) => !have.has(p));
}
