#!/usr/bin/env node
// Writes a tiny random SD-Turbo-shaped model in the diffusers ONNX layout (src/diffusion/tiny-model.ts).
// Usage: node scripts/make-tiny-diffusion-model.mjs <out-dir> [--seed N] [--hidden N] [--timestep float32|int64]
import { register } from "tsx/esm/api";
import { parseArgs } from "node:util";

register();
const { writeTinyDiffusionModel } = await import("../src/diffusion/tiny-model.ts");
const { values, positionals } = parseArgs({ allowPositionals: true, options: { seed: { type: "string" }, hidden: { type: "string" }, timestep: { type: "string" } } });
const [out] = positionals;
if (!out) {
  console.error("usage: node scripts/make-tiny-diffusion-model.mjs <out-dir> [--seed N] [--hidden N] [--timestep float32|int64]");
  process.exit(2);
}
const files = await writeTinyDiffusionModel(out, {
  seed: Number(values.seed ?? 0),
  hidden: Number(values.hidden ?? 16),
  timestepType: values.timestep === "float32" ? "float32" : "int64",
});
console.log(`wrote ${files.length} files to ${out}`);
