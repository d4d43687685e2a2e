/**
 * Cold start and warm latency of every built-in model app, in process and through the platform, in
 * one run:
 *
 *   node --import tsx bench/app-latency.bench.ts --warm 5 [--apps upscale,ocr]
 *
 * Direct: a fresh Node process per app (so no other app's modules are loaded) imports the app
 * module, runs `setup()` and calls the handler `warm + 1` times; the first call is reported apart
 * (first inference grows heaps, compiles kernels), the rest as warm latency. Platform: a fresh
 * `darkroom serve --only <app>` per app; the first sync `POST /run` pays the cold start (runner
 * spawn, import, setup(), first inference), then `warm` sequential sync calls. The warm ratio is
 * platform ÷ direct of the medians (the platform's cost per request: HTTP, the input through the
 * store and IPC, the output stored and its URL returned). Inputs: bench/lib/app-inputs.ts.
 * Results: bench/results/app-latency.json.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { APP_INPUT_LABELS, APP_INPUTS } from "./lib/app-inputs.js";
import { BENCH_AUTH as AUTH, startBenchServer } from "./lib/bench-server.js";
import { loadAppDirect } from "./lib/direct-app.js";
import { spread } from "./lib/rounds.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

interface DirectResult {
  importMs: number;
  setupMs: number;
  firstMs: number;
  warmMs: number[];
}

/** The child side: one app, in this process, printing its timings as the last line of stdout. */
async function directChild(app: string, warm: number): Promise<void> {
  const direct = await loadAppDirect(path.join(ROOT, "src/apps", app, "app.ts"), APP_INPUTS[app]!());
  const firstMs = await direct.call(0);
  const warmMs: number[] = [];
  for (let i = 1; i <= warm; i++) warmMs.push(await direct.call(i));
  direct.close();
  const result: DirectResult = { importMs: direct.importMs, setupMs: direct.setupMs, firstMs, warmMs };
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

function direct(app: string, warm: number): DirectResult {
  const child = spawnSync(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--child", app, "--warm", String(warm)], {
    cwd: ROOT,
    encoding: "utf8",
    maxBuffer: 16 * 1024 * 1024,
  });
  const last = child.stdout.trim().split("\n").pop() ?? "";
  if (child.status !== 0 || !last.startsWith("{")) throw new Error(`direct ${app} failed: ${child.stderr}`);
  return JSON.parse(last) as DirectResult;
}

async function platform(app: string, warm: number): Promise<{ readyMs: number; coldMs: number; warmMs: number[] }> {
  const server = await startBenchServer([`darkroom/${app}`]);
  const body = JSON.stringify(APP_INPUTS[app]!());
  const run = async (): Promise<number> => {
    const started = performance.now();
    const res = await fetch(`${server.base}/run/darkroom/${app}`, { method: "POST", headers: AUTH, body });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${app}: ${res.status} ${text.slice(0, 300)}`);
    return performance.now() - started;
  };
  try {
    const coldMs = await run();
    const warmMs: number[] = [];
    for (let i = 0; i < warm; i++) warmMs.push(await run());
    return { readyMs: server.readyMs, coldMs, warmMs };
  } finally {
    await server.close();
  }
}

const { values } = parseArgs({ options: { child: { type: "string" }, warm: { type: "string", default: "5" }, apps: { type: "string" } } });
const WARM = Number(values.warm);
if (values.child) {
  await directChild(values.child, WARM);
} else {
  const apps = values.apps ? values.apps.split(",") : Object.keys(APP_INPUTS);
  const rows: Record<string, unknown>[] = [];
  for (const app of apps) {
    if (!APP_INPUTS[app]) throw new Error(`no bench input for ${app}`);
    // Direct first, then the platform, for each app: both sides see the same machine minutes.
    const d = direct(app, WARM);
    const p = await platform(app, WARM);
    const directWarm = spread(d.warmMs);
    const platformWarm = spread(p.warmMs);
    const row = {
      app: `darkroom/${app}`,
      input: APP_INPUT_LABELS[app],
      direct_import_ms: d.importMs,
      direct_setup_ms: d.setupMs,
      direct_first_ms: d.firstMs,
      direct_warm_ms: directWarm,
      platform_ready_ms: p.readyMs,
      platform_cold_first_request_ms: p.coldMs,
      platform_warm_ms: platformWarm,
      warm_ratio: platformWarm.median / directWarm.median,
    };
    rows.push(row);
    console.log(
      `${app}: import ${d.importMs.toFixed(0)} ms, setup ${d.setupMs.toFixed(0)} ms, first ${d.firstMs.toFixed(0)} ms, warm ${directWarm.median.toFixed(0)} ms` +
        ` | platform cold ${p.coldMs.toFixed(0)} ms, warm ${platformWarm.median.toFixed(0)} ms [${platformWarm.min.toFixed(0)}–${platformWarm.max.toFixed(0)}] | ratio ${row.warm_ratio.toFixed(2)}`,
    );
  }
  mkdirSync(path.join(ROOT, "bench/results"), { recursive: true });
  const file = path.join(ROOT, `bench/results/app-latency${values.apps ? `.${values.apps.replace(/[^a-z0-9-]+/g, "_")}` : ""}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ command: `node --import tsx bench/app-latency.bench.ts --warm ${WARM}${values.apps ? ` --apps ${values.apps}` : ""}`, date: new Date().toISOString(), machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, load_avg: os.loadavg() }, rows }, null, 2)}\n`,
  );
  process.exit(0);
}
