/**
 * Benchmark of the face-analysis model code alone (no gateway, queue or runner): cold start, then
 * warm latency of detect + describe on the astronaut fixture (512×512, one face).
 *
 *   node --import tsx bench/face-analysis.bench.ts [--runs 7]
 *
 * Cold start is what a runner pays before `setup()` returns: importing tfjs, sharp and the app's
 * model module, starting the tfjs wasm backend, then loading face-api and its four nets. The first
 * analysis is reported apart ("first"): tfjs compiles and allocates per input shape on first use.
 */
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await fn();
  return [result, performance.now() - started];
}

// Imported here rather than statically so that their load time counts towards the cold start.
const [[{ default: sharp }, { loadFaceModels, analyseFaces }, { initBackend }], importMs] = await timed(() =>
  Promise.all([import("sharp"), import("../src/apps/face-analysis/face-model.js"), import("../src/media/tfjs/wasm-backend.js")]),
);

const { values } = parseArgs({ options: { runs: { type: "string", default: "7" } } });
const runs = Number(values.runs);

const fixture = path.resolve(fileURLToPath(new URL("../test/fixtures/media/astronaut.png", import.meta.url)));

const rows: [string, string][] = [["cold: import tfjs, sharp, model module", `${importMs.toFixed(0)} ms`]];
const [backend, backendMs] = await timed(() => initBackend((m) => console.error(m)));
rows.push([`cold: tfjs ${backend} backend init`, `${backendMs.toFixed(0)} ms`]);
const [models, loadMs] = await timed(() => loadFaceModels((m) => console.error(m)));
rows.push(["cold: load face-api + 4 nets (setup)", `${loadMs.toFixed(0)} ms`]);
rows.push(["cold: total before first request", `${(importMs + backendMs + loadMs).toFixed(0)} ms`]);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

const { data, info } = await sharp(fixture).removeAlpha().raw().toBuffer({ resolveWithObject: true });
const image = { data: new Uint8Array(data), width: info.width, height: info.height };
const options = { minConfidence: 0.5, maxFaces: 20 };
const [firstFaces, firstMs] = await timed(() => analyseFaces(models, image, options));
if (firstFaces.length !== 1) throw new Error(`expected one face on the fixture, got ${firstFaces.length}`);

const times: number[] = [];
for (let i = 0; i < runs; i++) times.push((await timed(() => analyseFaces(models, image, options)))[1]);
rows.push([
  `warm: detect + describe ${info.width}×${info.height}, 1 face`,
  `median ${median(times).toFixed(0)} ms, min ${Math.min(...times).toFixed(0)}, max ${Math.max(...times).toFixed(0)} ` +
    `(n=${runs}; first ${firstMs.toFixed(0)} ms)`,
]);

const cpu = os.cpus()[0]?.model ?? "unknown CPU";
console.log(`face-analysis bench: node ${process.version}, ${os.cpus().length}× ${cpu}, backend ${backend}`);
const width = Math.max(...rows.map(([k]) => k.length));
for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
