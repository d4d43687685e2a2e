/**
 * The tiny diffusion model (src/diffusion/tiny-model.ts) pulled as `sd-turbo`, for tests that run
 * darkroom/sd-turbo through a real server.
 * @module
 */
import path from "node:path";
import { writeTinyDiffusionModel } from "../../src/diffusion/tiny-model.js";
import { createModelManager } from "../../src/models/index.js";

/**
 * Writes the tiny model under `dir` and pulls it as `sd-turbo` into a data folder there, which it
 * returns. The server gives runners and the probe <data-dir>/models: nothing else points the app at
 * the model.
 */
export async function pullTinySdTurbo(dir: string): Promise<string> {
  await writeTinyDiffusionModel(path.join(dir, "tiny"), { seed: 1 });
  const dataDir = path.join(dir, "data");
  await createModelManager({ dataDir, env: {} }).pull(path.join(dir, "tiny"), { name: "sd-turbo" });
  return dataDir;
}
