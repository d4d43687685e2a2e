/**
 * The paths the security pass of issue #13 changed (authentication, request bodies, file serving),
 * measured against the code before it in the same run.
 *
 *   node --import tsx bench/security-paths.bench.ts --rounds 5 --baseline-ref b254182 --wrk-seconds 5
 *   node --import tsx bench/security-paths.bench.ts --quick      # smoke run: 1 round, small N
 *
 * The baseline ref is checked out into a temporary git worktree (this checkout's `node_modules`
 * linked in), and `darkroom serve` (embedded SQLite, the echo app, the fixed bench admin key) runs
 * from each tree at once: "old" from the worktree, "new" from this checkout's working tree as it is,
 * uncommitted edits included. Each round measures both sides one after the other, old then new, then
 * new then old in the next round, so that a machine growing busier or quieter weighs on both alike.
 * Per side and round:
 * - auth, valid key: `GET /v1/requests?limit=1`, sequential, p50 and p99;
 * - auth, wrong secret, against a key made for the series, from a loopback address of its own (so
 *   that the new code's per-address failure budget never meets the bench key): "distinct", a new
 *   wrong secret on every attempt (a guesser), and "repeated", one wrong secret again and again (a
 *   client with a stale key); p50 of the 401 answers, p50 of all answers, and the 401 and 429 counts;
 * - body, small: `POST /run/darkroom/echo` with a ~100-byte JSON body, sequential, p50 and p99;
 * - body, 1 MiB JSON: `POST /queue/darkroom/echo` with `{"message": "<1 MiB of text>"}`, the
 *   submit's answer only (then the queue is left to drain, untimed), p50;
 * - file serving: `GET` of a 1 MiB file uploaded once (`POST /files/upload`), p50 and p99; a 64 KiB
 *   ranged GET, p50; and requests/s from wrk (`-t2 -c32`);
 * - queue-echo saturation: wrk submitting small requests to `POST /queue/darkroom/echo` (`-t1 -c64`,
 *   as queue-echo.bench.ts), requests/s accepted, and requests/s from the first submit until the
 *   last accepted request completed.
 * Every HTTP call comes from this process with Node's fetch, except the wrong-secret series, which
 * need a chosen source address and use node:http; the client is the same for both sides. Then per
 * metric the new/old ratio per round, and over rounds the median and min–max of each side and of the
 * ratio. Results go to bench/results/security-paths.json (a `--quick` run: security-paths.quick.json).
 * @module
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BENCH_AUTH, BENCH_KEY, startBenchServer, type BenchServer } from "./lib/bench-server.js";
import { median, quantile, spread, timed, type Summary } from "./lib/rounds.js";
import { addBaselineWorktree, Cleanups, gitOutput } from "./lib/baseline-worktree.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string" },
    quick: { type: "boolean", default: false },
    "baseline-ref": { type: "string", default: "b254182" },
    "wrk-seconds": { type: "string" },
  },
});
const QUICK = values.quick;
const ROUNDS = Number(values.rounds ?? (QUICK ? 1 : 5));
const BASELINE_REF = values["baseline-ref"];
const WRK_SECONDS = Number(values["wrk-seconds"] ?? (QUICK ? 2 : 5));
/** Samples per series; the wrong-secret series stay above the new code's 20 failures per address. */
const N = QUICK
  ? { authValid: 60, wrongSecret: 25, bodySmall: 60, bodyLarge: 8, fileGet: 60, fileRange: 30 }
  : { authValid: 300, wrongSecret: 50, bodySmall: 300, bodyLarge: 40, fileGet: 300, fileRange: 100 };
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const RESULTS = path.join(ROOT, "bench/results", QUICK ? "security-paths.quick.json" : "security-paths.json");
const GET_AUTH = { authorization: `Key ${BENCH_KEY}` };
const LARGE_BODY = JSON.stringify({ message: "a".repeat(1024 * 1024) });
const FILE_BYTES = 1024 * 1024;
const RANGE = { start: 512 * 1024, end: 512 * 1024 + 64 * 1024 - 1 };

type Side = "old" | "new";
type Metrics = Record<string, number>;

/**
 * The metrics compared between the sides (new/old ratio per round): `lower` ones are latencies,
 * `higher` ones throughputs. The 401/429 counts are recorded beside them, not compared as ratios.
 */
const COMPARED: readonly { key: string; label: string; better: "lower" | "higher" }[] = [
  { key: "auth_valid_p50_ms", label: "auth, valid key, p50 ms", better: "lower" },
  { key: "auth_valid_p99_ms", label: "auth, valid key, p99 ms", better: "lower" },
  { key: "auth_wrong_distinct_401_p50_ms", label: "auth, new wrong secret each time, p50 of 401s ms", better: "lower" },
  { key: "auth_wrong_distinct_all_p50_ms", label: "auth, new wrong secret each time, p50 of all answers ms", better: "lower" },
  { key: "auth_wrong_repeated_401_p50_ms", label: "auth, one wrong secret repeated, p50 of 401s ms", better: "lower" },
  { key: "body_small_p50_ms", label: "body ~100 B, sync run, p50 ms", better: "lower" },
  { key: "body_small_p99_ms", label: "body ~100 B, sync run, p99 ms", better: "lower" },
  { key: "body_1mib_submit_p50_ms", label: "body 1 MiB JSON, queue submit, p50 ms", better: "lower" },
  { key: "file_get_p50_ms", label: "file 1 MiB, GET p50 ms", better: "lower" },
  { key: "file_get_p99_ms", label: "file 1 MiB, GET p99 ms", better: "lower" },
  { key: "file_range_p50_ms", label: "file, 64 KiB ranged GET p50 ms", better: "lower" },
  { key: "file_get_rps_wrk", label: "file 1 MiB, GET req/s (wrk -t2 -c32)", better: "higher" },
  { key: "queue_accepted_rps_wrk", label: "queue-echo submits accepted req/s (wrk -t1 -c64)", better: "higher" },
  { key: "queue_completed_rps_wrk", label: "queue-echo submit → completion req/s (wrk)", better: "higher" },
];

// ---- the baseline worktree, and cleanup on the way out (errors and Ctrl-C included) ----

const cleanups = new Cleanups("stopping the servers and removing the baseline worktree");
const cleanup = (): Promise<void> => cleanups.run();
const git = (args: readonly string[]): string => gitOutput(ROOT, args);

// ---- clients ----

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function expectStatus(res: Response, status: number, what: string): Promise<void> {
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status}, expected ${status}: ${(await res.text()).slice(0, 300)}`);
}

function authValid(base: string, n: number): Promise<number[]> {
  return timed(n, async () => {
    const res = await fetch(`${base}/v1/requests?limit=1`, { headers: GET_AUTH });
    await expectStatus(res, 200, "GET /v1/requests");
    await res.arrayBuffer();
  });
}

let addresses = 0;
/** A loopback source address not used before in this run (Linux routes all of 127/8 to lo). */
function freshLoopbackAddress(): string {
  const k = addresses++;
  return `127.77.${Math.floor(k / 254)}.${(k % 254) + 1}`;
}

function httpGetStatus(url: URL, headers: http.OutgoingHttpHeaders, agent: http.Agent, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent, localAddress }, (res) => {
      res.once("error", reject);
      res.once("end", () => resolve(res.statusCode ?? 0));
      res.resume();
    });
    req.once("error", reject);
  });
}

interface WrongSecrets {
  p50_401_ms: number;
  p50_all_ms: number;
  n401: number;
  n429: number;
}

/**
 * n checks with a wrong secret for a key made for this series, from a fresh source address: the
 * new code counts failures per key id and per address for a minute, and the bench key must not
 * inherit them (a 429 on its next hash would stop the run).
 */
async function wrongSecrets(base: string, n: number, mode: "distinct" | "repeated"): Promise<WrongSecrets> {
  const created = await fetch(`${base}/v1/keys`, { method: "POST", headers: BENCH_AUTH, body: JSON.stringify({ name: `bench wrong secret (${mode})`, scope: "api" }) });
  await expectStatus(created, 201, "POST /v1/keys");
  const { id } = (await created.json()) as { id: string };
  const url = new URL(`${base}/v1/requests?limit=1`);
  const localAddress = freshLoopbackAddress();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const answers: { status: number; ms: number }[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const secret = mode === "distinct" ? `wrong-${String(i).padStart(6, "0")}-${"x".repeat(30)}` : `wrong-${"x".repeat(37)}`;
      const t = performance.now();
      const status = await httpGetStatus(url, { authorization: `Key ${id}:${secret}` }, agent, localAddress);
      answers.push({ status, ms: performance.now() - t });
      if (status !== 401 && status !== 429) throw new Error(`wrong secret answered ${status}, expected 401 or 429`);
    }
  } finally {
    agent.destroy();
  }
  const refused = answers.filter((a) => a.status === 401).map((a) => a.ms);
  return { p50_401_ms: median(refused), p50_all_ms: median(answers.map((a) => a.ms)), n401: refused.length, n429: answers.filter((a) => a.status === 429).length };
}

/** A ~100-byte body: `{"message":{"i":…,"text":"xx…"}}`. */
const smallBody = (i: number): string => JSON.stringify({ message: { i, text: "x".repeat(72) } });

function bodySmall(base: string, n: number): Promise<number[]> {
  return timed(n, async (i) => {
    const res = await fetch(`${base}/run/darkroom/echo`, { method: "POST", headers: BENCH_AUTH, body: smallBody(i) });
    await expectStatus(res, 200, "POST /run/darkroom/echo");
    await res.arrayBuffer();
  });
}

/** Submit times only; the echo app works through them meanwhile, and the queue drains afterwards. */
async function bodyLarge(base: string, n: number): Promise<number[]> {
  const out = await timed(n, async () => {
    const res = await fetch(`${base}/queue/darkroom/echo`, { method: "POST", headers: BENCH_AUTH, body: LARGE_BODY });
    await expectStatus(res, 200, "POST /queue/darkroom/echo (1 MiB)");
    await res.arrayBuffer();
  });
  await waitUntilDrained(base);
  return out;
}

/** Uploads the 1 MiB file the file metrics read, once per server; returns its URL. */
async function uploadFile(base: string): Promise<string> {
  const res = await fetch(`${base}/files/upload`, { method: "POST", headers: { ...GET_AUTH, "content-type": "image/png", "x-fal-file-name": "bench.png" }, body: randomBytes(FILE_BYTES) });
  await expectStatus(res, 200, "POST /files/upload");
  const { access_url } = (await res.json()) as { access_url: string };
  return access_url;
}

function fileGet(url: string, n: number): Promise<number[]> {
  return timed(n, async () => {
    const res = await fetch(url);
    await expectStatus(res, 200, "GET file");
    const got = (await res.arrayBuffer()).byteLength;
    if (got !== FILE_BYTES) throw new Error(`GET file: ${got} bytes, expected ${FILE_BYTES}`);
  });
}

function fileRange(url: string, n: number): Promise<number[]> {
  return timed(n, async () => {
    const res = await fetch(url, { headers: { range: `bytes=${RANGE.start}-${RANGE.end}` } });
    await expectStatus(res, 206, "ranged GET file");
    const got = (await res.arrayBuffer()).byteLength;
    if (got !== RANGE.end - RANGE.start + 1) throw new Error(`ranged GET file: ${got} bytes`);
  });
}

/** Done when nothing is queued or running: the last accepted request has completed. */
async function waitUntilDrained(base: string): Promise<void> {
  for (;;) {
    const res = await fetch(`${base}/v1/ops`, { headers: GET_AUTH });
    await expectStatus(res, 200, "GET /v1/ops");
    const ops = (await res.json()) as { apps: { app: string; queue_depth: number; runners: { in_flight: number }[] }[] };
    const echo = ops.apps.find((a) => a.app === "darkroom/echo");
    if (!echo) throw new Error("GET /v1/ops lists no darkroom/echo");
    if (echo.queue_depth === 0 && echo.runners.every((r) => r.in_flight === 0)) return;
    await sleep(5);
  }
}

// ---- wrk ----

const WRK_SCRIPT = path.join(os.tmpdir(), `darkroom-bench-security-${process.pid}.lua`);
const hasWrk = (): boolean => spawnSync("wrk", ["--version"]).error === undefined;

/** Runs wrk and returns its total requests and its "Requests/sec"; any non-2xx answer is an error. */
function wrk(args: readonly string[]): { requests: number; rps: number } {
  const out = spawnSync("wrk", args, { encoding: "utf8" });
  const requests = /(\d+) requests in/.exec(out.stdout)?.[1];
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out.stdout)?.[1];
  if (out.status !== 0 || !requests || !rps || /Non-2xx/.test(out.stdout)) throw new Error(`wrk ${args.join(" ")} failed: ${out.stdout}${out.stderr}`);
  return { requests: Number(requests), rps: Number(rps) };
}

function fileRpsWrk(url: string, seconds: number): number {
  return wrk(["-t2", "-c32", `-d${seconds}s`, url]).rps;
}

/** wrk submitting small requests, as queue-echo.bench.ts drives it; then waits for the queue to drain. */
async function queueWrk(base: string, seconds: number): Promise<{ accepted: number; completed: number }> {
  writeFileSync(
    WRK_SCRIPT,
    `wrk.method = "POST"\nwrk.body = '{"message":{"hello":"world"}}'\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Key ${BENCH_KEY}"\n`,
  );
  const t = performance.now();
  const { requests, rps } = wrk(["-t1", "-c64", `-d${seconds}s`, "-s", WRK_SCRIPT, `${base}/queue/darkroom/echo`]);
  await waitUntilDrained(base);
  return { accepted: rps, completed: requests / ((performance.now() - t) / 1000) };
}

// ---- one side, one round ----

interface Target {
  side: Side;
  server: BenchServer;
  fileUrl: string;
}

async function measure(target: Target, useWrk: boolean): Promise<Metrics> {
  const { base } = target.server;
  const valid = await authValid(base, N.authValid);
  const distinct = await wrongSecrets(base, N.wrongSecret, "distinct");
  const repeated = await wrongSecrets(base, N.wrongSecret, "repeated");
  const small = await bodySmall(base, N.bodySmall);
  const large = await bodyLarge(base, N.bodyLarge);
  const get = await fileGet(target.fileUrl, N.fileGet);
  const ranged = await fileRange(target.fileUrl, N.fileRange);
  const fileRps = useWrk ? fileRpsWrk(target.fileUrl, WRK_SECONDS) : NaN;
  const queue = useWrk ? await queueWrk(base, WRK_SECONDS) : { accepted: NaN, completed: NaN };
  return {
    auth_valid_p50_ms: median(valid),
    auth_valid_p99_ms: quantile(valid, 0.99),
    auth_wrong_distinct_401_p50_ms: distinct.p50_401_ms,
    auth_wrong_distinct_all_p50_ms: distinct.p50_all_ms,
    auth_wrong_distinct_401s: distinct.n401,
    auth_wrong_distinct_429s: distinct.n429,
    auth_wrong_repeated_401_p50_ms: repeated.p50_401_ms,
    auth_wrong_repeated_all_p50_ms: repeated.p50_all_ms,
    auth_wrong_repeated_401s: repeated.n401,
    auth_wrong_repeated_429s: repeated.n429,
    body_small_p50_ms: median(small),
    body_small_p99_ms: quantile(small, 0.99),
    body_1mib_submit_p50_ms: median(large),
    file_get_p50_ms: median(get),
    file_get_p99_ms: quantile(get, 0.99),
    file_range_p50_ms: median(ranged),
    file_get_rps_wrk: fileRps,
    queue_accepted_rps_wrk: queue.accepted,
    queue_completed_rps_wrk: queue.completed,
  };
}

/** Starts the app's runners and brings both processes' hot paths to speed before anything counts. */
async function warmUp(target: Target, useWrk: boolean): Promise<void> {
  const { base } = target.server;
  await authValid(base, 100);
  await bodySmall(base, 200);
  await bodyLarge(base, 3);
  await fileGet(target.fileUrl, 50);
  await fileRange(target.fileUrl, 20);
  if (useWrk) {
    fileRpsWrk(target.fileUrl, 1);
    await queueWrk(base, 1);
  }
}

// ---- summary ----

const fmt = (x: number, digits = 2): string => (Number.isFinite(x) ? x.toFixed(digits) : "—");
const fmtSpread = (s: { median: number; min: number; max: number }, digits = 2): string => `${fmt(s.median, digits)} [${fmt(s.min, digits)}–${fmt(s.max, digits)}]`;

function summarize(rounds: { old: Metrics; new: Metrics; ratio: Metrics }[]): { old: Summary; new: Summary; ratio: Summary } {
  const over = (pick: (r: { old: Metrics; new: Metrics; ratio: Metrics }) => Metrics): Summary => {
    const keys = Object.keys(pick(rounds[0] ?? { old: {}, new: {}, ratio: {} }));
    return Object.fromEntries(keys.map((k) => [k, spread(rounds.map((r) => pick(r)[k] ?? NaN))]));
  };
  const summary = { old: over((r) => r.old), new: over((r) => r.new), ratio: over((r) => r.ratio) };
  console.log(`\nMedian over ${rounds.length} round(s) [min–max]; new/old < 1 is faster for latencies, > 1 is faster for req/s.\n`);
  console.log("| metric | old (before) | new (after) | new/old |\n|---|---|---|---|");
  for (const { key, label, better } of COMPARED) {
    const digits = better === "higher" ? 0 : 2;
    const [o, n, r] = [summary.old[key], summary.new[key], summary.ratio[key]];
    if (o && n && r) console.log(`| ${label} | ${fmtSpread(o, digits)} | ${fmtSpread(n, digits)} | ${fmtSpread(r, 3)} |`);
  }
  for (const mode of ["distinct", "repeated"] as const) {
    const counts = (side: Side): string => `${fmt(summary[side][`auth_wrong_${mode}_401s`]?.median ?? NaN, 0)} × 401, ${fmt(summary[side][`auth_wrong_${mode}_429s`]?.median ?? NaN, 0)} × 429`;
    console.log(`| auth, ${mode === "distinct" ? "new wrong secret each time" : "one wrong secret repeated"}: answers of ${N.wrongSecret} (median) | ${counts("old")} | ${counts("new")} | |`);
  }
  return summary;
}

// ---- main ----

async function main(): Promise<void> {
  const loadAtStart = os.loadavg();
  const useWrk = hasWrk();
  if (!useWrk) console.log("wrk not found (apt-get install wrk): the req/s figures are left out");
  cleanups.push(() => rmSync(WRK_SCRIPT, { force: true }));
  const baseline = addBaselineWorktree(ROOT, BASELINE_REF, cleanups);
  const head = git(["rev-parse", "HEAD"]);
  const uncommitted = git(["status", "--porcelain", "--untracked-files=no", "--", "src", "bin", "package.json"]).split("\n").filter(Boolean).length;
  console.log(`old: ${BASELINE_REF} (${baseline.commit.slice(0, 12)}) in ${baseline.root}; new: this working tree, HEAD ${head.slice(0, 12)}${uncommitted ? ` + ${uncommitted} uncommitted file(s) under src/, bin/, package.json` : ""}`);

  const servers: Partial<Record<Side, BenchServer>> = {};
  cleanups.push(async () => {
    await Promise.all(Object.values(servers).map((s) => s.close()));
  });
  servers.old = await startBenchServer(["darkroom/echo"], { root: baseline.root });
  servers.new = await startBenchServer(["darkroom/echo"]);
  const targets: Record<Side, Target> = {
    old: { side: "old", server: servers.old, fileUrl: await uploadFile(servers.old.base) },
    new: { side: "new", server: servers.new, fileUrl: await uploadFile(servers.new.base) },
  };
  for (const side of ["old", "new"] as const) await warmUp(targets[side], useWrk);

  const rounds: { round: number; order: Side[]; load_avg: number[]; old: Metrics; new: Metrics; ratio: Metrics }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order: Side[] = r % 2 === 0 ? ["old", "new"] : ["new", "old"];
    const load = os.loadavg();
    const measured: Partial<Record<Side, Metrics>> = {};
    for (const side of order) {
      // A moment for the previous side's background work (checkpoints, GC, idle runners) to settle.
      await sleep(1000);
      measured[side] = await measure(targets[side], useWrk);
    }
    const old = measured.old ?? {};
    const now = measured.new ?? {};
    const ratio = Object.fromEntries(COMPARED.map(({ key }) => [key, (now[key] ?? NaN) / (old[key] ?? NaN)]));
    rounds.push({ round: r + 1, order, load_avg: load, old, new: now, ratio });
    console.log(`round ${r + 1} (${order.join(" → ")}, load ${load.map((x) => x.toFixed(2)).join(" ")}):`);
    for (const { key } of COMPARED) console.log(`  ${key}: old ${fmt(old[key] ?? NaN, 3)} new ${fmt(now[key] ?? NaN, 3)} ratio ${fmt(ratio[key] ?? NaN, 3)}`);
  }
  const summary = summarize(rounds);

  mkdirSync(path.dirname(RESULTS), { recursive: true });
  writeFileSync(
    RESULTS,
    `${JSON.stringify(
      {
        command: `node --import tsx bench/security-paths.bench.ts --rounds ${ROUNDS} --baseline-ref ${BASELINE_REF} --wrk-seconds ${WRK_SECONDS}${QUICK ? " --quick" : ""}`,
        quick: QUICK,
        samples: N,
        old: { ref: BASELINE_REF, commit: baseline.commit },
        new: { head, uncommitted_files_under_src_bin_package_json: uncommitted },
        clients: {
          latency: "Node's fetch in the bench process, sequential; wrong-secret series: node:http from a fresh loopback address each",
          wrk: useWrk ? spawnSync("wrk", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0] : "not installed",
        },
        date: new Date().toISOString(),
        machine: { cpu: os.cpus()[0]?.model, cpus: os.cpus().length, node: process.version, load_avg_at_start: loadAtStart },
        metrics: COMPARED,
        rounds,
        summary,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`\nwrote ${path.relative(ROOT, RESULTS)}`);
}

try {
  await main();
} finally {
  await cleanup();
}
