/**
 * Benchmark of the OCR model code alone (no gateway, queue or runner): cold start, then warm latency
 * of prepare + detect + recognise on a page rendered here (1000×800, 12 lines of 24–36 px DejaVu text).
 *
 *   node --import tsx bench/ocr.bench.ts [--runs 7]
 *
 * Cold start is what a runner pays before `setup()` returns: importing sharp, onnxruntime-node and the
 * library, then creating the detection and recognition sessions. The first page is reported apart
 * ("first"): ONNX Runtime allocates per input shape on first use.
 */
import os from "node:os";
import { parseArgs } from "node:util";

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await fn();
  return [result, performance.now() - started];
}

// Imported here rather than statically so that their load time counts towards the cold start.
const [[{ default: sharp }, model], importMs] = await timed(() =>
  Promise.all([import("sharp"), import("../src/apps/ocr/ocr-model.js")]),
);
const { loadOcrEngine, prepareImage, recogniseText, joinLines } = model;

const { values } = parseArgs({ options: { runs: { type: "string", default: "7" } } });
const runs = Number(values.runs);

const rows: [string, string][] = [["cold: import sharp, onnxruntime, library", `${importMs.toFixed(0)} ms`]];
const [engine, loadMs] = await timed(() => loadOcrEngine());
rows.push(["cold: create det + rec sessions (setup)", `${loadMs.toFixed(0)} ms`]);
rows.push(["cold: total before first request", `${(importMs + loadMs).toFixed(0)} ms`]);

/** A heading, then invoice-like lines: words, digits, currency and punctuation, as a real page has. */
const LINES = [
  "Darkroom Media Invoice",
  "Invoice number INV-2026-0042",
  "Date 27 November 2026",
  "Customer Example Studio Ltd",
  "GPU hours 128 at $2.50 each",
  "Storage 512 GB for 30 days",
  "Upscale requests 1,204",
  "Subtotal $1,023.40",
  "Tax 20% $204.68",
  "Invoice total $1,228.08",
  "Payment due within 30 days",
  "Thank you for your business",
];
const texts = LINES.map((line, i) => {
  const size = i === 0 ? 36 : 24;
  return `<text x="48" y="${70 + i * 56}" font-family="DejaVu Sans" font-size="${size}" fill="black">${line}</text>`;
}).join("");
const page = await sharp(
  Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="1000" height="800"><rect width="100%" height="100%" fill="white"/>${texts}</svg>`,
  ),
)
  .png()
  .toBuffer();

const readPage = async () => recogniseText(engine, await prepareImage(page, 16_000_000));
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

const [firstLines, firstMs] = await timed(readPage);
const got = joinLines(firstLines).split("\n");
const exact = LINES.filter((line, i) => got[i] === line).length;
const times: number[] = [];
for (let i = 0; i < runs; i++) times.push((await timed(readPage))[1]);
rows.push([
  "warm: prepare + detect + recognise 1000×800, 12 lines",
  `median ${median(times).toFixed(0)} ms, min ${Math.min(...times).toFixed(0)}, max ${Math.max(...times).toFixed(0)} ` +
    `(n=${runs}; first ${firstMs.toFixed(0)} ms)`,
]);
rows.push(["accuracy: lines read exactly", `${exact}/${LINES.length}`]);

const cpu = os.cpus()[0]?.model ?? "unknown CPU";
console.log(`ocr bench: node ${process.version}, ${os.cpus().length}× ${cpu}`);
const width = Math.max(...rows.map(([k]) => k.length));
for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
if (exact < LINES.length) {
  for (const [i, line] of LINES.entries()) if (got[i] !== line) console.log(`  expected ${JSON.stringify(line)}, got ${JSON.stringify(got[i])}`);
}
