/**
 * One app per pulled diffusion model: the module paths the gateway probes besides the built-ins, so
 * that `darkroom models pull org/lcm-onnx --name lcm` and a restart give `darkroom/lcm` without
 * anyone writing a module. Runs in the gateway: it reads manifests only, never a model.
 * @module
 */
import { fileURLToPath } from "node:url";
import path from "node:path";
import { createModelManager, type ModelManager } from "../../models/index.js";

/** The model the built-in app (`app.ts`) serves. */
const BUILTIN_MODEL = "sd-turbo";
const PULLED_MODEL_APP = fileURLToPath(new URL("./pulled-model-app.ts", import.meta.url));

/**
 * Where pulled models are: `DARKROOM_MODELS_DIR` (the server sets it for runners and the probe to
 * `<data-dir>/models`), else the CLI's default data folder, so `darkroom models pull` and a server
 * started in the same folder agree.
 */
export function modelsDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env["DARKROOM_MODELS_DIR"] ?? path.join(env["DARKROOM_DATA_DIR"] ?? ".darkroom", "models"));
}

/** The model manager of a models folder (`<data folder>/models`: the manager is addressed by its data folder). */
export function modelManagerAt(dir: string): ModelManager {
  const manager = createModelManager({ dataDir: path.dirname(dir), env: {} });
  if (manager.root !== dir) throw new Error(`DARKROOM_MODELS_DIR must end in /models (a data folder's models folder), got ${dir}`);
  return manager;
}

/** The module path of the app that serves the model pulled as `name`. */
export function pulledModelAppModule(name: string): string {
  return `${PULLED_MODEL_APP}?model=${encodeURIComponent(name)}`;
}

/**
 * Module paths for every model in `<modelsDir>` pulled in the diffusers ONNX layout, in name order,
 * except `sd-turbo`, which the built-in `darkroom/sd-turbo` serves.
 */
export async function pulledModelAppModules(modelsDir: string): Promise<string[]> {
  const models = await modelManagerAt(modelsDir).list();
  return models.filter((m) => m.layout === "diffusers-onnx" && m.name !== BUILTIN_MODEL).map((m) => pulledModelAppModule(m.name));
}
