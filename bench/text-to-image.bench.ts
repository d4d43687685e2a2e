/**
 * `darkroom/sd-turbo` at 512×512 with the tiny model: seconds per image and per UNet step through
 * the platform (a `darkroom serve` child process, sync `POST /run`) against the same pipeline driven
 * directly in this process (sessions loaded once, then `generate` + PNG encode, what the handler
 * does before storing).
 *
 *   node --import tsx bench/text-to-image.bench.ts [--rounds 5] [--n 3] [--steps 1,4] [--threads 1]
 *
 * The tiny model's graphs are toys (a 3×3 conv for a UNet), so the numbers measure the pipeline's
 * own cost around the model (tokenizer, scheduler, latent math, VAE call, encode) and the
 * platform's per-request cost, not diffusion: a real SD-Turbo step on CPU is seconds.
 * Per step = (time at the most steps − time at the fewest) ÷ (step difference). Rounds alternate
 * direct and platform; medians and min–max over rounds. Results go to results/text-to-image.json.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { DiffusionPipeline } from "../src/diffusion/pipeline.js";
import { writeTinyDiffusionModel } from "../src/diffusion/tiny-model.js";
import { createModelManager } from "../src/models/index.js";
import { BENCH_AUTH, BENCH_KEY, freePort, waitUntilReady } from "./lib/bench-server.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    n: { type: "string", default: "3" },
    steps: { type: "string", default: "1,4" },
    threads: { type: "string", default: "1" },
  },
});
const rounds = Number(values.rounds);
const n = Number(values.n);
const stepCounts = values.steps.split(",").map(Number);
const threads = Number(values.threads);
const SIZE = 512;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const summary = (xs: number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

const work = mkdtempSync(path.join(os.tmpdir(), "darkroom-t2i-bench-"));
const dataDir = path.join(work, "data");
await writeTinyDiffusionModel(path.join(work, "tiny"), { seed: 1 });
const manager = createModelManager({ dataDir, env: {} });
await manager.pull(path.join(work, "tiny"), { name: "sd-turbo" });

const pipeline = await DiffusionPipeline.load(manager.modelDir("sd-turbo"), { intraOpNumThreads: threads });

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const server = spawn(process.execPath, [path.join(ROOT, "bin/darkroom.js"), "serve", "--port", String(port), "--data-dir", dataDir, "--only", "darkroom/sd-turbo"], {
  env: { ...process.env, DARKROOM_ADMIN_KEY: BENCH_KEY, DARKROOM_LOG_LEVEL: "warn", DARKROOM_ORT_THREADS: String(threads) },
  stdio: ["ignore", "ignore", "inherit"],
});
const exited = new Promise((resolve) => server.once("exit", resolve));

async function cleanup(): Promise<void> {
  if (server.exitCode === null && server.signalCode === null) server.kill("SIGTERM");
  await exited;
  await pipeline.release();
  rmSync(work, { recursive: true, force: true });
}

const input = (steps: number, seed: number) => ({
  prompt: "a photo of a cat",
  image_size: { width: SIZE, height: SIZE },
  num_inference_steps: steps,
  seed,
  output_format: "png",
  enable_safety_checker: false,
});

/** Seconds per image, and the runner's own `timings.inference` per image, over `n` sequential sync runs. */
async function platformRound(steps: number): Promise<{ perImage: number; inference: number }> {
  let inference = 0;
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${base}/run/darkroom/sd-turbo`, { method: "POST", headers: BENCH_AUTH, body: JSON.stringify(input(steps, i)) });
    const body = (await res.json()) as { timings?: { inference: number } };
    if (!res.ok || !body.timings) throw new Error(`run failed: ${res.status} ${JSON.stringify(body)}`);
    inference += body.timings.inference;
  }
  return { perImage: (performance.now() - started) / 1000 / n, inference: inference / n };
}

async function directRound(steps: number): Promise<{ perImage: number; inference: number }> {
  let inference = 0;
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    // The same work the app's handler does: previews every few steps, encoded as the app sends them.
    const rgb = await pipeline.generate({
      prompt: "a photo of a cat",
      width: SIZE,
      height: SIZE,
      steps,
      seed: i,
      previewEvery: Math.max(1, Math.ceil(steps / 4)),
      onPreview: async (preview) => {
        const png = await sharp(Buffer.from(preview.data), { raw: { width: preview.width, height: preview.height, channels: 3 } }).png().toBuffer();
        void `data:image/png;base64,${png.toString("base64")}`;
      },
    });
    inference += (performance.now() - t) / 1000;
    await sharp(Buffer.from(rgb.data), { raw: { width: rgb.width, height: rgb.height, channels: 3 } })
      .png()
      .toBuffer();
  }
  return { perImage: (performance.now() - started) / 1000 / n, inference: inference / n };
}

try {
  await waitUntilReady(base);
  // Warm-up: the runner's cold start (spawn, import, setup) and both sides' first run at this size.
  const coldStarted = performance.now();
  await platformRound(1);
  const coldMs = performance.now() - coldStarted;
  await directRound(1);

  type Row = { perImage: number; inference: number };
  const raw: Record<"direct" | "platform", Record<number, Row[]>> = { direct: {}, platform: {} };
  for (let r = 0; r < rounds; r++) {
    // Alternate which side goes first, so a drift in machine load does not favour one.
    const order = r % 2 === 0 ? (["direct", "platform"] as const) : (["platform", "direct"] as const);
    for (const side of order) {
      for (const steps of stepCounts) {
        const row = side === "direct" ? await directRound(steps) : await platformRound(steps);
        (raw[side][steps] ??= []).push(row);
      }
    }
  }

  const lo = Math.min(...stepCounts);
  const hi = Math.max(...stepCounts);
  const perStep = (side: "direct" | "platform", field: keyof Row): number[] =>
    raw[side][hi]!.map((row, i) => (row[field] - raw[side][lo]![i]![field]) / Math.max(1, hi - lo));
  const results = {
    command: `node --import tsx bench/text-to-image.bench.ts --rounds ${rounds} --n ${n} --steps ${values.steps} --threads ${threads}`,
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? "unknown", node: process.version, load_avg: os.loadavg().map((v) => Number(v.toFixed(2))) },
    model: "tiny random SD-Turbo-shaped model (src/diffusion/tiny-model.ts), 512×512 (latent 64×64)",
    intra_op_threads: threads,
    images_per_round: n,
    runner_cold_start_and_first_run_ms: Math.round(coldMs),
    per_image_s: Object.fromEntries(
      stepCounts.map((steps) => [
        `${steps}_steps`,
        {
          direct: summary(raw.direct[steps]!.map((x) => x.perImage)),
          platform: summary(raw.platform[steps]!.map((x) => x.perImage)),
          platform_inference_in_runner: summary(raw.platform[steps]!.map((x) => x.inference)),
          direct_inference: summary(raw.direct[steps]!.map((x) => x.inference)),
          ratio_platform_over_direct: summary(raw.platform[steps]!.map((x, i) => x.perImage / raw.direct[steps]![i]!.perImage)),
        },
      ]),
    ),
    per_step_s: { direct: summary(perStep("direct", "inference")), platform_runner: summary(perStep("platform", "inference")) },
    raw,
  };
  writeFileSync(path.join(ROOT, "bench/results/text-to-image.json"), `${JSON.stringify(results, null, 2)}\n`);
  const ms = (s: { median: number; min: number; max: number }): string => `${(s.median * 1000).toFixed(1)} ms [${(s.min * 1000).toFixed(1)}–${(s.max * 1000).toFixed(1)}]`;
  console.log(`text-to-image bench: ${results.machine.cpus}× ${results.machine.cpu}, node ${process.version}, ${threads} ORT thread(s), ${rounds} rounds × ${n} images`);
  console.log(`runner cold start + first run: ${results.runner_cold_start_and_first_run_ms} ms`);
  for (const steps of stepCounts) {
    const row = results.per_image_s[`${steps}_steps`]!;
    console.log(
      `${steps} step(s)/image: direct ${ms(row.direct)}, platform ${ms(row.platform)} (runner inference ${ms(row.platform_inference_in_runner)}), ratio ${row.ratio_platform_over_direct.median.toFixed(2)} [${row.ratio_platform_over_direct.min.toFixed(2)}–${row.ratio_platform_over_direct.max.toFixed(2)}]`,
    );
  }
  console.log(`per step: direct ${ms(results.per_step_s.direct)}, in the runner ${ms(results.per_step_s.platform_runner)}`);
} finally {
  await cleanup();
}
