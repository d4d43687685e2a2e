/**
 * The ONNX Runtime pipeline on the tiny model, pulled like a real one: seeds, sizes, steps,
 * cancellation, guidance, image-to-image and previews.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import ort from "onnxruntime-node";
import { isPlatformError } from "../../src/core/errors.js";
import { fromHalfBits, toHalfBits } from "../../src/diffusion/fp16.js";
import { latentPreview } from "../../src/diffusion/images.js";
import { DiffusionPipeline, TAESD_DECODER, guidanceEmbedding, type RgbImage } from "../../src/diffusion/pipeline.js";
import { writeTinyDiffusionModel } from "../../src/diffusion/tiny-model.js";
import { createModelManager } from "../../src/models/index.js";

const meanAbsDiff = (a: Uint8Array, b: Uint8Array): number => {
  assert.equal(a.length, b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] ?? 0) - (b[i] ?? 0));
  return sum / a.length;
};

const maxAbsDiff = (a: Float32Array, b: Float32Array): number => {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return max;
};

describe("DiffusionPipeline", () => {
  let dir: string;
  let pipe: DiffusionPipeline;
  const base = { prompt: "the cat", width: 64, height: 64, steps: 1, seed: 7 };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "darkroom-pipeline-"));
    await writeTinyDiffusionModel(path.join(dir, "src"), { seed: 1 });
    const manager = createModelManager({ dataDir: path.join(dir, "data"), env: {} });
    await manager.pull(path.join(dir, "src"), { name: "sd-turbo" });
    pipe = await DiffusionPipeline.load(manager.modelDir("sd-turbo"), { intraOpNumThreads: 1 });
  });
  after(async () => {
    await pipe.release();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads the model's scheduler and finds its VAE encoder", () => {
    assert.equal(pipe.schedulerName, "EulerDiscreteScheduler");
    assert.equal(pipe.hasVaeEncoder, true);
    assert.equal(pipe.hasTaesd, false);
  });

  it("makes the same pixels for the same seed and different ones for another seed", async () => {
    const a = await pipe.generate(base);
    assert.deepEqual([a.width, a.height, a.data.length], [64, 64, 64 * 64 * 3]);
    assert.deepEqual((await pipe.generate(base)).data, a.data);
    assert.ok(meanAbsDiff((await pipe.generate({ ...base, seed: 8 })).data, a.data) > 1);
    // The tiny VAE saturates most pixels, so the prompt's small effect shows in the latents.
    assert.notDeepEqual(await pipe.latents({ ...base, prompt: "a cat" }), await pipe.latents(base), "the prompt reaches the UNet");
  });

  it("honours the size, wide or tall", async () => {
    const tall = await pipe.generate({ ...base, width: 64, height: 96 });
    assert.deepEqual([tall.width, tall.height, tall.data.length], [64, 96, 64 * 96 * 3]);
    const wide = await pipe.generate({ ...base, width: 96, height: 64 });
    assert.deepEqual([wide.width, wide.height], [96, 64]);
    await assert.rejects(pipe.generate({ ...base, width: 60 }), RangeError);
  });

  it("calls back once per step", async () => {
    const steps: string[] = [];
    await pipe.generate({ ...base, steps: 4, onStep: (s, n) => steps.push(`${s}/${n}`) });
    assert.deepEqual(steps, ["1/4", "2/4", "3/4", "4/4"]);
  });

  it("stops between steps when the signal is aborted", async () => {
    const controller = new AbortController();
    const steps: number[] = [];
    const started = Date.now();
    await assert.rejects(
      pipe.generate({
        ...base,
        steps: 4,
        signal: controller.signal,
        onStep: (s) => {
          steps.push(s);
          if (s === 1) controller.abort();
        },
      }),
      (err: unknown) => isPlatformError(err) && err.code === "ERR_CLIENT_CANCELLED",
    );
    assert.deepEqual(steps, [1]);
    assert.ok(Date.now() - started < 2000);
  });

  it("runs classifier-free guidance against the negative prompt", async () => {
    const plain = await pipe.latents({ ...base, steps: 2 });
    const guided = await pipe.latents({ ...base, steps: 2, guidanceScale: 2, negativePrompt: "the" });
    assert.ok(maxAbsDiff(guided, plain) > 1e-3, "guidance changes the result");
    const otherNegative = await pipe.latents({ ...base, steps: 2, guidanceScale: 2, negativePrompt: "cat cat cat" });
    assert.ok(maxAbsDiff(otherNegative, guided) > 1e-3, "the negative prompt matters");
    assert.deepEqual(await pipe.latents({ ...base, steps: 2, guidanceScale: 2, negativePrompt: "the" }), guided);
    // At a scale of 1 guidance is off: one UNet batch, the negative prompt ignored.
    assert.deepEqual(await pipe.latents({ ...base, steps: 2, guidanceScale: 1, negativePrompt: "cat cat cat" }), plain);
  });

  it("image-to-image: strength 0 is the VAE round trip of the image, strength 1 starts from noise", async () => {
    const image = await pipe.generate({ ...base, seed: 3 });
    const roundTrip = await pipe.decodeLatents(await pipe.encodeImage(image), 64, 64);
    const zero = await pipe.generate({ ...base, steps: 4, image, strength: 0 });
    assert.deepEqual(zero.data, roundTrip.data);

    const steps: number[] = [];
    const half = await pipe.generate({ ...base, steps: 4, image, strength: 0.5, onStep: (s) => steps.push(s) });
    assert.deepEqual(steps, [1, 2], "strength 0.5 of 4 steps runs the last 2");
    const full = await pipe.generate({ ...base, steps: 4, image, strength: 1 });
    const init = await pipe.encodeImage(image);
    const halfLatents = await pipe.latents({ ...base, steps: 4, image, strength: 0.5 });
    const fullLatents = await pipe.latents({ ...base, steps: 4, image, strength: 1 });
    assert.ok(maxAbsDiff(fullLatents, init) > maxAbsDiff(halfLatents, init), "more strength moves further from the image");
    assert.ok(meanAbsDiff(full.data, roundTrip.data) > 1, "strength 1 makes another image");
    assert.deepEqual((await pipe.generate({ ...base, steps: 4, image, strength: 0.5 })).data, half.data);
  });

  it("previews from the latents every few steps, at 1/8 of the size", async () => {
    const previews: { image: RgbImage; step: number }[] = [];
    await pipe.generate({ ...base, steps: 4, previewEvery: 2, onPreview: (image, step) => void previews.push({ image, step }) });
    assert.deepEqual(
      previews.map((p) => [p.step, p.image.width, p.image.height]),
      [[2, 8, 8]],
    );
    const flat = latentPreview(new Float32Array(4 * 4), 2, 2);
    assert.deepEqual([...flat.data.slice(0, 3)], [128, 128, 128], "zero latents are mid grey");
  });

  it("LCM with timestep_cond: guidance goes in as an embedding, with no unconditional batch", async () => {
    const modelDir = path.join(dir, "lcm");
    await writeTinyDiffusionModel(modelDir, { seed: 1, lcmTimestepCond: 256 });
    const lcm = await DiffusionPipeline.load(modelDir, { intraOpNumThreads: 1 });
    try {
      assert.equal(lcm.schedulerName, "LCMScheduler");
      const steps: number[] = [];
      const a = await lcm.latents({ ...base, steps: 4, guidanceScale: 8.5, negativePrompt: "the", onStep: (s) => steps.push(s) });
      assert.deepEqual(steps, [1, 2, 3, 4]);
      assert.deepEqual(await lcm.latents({ ...base, steps: 4, guidanceScale: 8.5, negativePrompt: "cat cat cat" }), a, "no negative prompt in LCM guidance");
      assert.ok(maxAbsDiff(await lcm.latents({ ...base, steps: 4, guidanceScale: 2 }), a) > 1e-4, "the scale reaches the UNet");
    } finally {
      await lcm.release();
    }
    const e = guidanceEmbedding(0, 8);
    assert.deepEqual([...e], [0, 0, 0, 0, 1, 1, 1, 1]);
    assert.ok(Math.abs((guidanceEmbedding(7.5, 256)[0] ?? 0) - Math.sin(7500)) < 1e-6);
  });

  it("runs an export with float16 inputs and outputs, close to the float32 one", async () => {
    const modelDir = path.join(dir, "fp16");
    await writeTinyDiffusionModel(modelDir, { seed: 1, float16: true, timestepType: "float32" });
    const unet = await ort.InferenceSession.create(path.join(modelDir, "unet", "model.onnx"));
    assert.deepEqual(
      unet.inputMetadata.map((m) => (m.isTensor ? m.type : "?")),
      ["float16", "float16", "float16"],
    );
    await unet.release();
    const half = await DiffusionPipeline.load(modelDir, { intraOpNumThreads: 1 });
    try {
      const image = await half.generate({ ...base, steps: 2, guidanceScale: 2, negativePrompt: "the" });
      const reference = await pipe.generate({ ...base, steps: 2, guidanceScale: 2, negativePrompt: "the" });
      assert.deepEqual([image.width, image.height], [64, 64]);
      // The same weights behind float16 casts: pixels agree but for rounding near tanh's middle.
      assert.ok(meanAbsDiff(image.data, reference.data) < 8, `mean difference ${meanAbsDiff(image.data, reference.data)}`);
      const roundTrip = await half.generate({ ...base, steps: 2, image, strength: 0.5 });
      assert.deepEqual([roundTrip.width, roundTrip.height], [64, 64]);
    } finally {
      await half.release();
    }
  });

  it("converts float16 like numpy: rounding to nearest even, subnormals, overflow", () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.1, 0x2e66],
      [65504, 0x7bff],
      [65520, 0x7c00],
      [1e-7, 0x0002],
      [2 ** -24, 0x0001],
      [1 + 2 ** -11, 0x3c00],
      [1 + 3 * 2 ** -11, 0x3c02],
      [Infinity, 0x7c00],
    ];
    for (const [v, bits] of cases) assert.equal(toHalfBits(v), bits, `${v}`);
    assert.equal(fromHalfBits(0x3c00), 1);
    assert.equal(fromHalfBits(0xc000), -2);
    assert.equal(fromHalfBits(0x0001), 2 ** -24);
    assert.equal(fromHalfBits(0x7bff), 65504);
    assert.ok(Number.isNaN(fromHalfBits(0x7e00)));
  });

  it("previews through a TAESD decoder when the model folder has one", async () => {
    const modelDir = path.join(dir, "with-taesd");
    await writeTinyDiffusionModel(modelDir, { seed: 1, vaeEncoder: false });
    mkdirSync(path.join(modelDir, path.dirname(TAESD_DECODER)), { recursive: true });
    // The tiny VAE decoder has TAESD's shape: latents in, 8× RGB out.
    copyFileSync(path.join(modelDir, "vae_decoder", "model.onnx"), path.join(modelDir, TAESD_DECODER));
    const taesd = await DiffusionPipeline.load(modelDir, { intraOpNumThreads: 1 });
    try {
      assert.equal(taesd.hasTaesd, true);
      assert.equal(taesd.hasVaeEncoder, false);
      const previews: RgbImage[] = [];
      await taesd.generate({ ...base, steps: 2, previewEvery: 1, onPreview: (image) => void previews.push(image) });
      assert.deepEqual(
        previews.map((p) => [p.width, p.height]),
        [[64, 64]],
      );
    } finally {
      await taesd.release();
    }
  });
});
