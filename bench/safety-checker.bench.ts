/**
 * Benchmark of the safety checker's model code alone (no gateway, queue or runner): cold start, then
 * warm latency per image on the three photo fixtures.
 *
 *   node --import tsx bench/safety-checker.bench.ts [--runs 10]
 *
 * Cold start is what a runner pays before `setup()` returns: importing tfjs and sharp, starting the
 * tfjs wasm backend, then loading MobileNetV2 from nsfwjs's base64 JS bundles. A warm run is one
 * image end to end as the handler does it: decode and resize with sharp, then classify. One warm-up
 * per fixture comes first, reported as "first".
 */
import { readFile } from "node:fs/promises";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await fn();
  return [result, performance.now() - started];
}

// Imported here rather than statically so that their load time is measured as part of the cold start.
const [[model, { initBackend }], importMs] = await timed(() =>
  Promise.all([import("../src/media/safety/model.js"), import("../src/media/tfjs/wasm-backend.js"), import("sharp")]),
);

const { values } = parseArgs({ options: { runs: { type: "string", default: "10" } } });
const runs = Number(values.runs);

const rows: [string, string][] = [["cold: import tfjs, sharp, app modules", `${importMs.toFixed(0)} ms`]];
const [backend, backendMs] = await timed(() => initBackend((m) => console.error(m)));
rows.push([`cold: tfjs ${backend} backend init`, `${backendMs.toFixed(0)} ms`]);
const [classifier, loadMs] = await timed(() => model.loadSafetyClassifier());
rows.push([`cold: load nsfwjs ${classifier.modelName} (setup)`, `${loadMs.toFixed(0)} ms`]);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

for (const name of ["astronaut.png", "chelsea.png", "coffee.png"]) {
  const bytes = await readFile(fileURLToPath(new URL(`../test/fixtures/media/${name}`, import.meta.url)));
  const once = async () =>
    classifier.classify(await model.decodeForModel(bytes, classifier.inputSize, 16_000_000));
  const [scores, firstMs] = await timed(once);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push((await timed(once))[1]);
  const top = Object.entries(scores).sort((a, b) => b[1] - a[1])[0]!;
  rows.push([
    `warm: ${name} (top ${top[0]} ${top[1].toFixed(3)})`,
    `median ${median(times).toFixed(0)} ms, min ${Math.min(...times).toFixed(0)}, max ${Math.max(...times).toFixed(0)} ` +
      `(n=${runs}; first ${firstMs.toFixed(0)} ms)`,
  ]);
}
classifier.dispose();

const cpu = os.cpus()[0]?.model ?? "unknown CPU";
console.log(`safety-checker bench: node ${process.version}, ${os.cpus().length}× ${cpu}, backend ${backend}`);
const width = Math.max(...rows.map(([k]) => k.length));
for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
