/**
 * Throughput of a built-in app through the platform at saturation, against calling the same model
 * directly in one process (same input, measured in the same run), as a ratio.
 *
 *   node --import tsx bench/app-throughput.bench.ts --app upscale --n 12 --rounds 3
 *   node --import tsx bench/app-throughput.bench.ts --app face-analysis --n 20 --rounds 3
 *
 * Direct: the app module is imported here, `setup()` runs once, then the endpoint handler is called
 * back to back with a real file context (local storage in a temp folder). Platform: `darkroom serve`
 * runs in a child process with only that app; N requests are submitted to the queue at once. Rounds
 * alternate between the two. Each round gives two rates: steady, (N − 1) over the time from the
 * first completion to the last (saturation, as the issue asks), and batch, N over the time from the
 * first submit to the last completion (with the client's uploads and the polling that sees the last
 * result). Both use the app's default knobs, so on 2 cores the platform runs the app's
 * `max_runners` runners. Results go to bench/results/<app>-throughput.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { APP_INPUTS } from "./lib/app-inputs.js";
import { BENCH_AUTH as AUTH, startBenchServer } from "./lib/bench-server.js";
import { spread } from "./lib/rounds.js";
import { importApp } from "../src/runtime/app-loader.js";
import { directContext } from "./lib/direct-context.js";
import type { HandlerContext } from "../src/runtime/sdk.js";
import { createLocalStorage } from "../src/storage/local-storage.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const { values } = parseArgs({
  options: {
    app: { type: "string", default: "upscale" },
    n: { type: "string", default: "12" },
    rounds: { type: "string", default: "3" },
    // Knob overrides for the platform side (`--app-knobs` of `darkroom serve`), e.g. "max_runners=2".
    knobs: { type: "string" },
  },
});
const APP = values.app;
const N = Number(values.n);
const ROUNDS = Number(values.rounds);
const KNOBS = values.knobs;
const makeInput = APP_INPUTS[APP];
if (!makeInput) throw new Error(`no bench input for ${APP}; known: ${Object.keys(APP_INPUTS).join(", ")}`);
const MODULE = path.join(ROOT, "src/apps", APP, "app.ts");

/** A round's throughput two ways: the whole batch, and the steady rate between completions. */
interface RoundRate {
  /** N ÷ (last completion − start): includes getting the batch in and seeing the last result. */
  batch: number;
  /** (N − 1) ÷ (last completion − first completion): the rate at saturation, without those edges. */
  steady: number;
}

function rateOf(startedAt: number, completions: number[]): RoundRate {
  const first = Math.min(...completions);
  const last = Math.max(...completions);
  return { batch: completions.length / ((last - startedAt) / 1000), steady: (completions.length - 1) / ((last - first) / 1000) };
}

async function directRunner(input: Record<string, unknown>): Promise<{ round: () => Promise<RoundRate>; setupMs: number; close: () => void }> {
  const app = await importApp(MODULE);
  const endpoint = app.endpoints.find((e) => e.path === "")!;
  const t0 = performance.now();
  const state: unknown = app.setup ? await app.setup(() => undefined) : undefined;
  const setupMs = performance.now() - t0;
  const dir = mkdtempSync(path.join(os.tmpdir(), "darkroom-direct-"));
  const storage = createLocalStorage({ root: dir });
  const handler = endpoint.handler as (i: unknown, c: HandlerContext) => Promise<unknown>;
  const run = async (i: number): Promise<void> => {
    await handler(endpoint.input.parse(input), directContext(storage, `direct-${i}`, state));
  };
  await run(-1); // warm-up
  return {
    setupMs,
    round: async () => {
      const t = Date.now();
      const completions: number[] = [];
      for (let i = 0; i < N; i++) {
        await run(i);
        completions.push(Date.now());
      }
      return rateOf(t, completions);
    },
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}

async function platformRunner(input: Record<string, unknown>): Promise<{ round: () => Promise<RoundRate>; close: () => Promise<void> }> {
  const server = await startBenchServer([`darkroom/${APP}`], KNOBS ? { appKnobs: `darkroom/${APP}:${KNOBS}` } : {});
  const { base, close } = server;
  const body = JSON.stringify(input);
  const runAll = async (n: number): Promise<RoundRate> => {
    const t = Date.now();
    const ids = await Promise.all(
      Array.from({ length: n }, async () => {
        const res = await fetch(`${base}/queue/darkroom/${APP}`, { method: "POST", headers: AUTH, body });
        if (res.status !== 200) throw new Error(`submit: ${res.status} ${await res.text()}`);
        return ((await res.json()) as { request_id: string }).request_id;
      }),
    );
    for (const id of ids) {
      for (;;) {
        const s = (await (await fetch(`${base}/queue/darkroom/${APP}/requests/${id}/status`, { headers: AUTH })).json()) as { status: string; error?: string };
        if (s.status === "COMPLETED") {
          if (s.error) throw new Error(`request failed: ${s.error}`);
          break;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    // Completion times as the server recorded them (same clock as this process: same machine).
    const completions = await Promise.all(
      ids.map(async (id) => Date.parse(((await (await fetch(`${base}/v1/requests/${id}`, { headers: AUTH })).json()) as { finished_at: string }).finished_at)),
    );
    return rateOf(t, completions);
  };
  try {
    await runAll(2); // cold start and warm-up outside the measurement
  } catch (err) {
    await close();
    throw err;
  }
  return { round: () => runAll(N), close };
}

const input = makeInput();
const directSide = await directRunner(input);
const platformSide = await platformRunner(input);
const directRounds: RoundRate[] = [];
const platformRounds: RoundRate[] = [];
try {
  // Alternate, so that a noisy neighbour's drift does not land on one side only.
  for (let r = 0; r < ROUNDS; r++) {
    directRounds.push(await directSide.round());
    platformRounds.push(await platformSide.round());
    console.log(`round ${r + 1}: direct ${directRounds[r]!.steady.toFixed(2)}/s steady, ${directRounds[r]!.batch.toFixed(2)}/s batch; platform ${platformRounds[r]!.steady.toFixed(2)}/s steady, ${platformRounds[r]!.batch.toFixed(2)}/s batch`);
  }
} finally {
  directSide.close();
  await platformSide.close();
}
const steadyRatios = platformRounds.map((p, i) => p.steady / directRounds[i]!.steady);
const batchRatios = platformRounds.map((p, i) => p.batch / directRounds[i]!.batch);
const summary = {
  app: `darkroom/${APP}`,
  n: N,
  knobs: KNOBS ?? "app defaults",
  direct_steady_per_s: spread(directRounds.map((r) => r.steady)),
  platform_steady_per_s: spread(platformRounds.map((r) => r.steady)),
  ratio_steady: spread(steadyRatios),
  direct_batch_per_s: spread(directRounds.map((r) => r.batch)),
  platform_batch_per_s: spread(platformRounds.map((r) => r.batch)),
  ratio_batch: spread(batchRatios),
  direct_setup_ms: directSide.setupMs,
};
console.log(JSON.stringify(summary, null, 2));
mkdirSync(path.join(ROOT, "bench/results"), { recursive: true });
writeFileSync(
  // Runs with overridden knobs are kept beside the default's, not over it.
  path.join(ROOT, `bench/results/${APP}-throughput${KNOBS ? `.${KNOBS.replace(/[^a-z0-9_=]+/gi, "_")}` : ""}.json`),
  `${JSON.stringify({ command: `node --import tsx bench/app-throughput.bench.ts --app ${APP} --n ${N} --rounds ${ROUNDS}${KNOBS ? ` --knobs ${KNOBS}` : ""}`, date: new Date().toISOString(), machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, load_avg: os.loadavg() }, direct_rounds: directRounds, platform_rounds: platformRounds, ...summary }, null, 2)}\n`,
);
process.exit(0);
