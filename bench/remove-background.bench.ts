/**
 * Benchmark of the two matting apps (`darkroom/remove-background`, `darkroom/video-remove-background`):
 * cold start, warm latency of the model alone, then throughput of the apps through the platform
 * against calling the same handlers in-process, as a ratio measured in the same run.
 *
 *   node --import tsx bench/remove-background.bench.ts [--runs 5] [--n 6] [--rounds 2] [--save]
 *
 * - Cold: importing tfjs, sharp and the model module, starting the tfjs wasm backend, loading RVM
 *   (what a runner pays before `setup()` returns); then, through the platform, the first request on
 *   a fresh server (runner spawn + setup + one cut-out).
 * - Warm model latency: one matting step (`MattingSession.next`) at the automatic downsample ratio,
 *   for a 512² photo and for video-sized frames with the recurrent state carried (steady state).
 * - Throughput: the astronaut photo (512², PNG out with mask), N requests back to back in-process
 *   with real local storage, against N submitted to the queue of `darkroom serve` at once; and the
 *   2 s fixture clip (24 frames, 320×240) once each way. Direct and platform rounds alternate,
 *   `--rounds` of each; both sides use the apps' default knobs (one runner per app).
 *
 * With `--save` the results go to bench/results/remove-background.json.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { HandlerContext } from "../src/runtime/sdk.js";
import { startBenchServer } from "./lib/bench-server.js";
import { submitAllAndWait } from "./lib/queue-batch.js";

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await fn();
  return [result, performance.now() - started];
}

// Imported here rather than statically so that their load time counts towards the cold start.
const [[{ default: sharp }, rvm, { initBackend }], importMs] = await timed(() =>
  Promise.all([import("sharp"), import("../src/media/matting/rvm-model.js"), import("../src/media/tfjs/wasm-backend.js")]),
);
const { importApp } = await import("../src/runtime/app-loader.js");
const { directContext } = await import("./lib/direct-context.js");
const { createLocalStorage } = await import("../src/storage/local-storage.js");

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    n: { type: "string", default: "6" },
    rounds: { type: "string", default: "2" },
    save: { type: "boolean", default: false },
  },
});
const RUNS = Number(values.runs);
const N = Number(values.n);
const ROUNDS = Number(values.rounds);

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const FIXTURES = path.resolve(ROOT, "test/fixtures/media");

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const spread = (xs: number[], digits = 0): string =>
  `median ${median(xs).toFixed(digits)}, min ${Math.min(...xs).toFixed(digits)}, max ${Math.max(...xs).toFixed(digits)} (n=${xs.length})`;

const rows: [string, string][] = [["cold: import tfjs, sharp, model module", `${importMs.toFixed(0)} ms`]];
const [backend, backendMs] = await timed(() => initBackend((m) => console.error(m)));
rows.push([`cold: tfjs ${backend} backend init`, `${backendMs.toFixed(0)} ms`]);
const [model, loadMs] = await timed(() => rvm.loadRvm());
rows.push(["cold: load RVM (setup)", `${loadMs.toFixed(0)} ms`]);

// --- warm model latency ---
const astronaut = path.join(FIXTURES, "astronaut.png");
const modelLatency: Record<string, { ratio: number; first_ms: number; ms: number[] }> = {};
for (const [width, height, label] of [[512, 512, "photo 512×512"], [320, 240, "video 320×240"], [1280, 720, "video 1280×720"]] as const) {
  const data = new Uint8Array(await sharp(astronaut).resize(width, height, { fit: "fill" }).removeAlpha().raw().toBuffer());
  const ratio = rvm.autoDownsampleRatio(width, height);
  const session = model.session(ratio);
  const [, firstMs] = await timed(() => session.next({ data, width, height }));
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) ms.push((await timed(() => session.next({ data, width, height })))[1]);
  session.dispose();
  modelLatency[label] = { ratio, first_ms: firstMs, ms };
  rows.push([`warm: RVM step, ${label} (ratio ${ratio.toFixed(3)})`, `${spread(ms)} ms (first ${firstMs.toFixed(0)} ms)`]);
}

// --- throughput: in-process handlers vs the platform ---
const dataUri = (file: string, type: string): string => `data:${type};base64,${readFileSync(path.join(FIXTURES, file)).toString("base64")}`;
const IMAGE_INPUT = { image_url: dataUri("astronaut.png", "image/png") };
const VIDEO_INPUT = { video_url: dataUri("clip-320x240-2s.mp4", "video/mp4") };

interface DirectApp {
  run(input: Record<string, unknown>, i: number): Promise<void>;
  close(): void;
}

async function directApp(folder: string): Promise<DirectApp> {
  const app = await importApp(path.join(ROOT, "src/apps", folder, "app.ts"));
  const endpoint = app.endpoints.find((e) => e.path === "")!;
  const state: unknown = app.setup ? await app.setup(() => undefined) : undefined;
  const dir = mkdtempSync(path.join(os.tmpdir(), "darkroom-direct-"));
  const storage = createLocalStorage({ root: dir });
  const handler = endpoint.handler as (i: unknown, c: HandlerContext) => Promise<unknown>;
  return {
    async run(input, i) {
      await handler(endpoint.input.parse(input), directContext(storage, `direct-${i}`, state));
    },
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}


/** Submits `n` requests at once and resolves when all have completed. */
async function runAll(base: string, app: string, input: unknown, n: number): Promise<void> {
  await submitAllAndWait(base, app, input, n);
}

const image = await directApp("remove-background");
const video = await directApp("video-remove-background");
await image.run(IMAGE_INPUT, -1); // warm-up at this input's shapes

const server = await startBenchServer(["darkroom/remove-background", "darkroom/video-remove-background"]);
const { base } = server;
const directImage: number[] = [];
const directVideo: number[] = [];
const platformImage: number[] = [];
const platformVideo: number[] = [];
let platformColdMs = NaN;
let platformVideoColdMs = NaN;
try {
  platformColdMs = (await timed(() => runAll(base, "darkroom/remove-background", IMAGE_INPUT, 1)))[1];
  platformVideoColdMs = (await timed(() => runAll(base, "darkroom/video-remove-background", VIDEO_INPUT, 1)))[1];
  // Direct and platform rounds alternate, so that a change in the shared machine's load hits both.
  for (let r = 0; r < ROUNDS; r++) {
    let [, ms] = await timed(async () => {
      for (let i = 0; i < N; i++) await image.run(IMAGE_INPUT, i);
    });
    directImage.push(N / (ms / 1000));
    [, ms] = await timed(() => runAll(base, "darkroom/remove-background", IMAGE_INPUT, N));
    platformImage.push(N / (ms / 1000));
    [, ms] = await timed(() => video.run(VIDEO_INPUT, r));
    directVideo.push(24 / (ms / 1000));
    [, ms] = await timed(() => runAll(base, "darkroom/video-remove-background", VIDEO_INPUT, 1));
    platformVideo.push(24 / (ms / 1000));
  }
} finally {
  await server.close();
  image.close();
  video.close();
}

rows.push(["platform cold: first cut-out on a fresh server (spawn + setup + request)", `${platformColdMs.toFixed(0)} ms`]);
rows.push(["platform cold: first video (2 s, 24 frames) on its fresh runner", `${platformVideoColdMs.toFixed(0)} ms`]);
rows.push([`image req/s, direct (N=${N})`, spread(directImage, 3)]);
rows.push([`image req/s, platform (N=${N})`, spread(platformImage, 3)]);
rows.push(["image ratio platform / direct (medians)", (median(platformImage) / median(directImage)).toFixed(3)]);
rows.push(["video frames/s, direct (fixture, 24 frames)", spread(directVideo, 2)]);
rows.push(["video frames/s, platform (fixture, 24 frames)", spread(platformVideo, 2)]);
rows.push(["video ratio platform / direct (medians)", (median(platformVideo) / median(directVideo)).toFixed(3)]);

const cpu = os.cpus()[0]?.model ?? "unknown CPU";
console.log(`remove-background bench: node ${process.version}, ${os.cpus().length}× ${cpu}, backend ${backend}, load avg ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
const width = Math.max(...rows.map(([k]) => k.length));
for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);

if (values.save) {
  mkdirSync(path.join(ROOT, "bench/results"), { recursive: true });
  writeFileSync(
    path.join(ROOT, "bench/results/remove-background.json"),
    `${JSON.stringify(
      {
        command: `node --import tsx bench/remove-background.bench.ts --runs ${RUNS} --n ${N} --rounds ${ROUNDS}`,
        date: new Date().toISOString(),
        machine: { cpus: os.cpus().length, cpu, node: process.version, load_avg: os.loadavg() },
        cold_ms: { import: importMs, backend: backendMs, load_model: loadMs, platform_first_image: platformColdMs, platform_first_video: platformVideoColdMs },
        model_latency: modelLatency,
        image_per_s: { direct: directImage, platform: platformImage, ratio: median(platformImage) / median(directImage) },
        video_frames_per_s: { direct: directVideo, platform: platformVideo, ratio: median(platformVideo) / median(directVideo) },
      },
      null,
      2,
    )}\n`,
  );
}
process.exit(0);
