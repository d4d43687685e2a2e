/**
 * One request on several model threads against the same request on one (issue #16, goal 3), for
 * `darkroom/upscale` and `darkroom/video-upscale`, in one run:
 *
 *   node --import tsx bench/model-threads.bench.ts [--rounds 7] [--threads 2] [--n 4] [--platform-rounds 3] [--cold-rounds 5] [--quiet-wait 120]
 *
 * Latency, direct: the app modules are imported here and their handlers called with a real file
 * context, once with models on one thread (`DARKROOM_MODEL_THREADS=1`: the model runs on the calling
 * thread, today's path) and once with models on `--threads` worker threads (default: the cores).
 * Rounds alternate which goes first.
 *
 * Throughput, platform: two `darkroom serve --only darkroom/upscale,darkroom/video-upscale`, one per
 * thread setting, both apps at two runners (upscale's default; video-upscale raised to two with
 * `--app-knobs` so that both show the two-runner case). Per round and setting: `--n` requests
 * submitted at once, rate = n ÷ (last completion − first submit); then one sync request alone
 * (latency through the platform). At the end, each runner's peak RSS (`VmHWM`): the memory cost
 * of the worker threads.
 *
 * Cold start: a fresh process imports the upscale app and runs `setup()`, with each setting,
 * `--cold-rounds` times alternating: what the workers cost a runner's start.
 *
 * Every measurement also records how many cores the rest of the machine kept busy meanwhile
 * (`/proc/stat` busy time minus this process tree's: the servers, runners and ffmpeg included), and
 * a round where both settings ran with under 0.1 core of other work is reported again as "quiet":
 * the machine is shared, and the goal is stated for an idle one. Before each round the bench waits
 * up to `--quiet-wait` seconds (default 120) for such a stretch. `--rounds 0` or
 * `--platform-rounds 0` skips a part (its results then go to model-threads.platform.json or
 * model-threads.direct.json, beside a full run's).
 *
 * Outputs are compared byte for byte between the settings (the PNG of the image, every frame's
 * luma of the video). Results: bench/results/model-threads.json.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { FIXTURES } from "./lib/app-inputs.js";
import { Cleanups } from "./lib/baseline-worktree.js";
import { BENCH_AUTH as AUTH, startBenchServer, type BenchServer } from "./lib/bench-server.js";
import { directContext } from "./lib/direct-context.js";
import { spread, type Spread } from "./lib/rounds.js";
import upscaleApp from "../src/apps/upscale/app.js";
import videoUpscaleApp from "../src/apps/video-upscale/app.js";
import { preloadModelCache, type UpscaleAppState } from "../src/media/upscale/model-cache.js";
import { MODEL_THREADS_ENV, modelThreads } from "../src/media/upscale/model-threads.js";
import type { AppDefinition, HandlerContext } from "../src/runtime/sdk.js";
import { createLocalStorage } from "../src/storage/local-storage.js";
import { submitAllAndWait } from "./lib/queue-batch.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "7" },
    threads: { type: "string" },
    n: { type: "string", default: "4" },
    "platform-rounds": { type: "string", default: "3" },
    "quiet-wait": { type: "string", default: "120" },
    "cold-rounds": { type: "string", default: "5" },
  },
});
const ROUNDS = Number(values.rounds);
const THREADS = values.threads ? Number(values.threads) : modelThreads();
const N = Number(values.n);
const PLATFORM_ROUNDS = Number(values["platform-rounds"]);
const QUIET_WAIT_S = Number(values["quiet-wait"]);
const COLD_ROUNDS = Number(values["cold-rounds"]);
if (THREADS < 2) throw new Error(`--threads ${THREADS}: the comparison needs at least 2 (this machine offers ${os.availableParallelism()} cores)`);

// Servers and the temp folder go on the way out, on Ctrl-C too.
const cleanups = new Cleanups("stopping the bench's servers and removing its temp folder");
const work = mkdtempSync(path.join(os.tmpdir(), "darkroom-threads-bench-"));
cleanups.push(() => rmSync(work, { recursive: true, force: true }));
const dataUri = (file: string, type: string): string => `data:${type};base64,${readFileSync(file).toString("base64")}`;

/** A cut of the fixture clip, lossless so that decoding is cheap and fixed. */
function clip(name: string, size: string, seconds: number): string {
  const file = path.join(work, `${name}.mp4`);
  execFileSync("ffmpeg", ["-v", "error", "-y", "-i", path.join(FIXTURES, "clip-320x240-2s.mp4"), "-t", String(seconds), "-vf", `scale=${size}:flags=area`, "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p", file]);
  return dataUri(file, "video/mp4");
}

interface Case {
  label: string;
  app: AppDefinition<UpscaleAppState>;
  input: Record<string, unknown>;
}

const CASES: Case[] = [
  // The issue's example: 12 tiles of ~113×100.
  { label: "upscale chelsea.png 451×300 ×2 slim", app: upscaleApp, input: { image_url: dataUri(path.join(FIXTURES, "chelsea.png"), "image/png"), scale: 2 } },
  { label: "upscale astronaut.png 512×512 ×2 slim", app: upscaleApp, input: { image_url: dataUri(path.join(FIXTURES, "astronaut.png"), "image/png"), scale: 2 } },
  // One tile a frame: only frames can be shared out (app-latency's video input).
  { label: "video-upscale 80×60 0.5 s (6 frames) ×2 slim", app: videoUpscaleApp, input: { video_url: clip("80x60", "80:60", 0.5), scale: 2 } },
  // Two tiles a frame.
  { label: "video-upscale 160×120 1 s (12 frames) ×2 slim", app: videoUpscaleApp, input: { video_url: clip("160x120", "160:120", 1), scale: 2 } },
];

/**
 * CPU ticks: the machine's busy time, and this process's with all its descendants' (the servers,
 * their runners, ffmpeg), live ones read from their own stat and exited ones through their parents'.
 */
function cpuTicks(): { machineBusy: number; ours: number } {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  const machineBusy = fields.reduce((a, b) => a + b, 0) - idle;
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // gone since the listing
    }
    // The name may hold spaces: fields are counted after its closing parenthesis (state is field 3).
    const after = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
    parent.set(Number(entry), after[1] ?? 0);
    // utime, stime, cutime, cstime: fields 14–17.
    ticks.set(Number(entry), (after[11] ?? 0) + (after[12] ?? 0) + (after[13] ?? 0) + (after[14] ?? 0));
  }
  const isOurs = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = parent.get(p) ?? 0, hops++) if (p === process.pid) return true;
    return false;
  };
  let ours = 0;
  for (const [pid, t] of ticks) if (isOurs(pid)) ours += t;
  return { machineBusy, ours };
}
const TICKS_PER_SECOND = 100;

/** Runs `fn` and returns its result, its milliseconds, and the cores the rest of the machine kept busy meanwhile. */
async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; otherCores: number }> {
  const before = cpuTicks();
  const started = performance.now();
  const value = await fn();
  const ms = performance.now() - started;
  const after = cpuTicks();
  const others = after.machineBusy - before.machineBusy - (after.ours - before.ours);
  return { value, ms, otherCores: Math.max(0, others / TICKS_PER_SECOND / (ms / 1000)) };
}

/** Quiet: the rest of the machine kept under a tenth of a core busy. */
const QUIET_CORES = 0.1;

/**
 * Waits, up to `--quiet-wait` seconds, for a 2 s stretch in which the rest of the machine stays
 * under {@link QUIET_CORES}, so that fewer rounds are spent while other work runs. Past the wait
 * the round runs anyway: its own figures say whether it was quiet.
 */
async function waitForQuiet(): Promise<void> {
  const deadline = performance.now() + QUIET_WAIT_S * 1000;
  while (performance.now() < deadline) {
    const { otherCores } = await measured(() => new Promise((resolve) => setTimeout(resolve, 2000)));
    if (otherCores < QUIET_CORES) return;
  }
}

interface Setting {
  threads: number;
  state: UpscaleAppState;
}

const storage = createLocalStorage({ root: path.join(work, "storage") });
let calls = 0;

/** Calls the case's handler once; returns the stored output's bytes and the time taken. */
async function callDirect(c: Case, setting: Setting): Promise<{ ms: number; otherCores: number; output: Buffer }> {
  const endpoint = c.app.endpoints[0]!;
  const handler = endpoint.handler as (i: unknown, ctx: HandlerContext) => Promise<unknown>;
  const ctx = directContext(storage, `bench-${calls++}`, setting.state);
  // Both handlers store one file, their output: kept here to compare the settings byte for byte.
  let output = Buffer.alloc(0);
  const files = ctx.files;
  ctx.files = {
    ...files,
    put: (body, options) => {
      if (body instanceof Uint8Array) output = Buffer.from(body);
      return files.put(body, options);
    },
  };
  const run = await measured(() => Promise.resolve(handler(endpoint.input.parse(c.input), ctx)));
  return { ms: run.ms, otherCores: run.otherCores, output };
}

/** Luma of every frame: MP4 bytes could differ in metadata alone, the frames must not. */
function frames(mp4: Buffer): Buffer {
  const file = path.join(work, "compare.mp4");
  writeFileSync(file, mp4);
  return execFileSync("ffmpeg", ["-v", "error", "-i", file, "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"], { maxBuffer: 256 << 20 });
}

async function direct(): Promise<{ rows: Record<string, unknown>[] }> {
  const settings: Setting[] = [];
  for (const threads of [1, THREADS]) settings.push({ threads, state: { models: await preloadModelCache(() => undefined, { threads }) } });
  const rows: Record<string, unknown>[] = [];
  for (const c of CASES) {
    // Warm-up: the first runs at a new tile shape grow each thread's wasm heap and compile its JIT code.
    const outputs: Buffer[] = [];
    for (const s of settings) for (let i = 0; i < 2; i++) outputs[s.threads] = (await callDirect(c, s)).output;
    const isVideo = c.app === videoUpscaleApp;
    const one = isVideo ? frames(outputs[1]!) : outputs[1]!;
    const many = isVideo ? frames(outputs[THREADS]!) : outputs[THREADS]!;
    const identical = one.equals(many);

    const ms: Record<number, number[]> = { 1: [], [THREADS]: [] };
    const others: Record<number, number[]> = { 1: [], [THREADS]: [] };
    const speedups: number[] = [];
    const quietSpeedups: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      await waitForQuiet();
      const order = r % 2 === 0 ? settings : [...settings].reverse();
      const round: Record<number, { ms: number; otherCores: number }> = {};
      for (const s of order) round[s.threads] = await callDirect(c, s);
      for (const s of settings) {
        ms[s.threads]!.push(round[s.threads]!.ms);
        others[s.threads]!.push(round[s.threads]!.otherCores);
      }
      const speedup = round[1]!.ms / round[THREADS]!.ms;
      speedups.push(speedup);
      if (round[1]!.otherCores < QUIET_CORES && round[THREADS]!.otherCores < QUIET_CORES) quietSpeedups.push(speedup);
      console.error(
        `${c.label} round ${r + 1}: 1 thread ${round[1]!.ms.toFixed(0)} ms (others ${round[1]!.otherCores.toFixed(2)} cores), ` +
          `${THREADS} threads ${round[THREADS]!.ms.toFixed(0)} ms (others ${round[THREADS]!.otherCores.toFixed(2)}): ×${speedup.toFixed(2)}`,
      );
    }
    rows.push({
      case: c.label,
      one_thread_ms: spread(ms[1]!),
      [`threads_${THREADS}_ms`]: spread(ms[THREADS]!),
      speedup: spread(speedups),
      quiet_rounds: quietSpeedups.length,
      quiet_speedup: quietSpeedups.length > 0 ? spread(quietSpeedups) : null,
      other_cores_during_rounds: spread([...others[1]!, ...others[THREADS]!]),
      output_identical: identical,
    });
  }
  for (const s of settings) await s.state.models.dispose();
  return { rows };
}

/** The peak resident memory of each runner of `app`, in MiB: read right after its rounds, before keep_alive stops them. */
async function runnerPeakRss(server: BenchServer, app: string): Promise<number[]> {
  const ops = (await (await fetch(`${server.base}/v1/ops`, { headers: AUTH })).json()) as { apps?: { app: string; runners: { pid?: number }[] }[] };
  const pool = ops.apps?.find((a) => a.app === app);
  return (pool?.runners ?? []).flatMap((r) => {
    if (!r.pid) return [];
    try {
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${r.pid}/status`, "utf8"))?.[1];
      return hwm ? [Math.round(Number(hwm) / 1024)] : [];
    } catch {
      return []; // stopped meanwhile
    }
  });
}

async function platformBatch(base: string, app: string, input: Record<string, unknown>, n: number): Promise<number> {
  const started = Date.now();
  const ids = await submitAllAndWait(base, app, input, n);
  const finished = await Promise.all(
    ids.map(async (id) => Date.parse(((await (await fetch(`${base}/v1/requests/${id}`, { headers: AUTH })).json()) as { finished_at: string }).finished_at)),
  );
  return n / ((Math.max(...finished) - started) / 1000);
}

async function platformSync(base: string, app: string, input: Record<string, unknown>): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${base}/run/${app}`, { method: "POST", headers: AUTH, body: JSON.stringify(input) });
  if (res.status !== 200) throw new Error(`run: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
  return performance.now() - started;
}

async function platform(): Promise<{ rows: Record<string, unknown>[]; peakRssMiB: Record<string, Record<string, number[]>> }> {
  const apps = ["darkroom/upscale", "darkroom/video-upscale"];
  const cases = [
    { app: "darkroom/upscale", label: CASES[0]!.label, input: CASES[0]!.input },
    { app: "darkroom/video-upscale", label: CASES[3]!.label, input: CASES[3]!.input },
  ];
  const servers: Record<number, BenchServer> = {};
  const previous = process.env[MODEL_THREADS_ENV];
  try {
    for (const threads of [1, THREADS]) {
      // The server passes its environment on to its runners.
      process.env[MODEL_THREADS_ENV] = String(threads);
      const server = await startBenchServer(apps, { appKnobs: "darkroom/video-upscale:max_runners=2" });
      servers[threads] = server;
      cleanups.push(() => server.close());
    }
  } finally {
    if (previous === undefined) delete process.env[MODEL_THREADS_ENV];
    else process.env[MODEL_THREADS_ENV] = previous;
  }
  const rows: Record<string, unknown>[] = [];
  const peakRssMiB: Record<string, Record<string, number[]>> = {};
  try {
    for (const c of cases) {
      // Both runners of the app started and warm before anything is timed (just before: an app idle
      // past its keep_alive while the other app's rounds ran would have stopped its runners).
      for (const threads of [1, THREADS]) await platformBatch(servers[threads]!.base, c.app, c.input, 2);
      const rate: Record<number, number[]> = { 1: [], [THREADS]: [] };
      const latency: Record<number, number[]> = { 1: [], [THREADS]: [] };
      const others: number[] = [];
      const quietRateRatios: number[] = [];
      const quietLatencySpeedups: number[] = [];
      for (let r = 0; r < PLATFORM_ROUNDS; r++) {
        await waitForQuiet();
        const order = r % 2 === 0 ? [1, THREADS] : [THREADS, 1];
        const busy: Record<number, number> = {};
        for (const threads of order) {
          const batch = await measured(() => platformBatch(servers[threads]!.base, c.app, c.input, N));
          const alone = await measured(() => platformSync(servers[threads]!.base, c.app, c.input));
          rate[threads]!.push(batch.value);
          latency[threads]!.push(alone.value);
          others.push(batch.otherCores, alone.otherCores);
          busy[threads] = Math.max(batch.otherCores, alone.otherCores);
        }
        const rateRatio = rate[THREADS]!.at(-1)! / rate[1]!.at(-1)!;
        const latencySpeedup = latency[1]!.at(-1)! / latency[THREADS]!.at(-1)!;
        if (Math.max(busy[1]!, busy[THREADS]!) < QUIET_CORES) {
          quietRateRatios.push(rateRatio);
          quietLatencySpeedups.push(latencySpeedup);
        }
        console.error(
          `platform ${c.label} round ${r + 1}: ${N} at once: 1 thread ${rate[1]!.at(-1)!.toFixed(3)}/s, ${THREADS} threads ${rate[THREADS]!.at(-1)!.toFixed(3)}/s ` +
            `(×${rateRatio.toFixed(2)}); one alone: ${latency[1]!.at(-1)!.toFixed(0)} ms, ${latency[THREADS]!.at(-1)!.toFixed(0)} ms (×${latencySpeedup.toFixed(2)}); ` +
            `others ${busy[1]!.toFixed(2)} / ${busy[THREADS]!.toFixed(2)} cores`,
        );
      }
      for (const threads of [1, THREADS]) (peakRssMiB[`threads=${threads}`] ??= {})[c.app] = await runnerPeakRss(servers[threads]!, c.app);
      rows.push({
        case: c.label,
        [`${N}_at_once_per_s`]: { one_thread: spread(rate[1]!), [`threads_${THREADS}`]: spread(rate[THREADS]!) },
        throughput_ratio: spread(rate[THREADS]!.map((x, i) => x / rate[1]![i]!)),
        one_request_ms: { one_thread: spread(latency[1]!), [`threads_${THREADS}`]: spread(latency[THREADS]!) },
        latency_speedup: spread(latency[1]!.map((x, i) => x / latency[THREADS]![i]!)),
        quiet_rounds: quietRateRatios.length,
        quiet_throughput_ratio: quietRateRatios.length > 0 ? spread(quietRateRatios) : null,
        quiet_latency_speedup: quietLatencySpeedups.length > 0 ? spread(quietLatencySpeedups) : null,
        other_cores_during_rounds: spread(others),
      });
    }
    return { rows, peakRssMiB };
  } finally {
    await cleanups.run();
  }
}

/**
 * What the threads cost a cold start: a fresh Node process imports the upscale app and runs its
 * `setup()` (with workers: each imports tfjs and loads slim ×2 and ×4 itself, while the main thread
 * no longer imports tfjs at all).
 */
function coldStart(): Record<string, Record<string, Spread>> {
  const appUrl = new URL("../src/apps/upscale/app.ts", import.meta.url).href;
  const script = `
    const t0 = performance.now();
    const { default: app } = await import(${JSON.stringify(appUrl)});
    const t1 = performance.now();
    const state = await app.setup(() => {});
    const t2 = performance.now();
    console.log(JSON.stringify({ import_ms: t1 - t0, setup_ms: t2 - t1 }));
    await app.teardown(state);`;
  const samples: Record<number, { import_ms: number; setup_ms: number }[]> = { 1: [], [THREADS]: [] };
  for (let r = 0; r < COLD_ROUNDS; r++) {
    for (const threads of r % 2 === 0 ? [1, THREADS] : [THREADS, 1]) {
      const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
        cwd: ROOT,
        env: { ...process.env, [MODEL_THREADS_ENV]: String(threads) },
        encoding: "utf8",
      });
      samples[threads]!.push(JSON.parse(out.trim().split("\n").at(-1)!) as { import_ms: number; setup_ms: number });
    }
  }
  const result: Record<string, Record<string, Spread>> = {};
  for (const threads of [1, THREADS]) {
    const xs = samples[threads]!;
    result[`threads=${threads}`] = {
      import_ms: spread(xs.map((x) => x.import_ms)),
      setup_ms: spread(xs.map((x) => x.setup_ms)),
      total_ms: spread(xs.map((x) => x.import_ms + x.setup_ms)),
    };
  }
  return result;
}

const loadBefore = os.loadavg();
const d = ROUNDS > 0 ? await direct() : null;
const p = PLATFORM_ROUNDS > 0 ? await platform() : null;
if (COLD_ROUNDS > 0) await waitForQuiet();
const cold = COLD_ROUNDS > 0 ? coldStart() : null;
await cleanups.run();

const round2 = (x: Spread): string => `${x.median.toFixed(2)} [${x.min.toFixed(2)}–${x.max.toFixed(2)}]`;
const ms0 = (x: Spread): string => `${x.median.toFixed(0)} [${x.min.toFixed(0)}–${x.max.toFixed(0)}]`;
const quiet = (n: unknown, x: unknown): string => (x ? `${String(n)}: ${round2(x as Spread)}` : "none");
if (d) {
  console.log(`\n| case | 1 thread ms | ${THREADS} threads ms | speedup | quiet rounds: speedup | identical |\n|---|---|---|---|---|---|`);
  for (const row of d.rows) {
    console.log(
      `| ${String(row["case"])} | ${ms0(row["one_thread_ms"] as Spread)} | ${ms0(row[`threads_${THREADS}_ms`] as Spread)} | ` +
        `${round2(row["speedup"] as Spread)} | ${quiet(row["quiet_rounds"], row["quiet_speedup"])} | ${String(row["output_identical"])} |`,
    );
  }
}
if (p) {
  console.log(
    `\n| platform, 2 runners | ${N} at once, 1 thread: req/s | ${THREADS} threads: req/s | ratio | quiet rounds: ratio | one alone, 1 thread: ms | ${THREADS} threads: ms | speedup | quiet rounds: speedup |\n|---|---|---|---|---|---|---|---|---|`,
  );
  for (const row of p.rows) {
    const rate = row[`${N}_at_once_per_s`] as Record<string, Spread>;
    const alone = row["one_request_ms"] as Record<string, Spread>;
    console.log(
      `| ${String(row["case"])} | ${round2(rate["one_thread"]!)} | ${round2(rate[`threads_${THREADS}`]!)} | ${round2(row["throughput_ratio"] as Spread)} | ` +
        `${quiet(row["quiet_rounds"], row["quiet_throughput_ratio"])} | ${ms0(alone["one_thread"]!)} | ${ms0(alone[`threads_${THREADS}`]!)} | ` +
        `${round2(row["latency_speedup"] as Spread)} | ${quiet(row["quiet_rounds"], row["quiet_latency_speedup"])} |`,
    );
  }
  console.log(`runner peak RSS (MiB): ${JSON.stringify(p.peakRssMiB)}`);
}
if (cold) {
  console.log(`\n| upscale app, fresh process | import ms | setup() ms | total ms |\n|---|---|---|---|`);
  for (const [setting, x] of Object.entries(cold)) console.log(`| ${setting} | ${ms0(x["import_ms"]!)} | ${ms0(x["setup_ms"]!)} | ${ms0(x["total_ms"]!)} |`);
}
const summary = { threads: THREADS, rounds: ROUNDS, platform_rounds: PLATFORM_ROUNDS, cold_rounds: COLD_ROUNDS, n: N, direct: d?.rows ?? null, platform: p, cold_start: cold };
// A run of one part only is kept beside a full run's results, not over them.
const part = d && p ? "" : d ? ".direct" : p ? ".platform" : ".cold";
mkdirSync(path.join(ROOT, "bench/results"), { recursive: true });
writeFileSync(
  path.join(ROOT, `bench/results/model-threads${part}.json`),
  `${JSON.stringify(
    {
      command: `node --import tsx bench/model-threads.bench.ts --rounds ${ROUNDS} --threads ${THREADS} --n ${N} --platform-rounds ${PLATFORM_ROUNDS} --cold-rounds ${COLD_ROUNDS} --quiet-wait ${QUIET_WAIT_S}`,
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, available_parallelism: os.availableParallelism(), cpu: os.cpus()[0]?.model, node: process.version, load_avg_before: loadBefore, load_avg_after: os.loadavg() },
      ...summary,
    },
    null,
    2,
  )}\n`,
);
process.exit(0);
