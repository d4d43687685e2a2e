/**
 * Scheduler tables and steps against values computed here, independently, from the published
 * formulas (diffusers' scheduling_euler_discrete.py, scheduling_euler_ancestral_discrete.py,
 * scheduling_lcm.py), plus a few anchors computed with numpy in float32 as diffusers does.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Random } from "../../src/diffusion/random.js";
import {
  createScheduler,
  EulerAncestralDiscreteScheduler,
  EulerDiscreteScheduler,
  lcmBoundaryScalings,
  LCMScheduler,
  lcmTimesteps,
  parseSchedulerConfig,
  spacedTimesteps,
} from "../../src/diffusion/schedulers/index.js";

/** Stable Diffusion's schedule: scaled_linear betas 0.00085 → 0.012 over 1000 steps. */
const SD = { beta_schedule: "scaled_linear", beta_start: 0.00085, beta_end: 0.012, num_train_timesteps: 1000 };
const SD_TURBO = parseSchedulerConfig({ _class_name: "EulerDiscreteScheduler", ...SD, timestep_spacing: "trailing", steps_offset: 1, prediction_type: "epsilon" });
const SD15_EULER = parseSchedulerConfig({ _class_name: "EulerDiscreteScheduler", ...SD, timestep_spacing: "leading", steps_offset: 1 });
const LCM = parseSchedulerConfig({ _class_name: "LCMScheduler", ...SD, original_inference_steps: 50, timestep_scaling: 10, set_alpha_to_one: true, steps_offset: 1 });

// The schedule written out directly: β_i = (√β₀ + i(√β₁ − √β₀)/999)², ᾱ_t = Π_{i≤t}(1 − β_i), σ_t = √((1 − ᾱ_t)/ᾱ_t).
function referenceSigmas(): number[] {
  const out: number[] = [];
  let prod = 1;
  for (let i = 0; i < 1000; i++) {
    const sqrtBeta = Math.sqrt(0.00085) + (i * (Math.sqrt(0.012) - Math.sqrt(0.00085))) / 999;
    prod *= 1 - sqrtBeta * sqrtBeta;
    out.push(Math.sqrt((1 - prod) / prod));
  }
  return out;
}
const SIGMA = referenceSigmas();
const alphaBar = (t: number): number => 1 / (1 + SIGMA[t]! ** 2);

const close = (actual: number, expected: number, rel = 1e-9, what = ""): void => {
  assert.ok(Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)), `${what} ${actual} ≠ ${expected}`);
};

describe("noise schedule", () => {
  it("matches the float32 values diffusers computes for Stable Diffusion", () => {
    const euler = new EulerDiscreteScheduler(parseSchedulerConfig({ ...SD, timestep_spacing: "trailing" }), 1000);
    // numpy float32: σ(999) = 14.6146555, σ(0) = 0.029167533, σ(751) = 4.1166997, σ(501) = 1.6236926.
    const at = (t: number): number => euler.sigmas[999 - t]!;
    close(at(999), 14.6146555, 1e-6, "σ(999)");
    close(at(0), 0.029167533, 1e-6, "σ(0)");
    close(at(751), 4.1166997, 1e-6, "σ(751)");
    close(at(501), 1.6236926, 1e-6, "σ(501)");
    for (let t = 0; t < 1000; t += 37) close(at(t), SIGMA[t]!, 1e-9, `σ(${t})`);
  });
});

describe("timestep spacing", () => {
  it("sd-turbo: trailing, 1 step → 999; 4 steps → 999, 749, 499, 249", () => {
    // trailing: round(arange(1000, 0, −1000/n)) − 1.
    assert.deepEqual(spacedTimesteps(SD_TURBO, 1), [999]);
    assert.deepEqual(spacedTimesteps(SD_TURBO, 4), [999, 749, 499, 249]);
    // 1000/3 = 333.33…: 1000, 666.67, 333.33 → 1000, 667, 333 → 999, 666, 332.
    assert.deepEqual(spacedTimesteps(SD_TURBO, 3), [999, 666, 332]);
  });

  it("SD 1.5 Euler: leading, 4 steps → 751, 501, 251, 1; linspace → 999, 666, 333, 0", () => {
    // leading: (0..3)·(1000 ÷ 4) reversed = 750, 500, 250, 0, plus steps_offset 1.
    assert.deepEqual(spacedTimesteps(SD15_EULER, 4), [751, 501, 251, 1]);
    // linspace(0, 999, 4) = 0, 333, 666, 999, reversed.
    assert.deepEqual(spacedTimesteps({ ...SD15_EULER, timestep_spacing: "linspace" }, 4), [999, 666, 333, 0]);
    // 3 steps: 0, 499.5, 999 — a fractional timestep, whose σ is interpolated.
    assert.deepEqual(spacedTimesteps({ ...SD15_EULER, timestep_spacing: "linspace" }, 3), [999, 499.5, 0]);
  });

  it("LCM: 4 steps → 999, 759, 499, 259 from the 50-step distillation schedule", () => {
    // k = 1000 ÷ 50 = 20; schedule 20·(1..50) − 1 = 19 … 999, reversed; indices floor(linspace(0, 50, n, endpoint=False)).
    // n = 4: indices 0, 12, 25, 37 → 999 − 20·i.
    assert.deepEqual(lcmTimesteps(LCM, 4), [999, 759, 499, 259]);
    assert.deepEqual(lcmTimesteps(LCM, 1), [999]);
    assert.deepEqual(lcmTimesteps(LCM, 2), [999, 499]);
    // n = 8: indices 0, 6, 12, 18, 25, 31, 37, 43.
    assert.deepEqual(lcmTimesteps(LCM, 8), [999, 879, 759, 639, 499, 379, 259, 139]);
    assert.throws(() => lcmTimesteps(LCM, 51), RangeError);
  });
});

describe("Euler", () => {
  it("uses σ at each timestep, a final 0, and the initial noise diffusers uses for each spacing", () => {
    const turbo = new EulerDiscreteScheduler(SD_TURBO, 4);
    assert.deepEqual(turbo.sigmas.length, 5);
    [999, 749, 499, 249].forEach((t, i) => close(turbo.sigmas[i]!, SIGMA[t]!, 1e-9, `σ(${t})`));
    assert.equal(turbo.sigmas[4], 0);
    close(turbo.initNoiseSigma, SIGMA[999]!, 1e-9, "trailing init σ");
    const sd15 = new EulerDiscreteScheduler(SD15_EULER, 4);
    close(sd15.initNoiseSigma, Math.sqrt(SIGMA[751]! ** 2 + 1), 1e-9, "leading init σ");
    const linspace3 = new EulerDiscreteScheduler({ ...SD15_EULER, timestep_spacing: "linspace" }, 3);
    close(linspace3.sigmas[1]!, (SIGMA[499]! + SIGMA[500]!) / 2, 1e-9, "σ(499.5)");
  });

  it("scales the model input by 1/√(σ² + 1) and steps x + (σ_next − σ)·ε", () => {
    const s = new EulerDiscreteScheduler(SD_TURBO, 4);
    const x = Float32Array.from([1, -2, 0.5]);
    const eps = Float32Array.from([0.1, 0.2, -0.3]);
    const scaled = s.scaleModelInput(x, 1);
    x.forEach((v, j) => close(scaled[j]!, Math.fround(v / Math.sqrt(SIGMA[749]! ** 2 + 1)), 1e-6));
    const next = s.step(eps, 1, x, new Random(0));
    x.forEach((v, j) => close(next[j]!, Math.fround(v + (SIGMA[499]! - SIGMA[749]!) * eps[j]!), 1e-6));
  });

  it("lands on the clean sample in one step when ε is predicted exactly (sd-turbo, 1 step)", () => {
    const s = new EulerDiscreteScheduler(SD_TURBO, 1);
    const clean = Float32Array.from([0.3, -0.7, 0.05, 1.2]);
    const noise = new Random(5).normals(4);
    const xT = clean.map((c, j) => c + s.initNoiseSigma * noise[j]!);
    const out = s.step(noise, 0, xT, new Random(0));
    clean.forEach((c, j) => close(out[j]!, c, 1e-5, `x0[${j}]`));
  });

  it("v-prediction: x̂₀ = v·(−σ/√(σ²+1)) + x/(σ²+1)", () => {
    const s = new EulerDiscreteScheduler({ ...SD_TURBO, prediction_type: "v_prediction" }, 2);
    const x = Float32Array.from([0.4, -1.1]);
    const v = Float32Array.from([0.9, 0.2]);
    const sigma = SIGMA[999]!;
    const next = s.step(v, 0, x, new Random(0));
    x.forEach((xi, j) => {
      const x0 = v[j]! * (-sigma / Math.sqrt(sigma ** 2 + 1)) + xi / (sigma ** 2 + 1);
      close(next[j]!, Math.fround(xi + ((xi - x0) / sigma) * (SIGMA[499]! - sigma)), 1e-5);
    });
  });
});

describe("Euler ancestral", () => {
  it("splits σ_next into σ_up and σ_down and adds seeded noise", () => {
    const s = new EulerAncestralDiscreteScheduler(SD_TURBO, 4);
    const from = SIGMA[749]!;
    const to = SIGMA[499]!;
    const up = Math.sqrt((to ** 2 * (from ** 2 - to ** 2)) / from ** 2);
    const down = Math.sqrt(to ** 2 - up ** 2);
    const { sigmaUp, sigmaDown } = s.ancestral(1);
    close(sigmaUp, up, 1e-12);
    close(sigmaDown, down, 1e-12);
    close(sigmaUp ** 2 + sigmaDown ** 2, to ** 2, 1e-12);

    const x = Float32Array.from([1, 2]);
    const eps = Float32Array.from([0.5, -0.5]);
    const z = new Random(9);
    const expected = [0, 1].map((j) => Math.fround(x[j]! + eps[j]! * (down - from) + z.normal() * up));
    const out = s.step(eps, 1, x, new Random(9));
    expected.forEach((e, j) => close(out[j]!, e, 1e-6));
    assert.deepEqual(s.step(eps, 1, x, new Random(9)), out);
    // Last step: σ_next = 0, so σ_up = 0 and no noise is drawn.
    assert.equal(s.ancestral(3).sigmaUp, 0);
  });
});

describe("LCM", () => {
  it("c_skip and c_out follow the boundary condition with timestep_scaling 10", () => {
    const { cSkip, cOut } = lcmBoundaryScalings(LCM, 999);
    close(cSkip, 0.25 / (9990 ** 2 + 0.25), 1e-12);
    close(cOut, 9990 / Math.sqrt(9990 ** 2 + 0.25), 1e-12);
    const zero = lcmBoundaryScalings(LCM, 0);
    assert.deepEqual(zero, { cSkip: 1, cOut: 0 });
  });

  it("denoises to c_out·x̂₀ + c_skip·x and re-noises to the next timestep, except at the end", () => {
    const s = new LCMScheduler(LCM, 4);
    assert.equal(s.initNoiseSigma, 1);
    const x = Float32Array.from([0.2, -0.4]);
    assert.equal(s.scaleModelInput(x, 0), x);
    const eps = Float32Array.from([1.5, -0.25]);
    const denoise = (t: number, j: number): number => {
      const { cSkip, cOut } = lcmBoundaryScalings(LCM, t);
      const x0 = (x[j]! - Math.sqrt(1 - alphaBar(t)) * eps[j]!) / Math.sqrt(alphaBar(t));
      return cOut * x0 + cSkip * x[j]!;
    };
    const z = new Random(3);
    const expected = [0, 1].map((j) => Math.fround(Math.sqrt(alphaBar(759)) * denoise(999, j) + Math.sqrt(1 - alphaBar(759)) * z.normal()));
    const out = s.step(eps, 0, x, new Random(3));
    expected.forEach((e, j) => close(out[j]!, e, 1e-5, `step 0 [${j}]`));
    const last = s.step(eps, 3, x, new Random(3));
    [0, 1].forEach((j) => close(last[j]!, Math.fround(denoise(259, j)), 1e-5, `last [${j}]`));
  });
});

describe("createScheduler", () => {
  it("builds the scheduler scheduler_config.json names", () => {
    assert.equal(createScheduler({ _class_name: "EulerDiscreteScheduler", ...SD, timestep_spacing: "trailing" }, 1).name, "EulerDiscreteScheduler");
    assert.equal(createScheduler({ _class_name: "EulerAncestralDiscreteScheduler", ...SD }, 4).name, "EulerAncestralDiscreteScheduler");
    assert.deepEqual(createScheduler({ _class_name: "LCMScheduler", ...SD }, 4).timesteps, [999, 759, 499, 259]);
    assert.equal(createScheduler({ _class_name: "EulerDiscreteScheduler", ...SD }, 4, "LCMScheduler").name, "LCMScheduler");
    assert.throws(() => createScheduler({ _class_name: "DDIMScheduler", ...SD }, 4), /not supported/);
    assert.throws(() => createScheduler({ ...SD, timestep_spacing: "karras" }, 4), /timestep_spacing/);
  });
});
