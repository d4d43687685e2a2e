/**
 * What a Python runner's cold start costs beyond Python's own start, its import of `darkroom_runner`
 * and the app's `setup()` (issue #16, goal 1, for the Python runner):
 *
 *   node --import tsx bench/python-cold-start.bench.ts --rounds 5
 *
 * One gateway (local runners off) knows `examples/python-echo` from a first registration. Per round:
 * - reference: a fresh `python3 -c` that imports darkroom_runner, loads the app module and runs its
 *   setup(), timed from the spawn to its exit (what the app needs whatever the platform does);
 * - cold: a sync `POST /run` of the app while no runner serves it, then `python -m darkroom_runner`
 *   is spawned; the time from that spawn to the response. Overhead = cold − reference: Python's
 *   argument parsing and logging, the registration, the first lease, the request's round trips.
 * - warm: three more sync requests to the same runner (the platform's per-request cost).
 * The runner is then killed; the next round starts another. Results: bench/results/python-cold-start.json.
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BENCH_AUTH, startBenchServer } from "./lib/bench-server.js";
import { spread } from "./lib/rounds.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const APP = "examples/python-echo";
const APP_FILE = "python/examples/echo_app.py";
const PYTHON = process.env["PYTHON"] ?? "python3";
const PY_ENV = { ...process.env, PYTHONPATH: path.join(ROOT, "python"), PYTHONUNBUFFERED: "1" };
const INPUT = JSON.stringify({ message: "hello", steps: 0 });

const { values } = parseArgs({ options: { rounds: { type: "string", default: "5" }, warm: { type: "string", default: "3" } } });
const ROUNDS = Number(values.rounds);
const WARM = Number(values.warm);

/** Python start + `import darkroom_runner` + the app module + setup(), from spawn to exit. */
function reference(): number {
  const script = `import darkroom_runner\nfrom darkroom_runner.__main__ import load_app\napp = load_app(${JSON.stringify(APP_FILE)})\napp.setup()\n`;
  const started = performance.now();
  const child = spawnSync(PYTHON, ["-c", script], { cwd: ROOT, env: PY_ENV, encoding: "utf8" });
  const ms = performance.now() - started;
  if (child.status !== 0) throw new Error(`reference failed: ${child.stderr}`);
  return ms;
}

async function runnerToken(base: string): Promise<string> {
  const res = await fetch(`${base}/v1/runner-tokens`, { method: "POST", headers: BENCH_AUTH, body: JSON.stringify({ apps: [APP] }) });
  const body = (await res.json()) as { token?: string };
  if (!res.ok || !body.token) throw new Error(`runner token: ${res.status} ${JSON.stringify(body)}`);
  return body.token;
}

function startRunner(base: string, token: string): { ready: Promise<void>; kill: () => Promise<void> } {
  const child = spawn(PYTHON, ["-m", "darkroom_runner", "--gateway", base, "--token", token, "--app", APP_FILE, "--log-level", "warning"], { cwd: ROOT, env: PY_ENV, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      if (/runner ready:/.test(stderr)) resolve();
    });
    void exited.then(() => reject(new Error(`runner exited: ${stderr}`)));
  });
  ready.catch(() => undefined);
  return {
    ready,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

async function run(base: string): Promise<void> {
  const res = await fetch(`${base}/run/${APP}`, { method: "POST", headers: BENCH_AUTH, body: INPUT });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${APP}: ${res.status} ${text.slice(0, 300)}`);
}

const server = await startBenchServer(["darkroom/echo"], { env: { DARKROOM_LOCAL_RUNNERS: "false", DARKROOM_LOG_LEVEL: "warn" } });
const rows: { round: number; referenceMs: number; coldMs: number; readyMs: number; overheadMs: number; warmMs: number }[] = [];
try {
  const token = await runnerToken(server.base);
  // The first registration makes the app known to the gateway (kept in its store), so requests to it
  // queue while no runner serves it.
  const first = startRunner(server.base, token);
  await first.ready;
  await run(server.base);
  await first.kill();
  for (let round = 1; round <= ROUNDS; round++) {
    const referenceMs = reference();
    const answered = run(server.base);
    // The request is queued (the gateway answers a sync call only when it ends) before the runner starts.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = performance.now();
    const runner = startRunner(server.base, token);
    let readyMs = NaN;
    void runner.ready.then(() => (readyMs = performance.now() - started));
    await answered;
    const coldMs = performance.now() - started;
    const warm: number[] = [];
    for (let i = 0; i < WARM; i++) {
      const t = performance.now();
      await run(server.base);
      warm.push(performance.now() - t);
    }
    await runner.kill();
    const row = { round, referenceMs, coldMs, readyMs, overheadMs: coldMs - referenceMs, warmMs: spread(warm).median };
    rows.push(row);
    console.log(`round ${round}: cold ${coldMs.toFixed(0)} ms (runner ready ${readyMs.toFixed(0)}), reference ${referenceMs.toFixed(0)} ms, overhead ${row.overheadMs.toFixed(0)} ms, warm ${row.warmMs.toFixed(1)} ms`);
  }
} finally {
  await server.close();
}
const summary = {
  reference_ms: spread(rows.map((r) => r.referenceMs)),
  cold_ms: spread(rows.map((r) => r.coldMs)),
  ready_ms: spread(rows.map((r) => r.readyMs)),
  overhead_ms: spread(rows.map((r) => r.overheadMs)),
  warm_ms: spread(rows.map((r) => r.warmMs)),
};
console.log(JSON.stringify(summary, null, 1));
const python = spawnSync(PYTHON, ["--version"], { encoding: "utf8" }).stdout.trim();
mkdirSync(path.join(ROOT, "bench/results"), { recursive: true });
writeFileSync(
  path.join(ROOT, "bench/results/python-cold-start.json"),
  `${JSON.stringify({ command: `node --import tsx bench/python-cold-start.bench.ts --rounds ${ROUNDS} --warm ${WARM}`, date: new Date().toISOString(), machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, python }, summary, rows }, null, 2)}\n`,
);
process.exit(0);
