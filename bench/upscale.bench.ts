/**
 * Benchmark of the upscale app's model code alone (no gateway, queue or runner): cold start, then
 * warm latency of ×4 upscales on the astronaut fixture.
 *
 *   node --import tsx bench/upscale.bench.ts [--runs 5] [--model slim|medium|thick]
 *
 * Cold start is what a runner pays before `setup()` returns: importing tfjs and sharp, starting the
 * tfjs wasm backend, then reading the slim ×2 and ×4 models from their npm packages. Warm runs come
 * after one warm-up per size, reported as "first" (the first inference at a new input shape grows
 * the wasm heap).
 */
import os from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { ModelSize } from "../src/media/upscale/model-loader.js";

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await fn();
  return [result, performance.now() - started];
}

// Imported here rather than statically so that their load time is measured as part of the cold start.
const [[{ default: sharp }, { loadUpscaleModel }, { upscaleRaw }, { initBackend }], importMs] = await timed(() =>
  Promise.all([
    import("sharp"),
    import("../src/media/upscale/model-loader.js"),
    import("../src/media/upscale/tiled-upscale.js"),
    import("../src/media/tfjs/wasm-backend.js"),
  ]),
);

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    model: { type: "string", default: "slim" },
  },
});
const runs = Number(values.runs);
const size = values.model as ModelSize;

const fixture = fileURLToPath(new URL("../test/fixtures/media/astronaut.png", import.meta.url));

const rows: [string, string][] = [["cold: import tfjs, sharp, app modules", `${importMs.toFixed(0)} ms`]];

const [backend, backendMs] = await timed(() => initBackend((m) => console.error(m)));
rows.push([`cold: tfjs ${backend} backend init`, `${backendMs.toFixed(0)} ms`]);
const [, slimMs] = await timed(() => Promise.all([loadUpscaleModel("slim", 2), loadUpscaleModel("slim", 4)]));
rows.push(["cold: load slim ×2 + ×4 (setup)", `${slimMs.toFixed(0)} ms`]);
const [model, loadMs] = await timed(() => loadUpscaleModel(size, 4));
rows.push([`load ${size} ×4 ${size === "slim" ? "again (files in page cache)" : "(lazy, first use)"}`, `${loadMs.toFixed(0)} ms`]);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

for (const side of [128, 256]) {
  const { data, info } = await sharp(fixture)
    .resize(side, side, { kernel: "cubic" })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const image = { data: new Uint8Array(data), width: info.width, height: info.height };
  const [, firstMs] = await timed(() => upscaleRaw(model, image));
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push((await timed(() => upscaleRaw(model, image)))[1]);
  const label = `warm: ${size} ×4 ${side}→${side * 4}`;
  rows.push([
    label,
    `median ${median(times).toFixed(0)} ms, min ${Math.min(...times).toFixed(0)}, max ${Math.max(...times).toFixed(0)} ` +
      `(n=${runs}; first ${firstMs.toFixed(0)} ms)`,
  ]);
}

const cpu = os.cpus()[0]?.model ?? "unknown CPU";
console.log(`upscale bench: node ${process.version}, ${os.cpus().length}× ${cpu}, backend ${backend}`);
const width = Math.max(...rows.map(([k]) => k.length));
for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
