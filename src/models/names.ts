/**
 * Model names and in-model paths. Both become file-system paths under the data folder, so both
 * are checked here before anything touches the disk.
 * @module
 */
import { ModelError } from "./errors.js";

const NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/i;

/** A model name is one path segment: letters, digits, `.`, `_`, `-`, not starting with a dot or dash. */
export function validateModelName(name: string): string {
  if (!NAME.test(name) || name.includes("..")) {
    throw new ModelError("ERR_MODEL_NAME_INVALID", `invalid model name '${name}': use letters, digits, '.', '_' and '-' (at most 128, starting with a letter or digit)`);
  }
  return name;
}

/** The default name of a source: the repository's name, or the file/folder name without extension. */
export function defaultModelName(base: string): string {
  const cleaned = base
    .replace(/\.[a-z0-9]+$/i, "")
    .replace(/[^a-z0-9._-]+/gi, "-")
    .replace(/^[^a-z0-9]+/i, "")
    .slice(0, 128);
  return validateModelName(cleaned || "model");
}

/**
 * A file path inside a model, as a source lists it (`unet/model.onnx`). Rejects absolute paths,
 * `..`, empty segments and backslashes: a hostile listing must not write outside the model folder.
 */
export function validateModelPath(p: string): string {
  const segments = p.split("/");
  const bad = p.length === 0 || p.length > 1024 || p.includes("\\") || p.includes("\0") || segments.some((s) => s === "" || s === "." || s === "..");
  if (bad) throw new ModelError("ERR_MODEL_SOURCE_INVALID", `refusing file path '${p}' from the source`);
  return p;
}
