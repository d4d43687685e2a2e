/**
 * What a cold start costs beyond the app's own work (issue #16), against earlier code in the same run:
 *
 *   node --import tsx bench/cold-start.bench.ts --rounds 5 --baseline-ref 03b107d [--apps echo,text-to-speech] [--burst-app text-to-speech]
 *
 * Per app and round:
 * - direct: a fresh Node process imports the app module, runs `setup()` and the first call (what the
 *   app itself needs, whatever the platform does);
 * - platform: a fresh `darkroom serve --only <app>` of each variant, left idle for `--settle-ms` (as
 *   a server is between bursts), then one sync `POST /run`: the cold first request; then a few warm
 *   ones. Overhead = cold first request − (direct import + setup + first call).
 * The variants: the baseline ref (a temporary worktree), this checkout with `--spare-runners 0`
 * (`--skip-no-spare` leaves it out), with one spare and runner starts not bounded
 * (`--unbounded-starts`: `--parallel-starts 64`, as before that setting), and this checkout as it
 * starts by default (one spare runner, starts bounded by the cores).
 *
 * Burst (goal 2): a fresh idle server per variant and round, then 20 sync requests at once to
 * `--burst-app`: when the first result arrives against the direct setup + first call, and when the
 * last does. The admin key is verified once before timing (its scrypt hash is not a runner's cost).
 *
 * Rounds alternate the variants' order. Results: bench/results/cold-start.json.
 * @module
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { APP_INPUTS } from "./lib/app-inputs.js";
import { addBaselineWorktree, Cleanups, gitOutput } from "./lib/baseline-worktree.js";
import { BENCH_AUTH, startBenchServer, type BenchServer } from "./lib/bench-server.js";
import { loadAppDirect } from "./lib/direct-app.js";
import { spread } from "./lib/rounds.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

// darkroom/sd-turbo is left out: its setup needs a pulled model (`darkroom models pull`).
const INPUTS: Record<string, () => Record<string, unknown>> = { echo: () => ({ message: "hello" }), ...APP_INPUTS };

interface Direct {
  importMs: number;
  setupMs: number;
  firstMs: number;
}

/** The child side: one app in this fresh process; prints its timings as the last line. */
async function directChild(app: string): Promise<void> {
  const direct = await loadAppDirect(path.join(ROOT, "src/apps", app, "app.ts"), INPUTS[app]!());
  const firstMs = await direct.call(0);
  direct.close();
  process.stdout.write(`${JSON.stringify({ importMs: direct.importMs, setupMs: direct.setupMs, firstMs } satisfies Direct)}\n`, () => process.exit(0));
}

function direct(app: string): Direct {
  const child = spawnSync(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--child", app], { cwd: ROOT, encoding: "utf8", maxBuffer: 16 * 1024 * 1024 });
  const last = child.stdout.trim().split("\n").pop() ?? "";
  if (child.status !== 0 || !last.startsWith("{")) throw new Error(`direct ${app} failed: ${child.stderr}`);
  return JSON.parse(last) as Direct;
}

interface Variant {
  label: string;
  root?: string;
  env?: Record<string, string>;
}

async function idleServer(variant: Variant, app: string, settleMs: number): Promise<BenchServer> {
  const server = await startBenchServer([`darkroom/${app}`], { ...(variant.root ? { root: variant.root } : {}), ...(variant.env ? { env: variant.env } : {}) });
  // The key's hash is checked once here, as any running server has done long before.
  const res = await fetch(`${server.base}/v1/apps`, { headers: BENCH_AUTH });
  await res.text();
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  return server;
}

async function timedRun(server: BenchServer, app: string, body: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${server.base}/run/darkroom/${app}`, { method: "POST", headers: BENCH_AUTH, body });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${app}: ${res.status} ${text.slice(0, 300)}`);
  return performance.now() - started;
}

async function coldAndWarm(variant: Variant, app: string, settleMs: number, warm: number): Promise<{ coldMs: number; warmMs: number; coldStart: unknown }> {
  const server = await idleServer(variant, app, settleMs);
  const body = JSON.stringify(INPUTS[app]!());
  try {
    const coldMs = await timedRun(server, app, body);
    const warmMs: number[] = [];
    for (let i = 0; i < warm; i++) warmMs.push(await timedRun(server, app, body));
    const ops = (await (await fetch(`${server.base}/v1/ops`, { headers: BENCH_AUTH })).json()) as { apps: { recent_cold_starts?: unknown[] }[] };
    return { coldMs, warmMs: spread(warmMs).median, coldStart: ops.apps[0]?.recent_cold_starts?.[0] ?? null };
  } finally {
    await server.close();
  }
}

async function burst(variant: Variant, app: string, settleMs: number, n: number): Promise<{ firstMs: number; lastMs: number }> {
  const server = await idleServer(variant, app, settleMs);
  const body = JSON.stringify(INPUTS[app]!());
  try {
    const started = performance.now();
    let firstMs = Infinity;
    await Promise.all(
      Array.from({ length: n }, async () => {
        await timedRun(server, app, body);
        firstMs = Math.min(firstMs, performance.now() - started);
      }),
    );
    return { firstMs, lastMs: performance.now() - started };
  } finally {
    await server.close();
  }
}

const { values } = parseArgs({
  options: {
    child: { type: "string" },
    rounds: { type: "string", default: "5" },
    warm: { type: "string", default: "3" },
    apps: { type: "string", default: "echo,text-to-speech,safety-checker,image-to-video,upscale" },
    "baseline-ref": { type: "string" },
    "settle-ms": { type: "string", default: "3000" },
    "burst-app": { type: "string", default: "text-to-speech" },
    "burst-n": { type: "string", default: "20" },
    // Leave out the variant without a spare (to spend the rounds on the others).
    "skip-no-spare": { type: "boolean", default: false },
    // Add a variant with one spare and runner starts not bounded (--parallel-starts 64), as before it existed.
    "unbounded-starts": { type: "boolean", default: false },
  },
});

if (values.child) {
  await directChild(values.child);
} else {
  const ROUNDS = Number(values.rounds);
  const WARM = Number(values.warm);
  const SETTLE_MS = Number(values["settle-ms"]);
  const BURST_N = Number(values["burst-n"]);
  const apps = values.apps.split(",").filter(Boolean);
  for (const app of [...apps, values["burst-app"]]) if (!INPUTS[app]) throw new Error(`no bench input for ${app}`);
  const cleanups = new Cleanups("removing the baseline worktree");
  try {
    const variants: Variant[] = [];
    if (values["baseline-ref"]) {
      const baseline = addBaselineWorktree(ROOT, values["baseline-ref"], cleanups);
      variants.push({ label: `${values["baseline-ref"]} (baseline)`, root: baseline.root });
    }
    const head = gitOutput(ROOT, ["rev-parse", "--short", "HEAD"]);
    const dirty = gitOutput(ROOT, ["status", "--porcelain", "--", "src"]) !== "";
    const here = `${head}${dirty ? "+" : ""}`;
    if (!values["skip-no-spare"]) variants.push({ label: `${here}, no spare`, env: { DARKROOM_SPARE_RUNNERS: "0" } });
    if (values["unbounded-starts"]) variants.push({ label: `${here}, 1 spare, starts not bounded`, env: { DARKROOM_PARALLEL_STARTS: "64" } });
    variants.push({ label: `${here}, 1 spare (default)` });

    type Row = { round: number; variant: string; app: string; direct: Direct; coldMs: number; warmMs: number; overheadMs: number; coldStart: unknown };
    const rows: Row[] = [];
    const bursts: { round: number; variant: string; app: string; direct: Direct; firstMs: number; lastMs: number; firstOverMs: number }[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 ? variants : [...variants].reverse();
      for (const app of apps) {
        const d = direct(app);
        for (const variant of order) {
          const r = await coldAndWarm(variant, app, SETTLE_MS, WARM);
          const overheadMs = r.coldMs - (d.importMs + d.setupMs + d.firstMs);
          rows.push({ round, variant: variant.label, app, direct: d, coldMs: r.coldMs, warmMs: r.warmMs, overheadMs, coldStart: r.coldStart });
          console.log(`round ${round} ${app} ${variant.label}: cold ${r.coldMs.toFixed(0)} ms (direct ${d.importMs.toFixed(0)}+${d.setupMs.toFixed(0)}+${d.firstMs.toFixed(0)}) overhead ${overheadMs.toFixed(0)} ms, warm ${r.warmMs.toFixed(1)} ms`);
        }
      }
      const app = values["burst-app"];
      const d = direct(app);
      for (const variant of order) {
        const b = await burst(variant, app, SETTLE_MS, BURST_N);
        const firstOverMs = b.firstMs - (d.setupMs + d.firstMs);
        bursts.push({ round, variant: variant.label, app, direct: d, ...b, firstOverMs });
        console.log(`round ${round} burst ${BURST_N}× ${app} ${variant.label}: first ${b.firstMs.toFixed(0)} ms (setup+run ${(d.setupMs + d.firstMs).toFixed(0)}, over by ${firstOverMs.toFixed(0)}), last ${b.lastMs.toFixed(0)} ms`);
      }
    }
    const summary: Record<string, Record<string, unknown>> = {};
    for (const variant of variants) {
      const byApp: Record<string, unknown> = {};
      for (const app of apps) {
        const mine = rows.filter((r) => r.variant === variant.label && r.app === app);
        byApp[app] = { overhead_ms: spread(mine.map((r) => r.overheadMs)), cold_ms: spread(mine.map((r) => r.coldMs)), warm_ms: spread(mine.map((r) => r.warmMs)) };
      }
      const b = bursts.filter((x) => x.variant === variant.label);
      byApp[`burst:${values["burst-app"]}`] = { first_ms: spread(b.map((x) => x.firstMs)), first_over_setup_and_run_ms: spread(b.map((x) => x.firstOverMs)), last_ms: spread(b.map((x) => x.lastMs)) };
      summary[variant.label] = byApp;
    }
    console.log(JSON.stringify(summary, null, 1));
    mkdirSync(path.join(ROOT, "bench/results"), { recursive: true });
    writeFileSync(
      path.join(ROOT, "bench/results/cold-start.json"),
      `${JSON.stringify({ command: `node --import tsx bench/cold-start.bench.ts --rounds ${ROUNDS} --warm ${WARM} --apps ${values.apps}${values["baseline-ref"] ? ` --baseline-ref ${values["baseline-ref"]}` : ""} --settle-ms ${SETTLE_MS} --burst-app ${values["burst-app"]} --burst-n ${BURST_N}${values["skip-no-spare"] ? " --skip-no-spare" : ""}${values["unbounded-starts"] ? " --unbounded-starts" : ""}`, date: new Date().toISOString(), machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version }, summary, rows, bursts }, null, 2)}\n`,
    );
  } finally {
    await cleanups.run();
  }
  process.exit(0);
}
