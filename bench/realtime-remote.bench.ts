/**
 * What a realtime message costs when its app's runner is remote (the messages carried over the
 * runner protocol's long poll, src/scheduler/remote-calls.ts) against a runner the gateway started
 * itself (IPC), measured in the same run: the same app, the same client, one message at a time on a
 * WebSocket (fal's realtime: JSON in, msgpack out), latency from send to its result frame.
 *
 *   node --import tsx bench/realtime-remote.bench.ts --rounds 5 --messages 300
 *
 * Sides, each a real server (`darkroom serve`) on its own data folder:
 * - `node-local`: darkroom/echo's realtime endpoint on a runner the scheduler forked;
 * - `node-remote`: the same app on a gateway with --local-runners false and a `darkroom runner`
 *   process on the same machine;
 * - `python-local` and `python-remote` (when a Python with pydantic is found): the fal fixture app
 *   `test/fixtures/python/fal_chores.py::Chores` (`@fal.realtime`), started by the scheduler
 *   (`--apps`, JSON lines on fd 3) or as `python -m darkroom_runner --gateway …`.
 * Rounds alternate the sides; each reports p50 and p99 per message, and the remote side's added p50
 * over its local one. Results: bench/results/realtime-remote.json.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { decode } from "@msgpack/msgpack";
import WebSocket from "ws";
import { BENCH_AUTH, BENCH_KEY, startBenchServer, type BenchServer } from "./lib/bench-server.js";
import { quantile, summarizeRounds } from "./lib/rounds.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const { values } = parseArgs({ options: { rounds: { type: "string", default: "5" }, messages: { type: "string", default: "300" } } });
const ROUNDS = Number(values.rounds);
const MESSAGES = Number(values.messages);
const WARMUP = 30;
const CHORES_FILE = path.join(ROOT, "test/fixtures/python/fal_chores.py");

interface Side {
  name: string;
  app: string;
  server: BenchServer;
  runner: ChildProcess | null;
  message: (i: number) => Record<string, unknown>;
}

function pythonWithPydantic(): string | null {
  for (const python of [process.env["PYTHON"] ?? "python3", "/usr/bin/python3"]) {
    try {
      execFileSync(python, ["-c", "import pydantic"], { stdio: "ignore" });
      return python;
    } catch {
      // next
    }
  }
  return null;
}

async function runnerToken(server: BenchServer, app: string): Promise<string> {
  const res = await fetch(`${server.base}/v1/runner-tokens`, { method: "POST", headers: BENCH_AUTH, body: JSON.stringify({ apps: [app] }) });
  if (res.status !== 201) throw new Error(`minting a runner token: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

/** One message at a time: resolves with each message's send-to-result milliseconds. */
async function roundTrips(side: Side, n: number): Promise<number[]> {
  const socket = new WebSocket(`${side.server.base.replace(/^http/, "ws")}/${side.app}/realtime`, { headers: { authorization: `Key ${BENCH_KEY}` } });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  let waiting: ((frame: { binary: boolean; value: unknown }) => void) | null = null;
  socket.on("message", (data: Buffer, isBinary: boolean) => {
    const frame = { binary: isBinary, value: isBinary ? decode(data) : JSON.parse(data.toString("utf8")) };
    // Timings frames follow each result: only results and errors answer a message.
    if (!isBinary && (frame.value as { type?: string }).type === "x-fal-message") return;
    waiting?.(frame);
  });
  const times: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const answered = new Promise<{ binary: boolean; value: unknown }>((resolve) => (waiting = resolve));
      const started = performance.now();
      socket.send(JSON.stringify(side.message(i)));
      const frame = await answered;
      times.push(performance.now() - started);
      if (!frame.binary) throw new Error(`${side.name}: ${JSON.stringify(frame.value)}`);
    }
  } finally {
    socket.close();
  }
  return times;
}

async function waitForRunner(side: Side): Promise<void> {
  // A first message waits for the runner (registration, or the scheduler's first start).
  for (let i = 0; i < 100; i++) {
    try {
      await roundTrips(side, 1);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`${side.name}: no runner answered`);
}

async function startSides(): Promise<Side[]> {
  const sides: Side[] = [];
  const echoMessage = (i: number): Record<string, unknown> => ({ message: { i }, request_id: `m${i}` });
  const nodeLocal = await startBenchServer(["darkroom/echo"], { env: { DARKROOM_SPARE_RUNNERS: "0" } });
  sides.push({ name: "node-local", app: "darkroom/echo", server: nodeLocal, runner: null, message: echoMessage });
  const nodeRemote = await startBenchServer(["darkroom/echo"], { env: { DARKROOM_LOCAL_RUNNERS: "false" } });
  const nodeRunner = spawn(process.execPath, [path.join(ROOT, "bin/darkroom.js"), "runner", "--gateway", nodeRemote.base, "--token", await runnerToken(nodeRemote, "darkroom/echo"), "--app", "darkroom/echo"], { stdio: "ignore" });
  sides.push({ name: "node-remote", app: "darkroom/echo", server: nodeRemote, runner: nodeRunner, message: echoMessage });

  const python = pythonWithPydantic();
  if (python) {
    const choresMessage = (i: number): Record<string, unknown> => ({ text: `word ${i}`, request_id: `m${i}` });
    const pyEnv = { DARKROOM_PYTHON: python, DARKROOM_APPS: `${CHORES_FILE}::Chores` };
    const pyLocal = await startBenchServer(["tests/chores"], { env: { ...pyEnv, DARKROOM_SPARE_RUNNERS: "0" } });
    sides.push({ name: "python-local", app: "tests/chores", server: pyLocal, runner: null, message: choresMessage });
    const pyRemote = await startBenchServer(["tests/chores"], { env: { ...pyEnv, DARKROOM_LOCAL_RUNNERS: "false" } });
    const pyRunner = spawn(python, ["-m", "darkroom_runner", "--gateway", pyRemote.base, "--token", await runnerToken(pyRemote, "tests/chores"), "--app", `${CHORES_FILE}::Chores`], {
      env: { ...process.env, PYTHONPATH: path.join(ROOT, "python") },
      stdio: "ignore",
    });
    sides.push({ name: "python-remote", app: "tests/chores", server: pyRemote, runner: pyRunner, message: choresMessage });
  } else {
    console.log("no Python with pydantic: measuring the Node runner only");
  }
  for (const side of sides) await waitForRunner(side);
  return sides;
}

const sides = await startSides();
const rounds: Record<string, number>[] = [];
try {
  for (let round = 1; round <= ROUNDS; round++) {
    const result: Record<string, number> = {};
    // Alternate the order so that neither side always runs first.
    const order = round % 2 === 1 ? sides : [...sides].reverse();
    for (const side of order) {
      await roundTrips(side, WARMUP);
      const times = await roundTrips(side, MESSAGES);
      result[`${side.name}_p50_ms`] = quantile(times, 0.5);
      result[`${side.name}_p99_ms`] = quantile(times, 0.99);
    }
    for (const kind of ["node", "python"]) {
      const local = result[`${kind}-local_p50_ms`];
      const remote = result[`${kind}-remote_p50_ms`];
      if (local !== undefined && remote !== undefined) result[`${kind}_remote_added_p50_ms`] = remote - local;
    }
    rounds.push(result);
    console.log(`round ${round}: ${Object.entries(result).map(([k, v]) => `${k}=${v.toFixed(3)}`).join(" ")}`);
  }
} finally {
  for (const side of sides) {
    side.runner?.kill("SIGTERM");
    await side.server.close();
  }
}
// Prints the table of medians and spreads over rounds.
const summary = summarizeRounds(rounds);
writeFileSync(
  path.join(ROOT, "bench/results/realtime-remote.json"),
  `${JSON.stringify({ command: `node --import tsx bench/realtime-remote.bench.ts --rounds ${ROUNDS} --messages ${MESSAGES}`, date: new Date().toISOString(), machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, load_avg: os.loadavg() }, rounds, summary }, null, 1)}\n`,
);
