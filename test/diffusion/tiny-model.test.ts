/**
 * The tiny generated model: ONNX Runtime loads it with SD-Turbo's input/output names and dtypes,
 * the whole text → latents → image pipeline runs on it with the real tokenizer, scheduler and
 * loop, and the model manager accepts its folder as a diffusers ONNX model.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import ort from "onnxruntime-node";
import { ClipTokenizer } from "../../src/diffusion/clip-tokenizer.js";
import { denoise } from "../../src/diffusion/denoise.js";
import { createScheduler, loadSchedulerConfig } from "../../src/diffusion/schedulers/index.js";
import { writeTinyDiffusionModel } from "../../src/diffusion/tiny-model.js";
import { createModelManager } from "../../src/models/index.js";

describe("tiny diffusion model", () => {
  let dir: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "darkroom-tiny-model-"));
    await writeTinyDiffusionModel(path.join(dir, "model"), { seed: 1 });
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const session = (name: string) => ort.InferenceSession.create(path.join(dir, "model", name, "model.onnx"));
  const io = (s: ort.InferenceSession) => ({
    inputs: s.inputMetadata.map((m) => [m.name, m.isTensor ? m.type : "?"]),
    outputs: s.outputNames,
  });

  it("has SD-Turbo's graph inputs, outputs and dtypes", async () => {
    assert.deepEqual(io(await session("text_encoder")), { inputs: [["input_ids", "int32"]], outputs: ["last_hidden_state", "pooler_output"] });
    assert.deepEqual(io(await session("unet")), {
      inputs: [
        ["sample", "float32"],
        ["timestep", "int64"],
        ["encoder_hidden_states", "float32"],
      ],
      outputs: ["out_sample"],
    });
    assert.deepEqual(io(await session("vae_decoder")), { inputs: [["latent_sample", "float32"]], outputs: ["sample"] });
  });

  it("runs prompt → text embedding → 1-step Euler → 64×64 image, the same for the same seed", async () => {
    const modelDir = path.join(dir, "model");
    const tokenizer = await ClipTokenizer.load(modelDir);
    const [textEncoder, unet, vae] = await Promise.all([session("text_encoder"), session("unet"), session("vae_decoder")]);
    const generate = async (seed: number): Promise<Float32Array> => {
      const { ids } = tokenizer.encode("the cat");
      const text = await textEncoder.run({ input_ids: new ort.Tensor("int32", Int32Array.from(ids), [1, 77]) });
      const scheduler = createScheduler(await loadSchedulerConfig(modelDir), 1);
      const latents = await denoise({
        scheduler,
        size: 4 * 8 * 8,
        seed,
        predict: async (input, t) => {
          const out = await unet.run({
            sample: new ort.Tensor("float32", input, [1, 4, 8, 8]),
            timestep: new ort.Tensor("int64", BigInt64Array.from([BigInt(Math.round(t))]), [1]),
            encoder_hidden_states: text["last_hidden_state"]!,
          });
          return out["out_sample"]!.data as Float32Array;
        },
      });
      const image = await vae.run({ latent_sample: new ort.Tensor("float32", latents, [1, 4, 8, 8]) });
      assert.deepEqual(image["sample"]!.dims, [1, 3, 64, 64]);
      return image["sample"]!.data as Float32Array;
    };
    const a = await generate(7);
    // The decoder ends in tanh; ONNX Runtime's float32 tanh can overshoot ±1 by an ulp.
    assert.equal(a.find((v) => !(Math.abs(v) <= 1 + 1e-6)), undefined);
    assert.deepEqual(await generate(7), a);
    assert.notDeepEqual(await generate(8), a);
  });

  it("is accepted by models pull as a diffusers ONNX folder", async () => {
    const manager = createModelManager({ dataDir: path.join(dir, "data"), env: {} });
    const manifest = await manager.pull(path.join(dir, "model"), { name: "tiny" });
    assert.equal(manifest.layout, "diffusers-onnx");
    await ort.InferenceSession.create(path.join(manager.modelDir("tiny"), "unet", "model.onnx"));
  });

  it("can declare the UNet timestep as float32, as the older diffusers export did", async () => {
    await writeTinyDiffusionModel(path.join(dir, "f32"), { timestepType: "float32" });
    const unet = await ort.InferenceSession.create(path.join(dir, "f32", "unet", "model.onnx"));
    assert.deepEqual(io(unet).inputs[1], ["timestep", "float32"]);
  });
});
