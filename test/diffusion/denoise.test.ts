/**
 * The denoising loop with a stand-in UNet that predicts the noise exactly: Euler must land on the
 * clean latents, seeds must reproduce, and guidance must combine the two halves of a batch.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { denoise } from "../../src/diffusion/denoise.js";
import { Random } from "../../src/diffusion/random.js";
import { createScheduler, EulerDiscreteScheduler, parseSchedulerConfig } from "../../src/diffusion/schedulers/index.js";

const SD = { beta_schedule: "scaled_linear", beta_start: 0.00085, beta_end: 0.012 };
const clean = Float32Array.from([0.5, -0.25, 1, 0]);

/** ε = (x − x₀)/σ from the unscaled sample x = input·√(σ² + 1): what a perfect ε-prediction UNet returns. */
function perfectUnet(s: EulerDiscreteScheduler) {
  return async (input: Float32Array, _t: number, i: number): Promise<Float32Array> => {
    const sigma = s.sigmas[i]!;
    return input.map((v, j) => (v * Math.sqrt(sigma * sigma + 1) - clean[j]!) / sigma);
  };
}

describe("denoise", () => {
  it("reaches the clean latents with Euler and an exact ε-prediction, in 1 and 4 steps", async () => {
    for (const steps of [1, 4]) {
      const s = new EulerDiscreteScheduler(parseSchedulerConfig({ ...SD, timestep_spacing: "trailing" }), steps);
      const seen: number[] = [];
      const out = await denoise({ scheduler: s, size: 4, seed: 1, predict: perfectUnet(s), onStep: (i) => seen.push(i) });
      out.forEach((v, j) => assert.ok(Math.abs(v - clean[j]!) < 1e-4, `${steps} steps [${j}]: ${v}`));
      assert.deepEqual(seen, Array.from({ length: steps }, (_, i) => i + 1));
    }
  });

  it("reproduces a stochastic sampler's result for the same seed", async () => {
    const run = (seed: number) =>
      denoise({
        scheduler: createScheduler({ _class_name: "EulerAncestralDiscreteScheduler", ...SD }, 4),
        size: 8,
        seed,
        predict: async (x) => x.map((v) => v * 0.1),
      });
    assert.deepEqual(await run(11), await run(11));
    assert.notDeepEqual(await run(11), await run(12));
  });

  it("applies classifier-free guidance to a batch of unconditional then conditional outputs", async () => {
    const s = createScheduler({ _class_name: "LCMScheduler", ...SD }, 1);
    const uncond = Float32Array.from([0, 0, 0, 0]);
    const cond = Float32Array.from([1, 1, 1, 1]);
    const g = 7.5;
    const latents = Float32Array.from([0.1, 0.2, 0.3, 0.4]);
    const out = await denoise({
      scheduler: s,
      size: 4,
      seed: 0,
      latents,
      guidanceScale: g,
      predict: async () => Float32Array.from([...uncond, ...cond]),
    });
    // uncond + g·(cond − uncond) = g; one LCM step is its last, so it draws no noise.
    const reference = s.step(Float32Array.from([g, g, g, g]), 0, latents, new Random(0));
    assert.deepEqual(out, reference);
    await assert.rejects(denoise({ scheduler: s, size: 4, seed: 0, guidanceScale: g, predict: async () => cond }), RangeError);
  });
});
