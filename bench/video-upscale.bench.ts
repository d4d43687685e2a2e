/**
 * Cold start and warm latency of `darkroom/video-upscale` on small clips cut from the fixture, in
 * this process and through the platform.
 *
 *   node --import tsx bench/video-upscale.bench.ts [--runs 3]
 *
 * Direct: the app module is imported here (timed: tfjs, sharp and the app), `setup()` runs once
 * (timed: wasm backend and the slim ×2/×4 models), then the handler is called back to back with a
 * real file context (local storage in a temp folder) for each clip and scale. Platform: `darkroom
 * serve --only darkroom/video-upscale` in a child process; the first sync run pays the cold start
 * (runner spawn, import, setup), then the same runs are timed warm. Results go to
 * bench/results/video-upscale.json.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { HandlerContext } from "../src/runtime/sdk.js";
import { BENCH_AUTH, startBenchServer } from "./lib/bench-server.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const CLIP = path.resolve(ROOT, "test/fixtures/media/clip-320x240-2s.mp4");
const AUTH = BENCH_AUTH;

const { values } = parseArgs({ options: { runs: { type: "string", default: "3" } } });
const RUNS = Number(values.runs);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const round = (ms: number): number => Math.round(ms);

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await fn();
  return [result, performance.now() - started];
}

const work = mkdtempSync(path.join(os.tmpdir(), "darkroom-vu-bench-"));

/** Clips cut from the fixture: size and length, encoded losslessly so decoding is cheap and fixed. */
const CLIPS = [
  { name: "80x60-0.5s", size: "80:60", seconds: 0.5, frames: 6 },
  { name: "160x120-1s", size: "160:120", seconds: 1, frames: 12 },
];
const cases: { label: string; frames: number; input: Record<string, unknown> }[] = [];
for (const clip of CLIPS) {
  const file = path.join(work, `${clip.name}.mp4`);
  execFileSync("ffmpeg", ["-v", "error", "-y", "-i", CLIP, "-t", String(clip.seconds), "-vf", `scale=${clip.size}:flags=area`, "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p", file]);
  const video_url = `data:video/mp4;base64,${readFileSync(file).toString("base64")}`;
  for (const scale of [2, 4]) cases.push({ label: `${clip.name} x${scale} slim`, frames: clip.frames, input: { video_url, scale } });
}

async function direct(): Promise<{ importMs: number; setupMs: number; warm: Record<string, number[]> }> {
  const [[{ importApp }, { directContext }, { createLocalStorage }], modulesMs] = await timed(() =>
    Promise.all([
      import("../src/runtime/app-loader.js"),
      import("./lib/direct-context.js"),
      import("../src/storage/local-storage.js"),
    ]),
  );
  const [app, appMs] = await timed(() => importApp(path.join(ROOT, "src/apps/video-upscale/app.ts")));
  const [state, setupMs] = await timed(async () => (app.setup ? await app.setup(() => undefined) : undefined));
  const endpoint = app.endpoints[0]!;
  const storage = createLocalStorage({ root: path.join(work, "storage") });
  const handler = endpoint.handler as (i: unknown, c: HandlerContext) => Promise<unknown>;
  const call = async (input: Record<string, unknown>, i: number): Promise<void> => {
    const requestId = `bench-${i}`;
    await handler(endpoint.input.parse(input), directContext(storage, requestId, state));
  };
  const warm: Record<string, number[]> = {};
  let i = 0;
  for (const c of cases) {
    await call(c.input, i++); // the first inference at a new frame size grows the wasm heap
    warm[c.label] = [];
    for (let r = 0; r < RUNS; r++) warm[c.label]!.push((await timed(() => call(c.input, i++)))[1]);
  }
  await app.teardown?.(state);
  return { importMs: modulesMs + appMs, setupMs, warm };
}

async function platform(): Promise<{ readyMs: number; firstMs: number; firstCase: string; warm: Record<string, number[]> }> {
  const server = await startBenchServer(["darkroom/video-upscale"]);
  const { base, readyMs } = server;
  const runOnce = async (input: Record<string, unknown>): Promise<number> => {
    const [res, ms] = await timed(() => fetch(`${base}/run/darkroom/video-upscale`, { method: "POST", headers: AUTH, body: JSON.stringify(input) }));
    if (res.status !== 200) throw new Error(`run: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
    return ms;
  };
  try {
    const first = cases[0]!;
    const firstMs = await runOnce(first.input);
    const warm: Record<string, number[]> = {};
    for (const c of cases) {
      await runOnce(c.input);
      warm[c.label] = [];
      for (let r = 0; r < RUNS; r++) warm[c.label]!.push(await runOnce(c.input));
    }
    return { readyMs, firstMs, firstCase: first.label, warm };
  } finally {
    await server.close();
  }
}

const d = await direct();
const p = await platform();
rmSync(work, { recursive: true, force: true });

const rows = cases.map((c) => {
  const dm = median(d.warm[c.label]!);
  const pm = median(p.warm[c.label]!);
  return {
    case: c.label,
    frames: c.frames,
    direct_ms: { median: round(dm), min: round(Math.min(...d.warm[c.label]!)), max: round(Math.max(...d.warm[c.label]!)) },
    direct_ms_per_frame: round(dm / c.frames),
    platform_ms: { median: round(pm), min: round(Math.min(...p.warm[c.label]!)), max: round(Math.max(...p.warm[c.label]!)) },
  };
});
const firstWarm = median(p.warm[p.firstCase]!);
const summary = {
  app: "darkroom/video-upscale",
  runs: RUNS,
  direct_cold: { import_ms: round(d.importMs), setup_ms: round(d.setupMs) },
  platform_cold: {
    server_ready_ms: round(p.readyMs),
    first_request_ms: round(p.firstMs),
    first_request_case: p.firstCase,
    cold_start_overhead_ms: round(p.firstMs - firstWarm),
  },
  warm: rows,
};
console.log(JSON.stringify(summary, null, 2));
mkdirSync(path.join(ROOT, "bench/results"), { recursive: true });
writeFileSync(
  path.join(ROOT, "bench/results/video-upscale.json"),
  `${JSON.stringify({ command: `node --import tsx bench/video-upscale.bench.ts --runs ${RUNS}`, date: new Date().toISOString(), machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, load_avg: os.loadavg() }, ...summary }, null, 2)}\n`,
);
process.exit(0);
