/**
 * The text-to-image app of one pulled model, whatever its name: `darkroom/<name>`. The gateway adds
 * this module once per pulled diffusers ONNX model (pulled-model-apps.ts), naming the model in the
 * module URL's query (`pulled-model-app.ts?model=lcm`): ES modules are instantiated once per URL, so
 * each model gets its own app definition from this one file, in the probe and in its runners alike.
 * @module
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { validateModelName, type ModelManifest } from "../../models/index.js";
import { createTextToImageApp } from "./create-app.js";
import { modelManagerAt, modelsDir } from "./pulled-model-apps.js";

const model = new URL(import.meta.url).searchParams.get("model");
if (!model) throw new Error("pulled-model-app.ts needs the model's name in its URL: pulled-model-app.ts?model=<name>");
validateModelName(model);

const models = modelManagerAt(modelsDir());

/** A JSON file of the model's, or null when it cannot be read (the app then reports the model missing or incomplete). */
function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as T;
  } catch {
    return null;
  }
}

const scheduler = readJson<{ _class_name?: unknown }>(path.join(models.modelDir(model), "scheduler", "scheduler_config.json"));
const lcm = scheduler?._class_name === "LCMScheduler";
// What to pull again should the model be removed: the source it came from, as `models pull` takes it.
const manifest = readJson<ModelManifest>(models.manifestPath(model));
const source = manifest?.source.replace(/^hf:/, "").replace(/@main$/, "") ?? "<source>";

export default createTextToImageApp({
  id: `darkroom/${model.toLowerCase()}`,
  model,
  source,
  display_name: model,
  description:
    `Text-to-image and image-to-image with the diffusers ONNX model pulled as '${model}' ` +
    `(${lcm ? "an LCM: 4 steps, guidance distilled in" : "turbo defaults: 1 step, no guidance"}), on ONNX Runtime.`,
  // diffusers' LCM pipeline defaults (4 steps, guidance 8.5); SD-Turbo's otherwise.
  defaultSteps: lcm ? 4 : 1,
  defaultGuidance: lcm ? 8.5 : 0,
});
