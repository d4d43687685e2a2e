/**
 * Fair share between tenants (issue #15): one tenant's request behind another tenant's flood, and
 * the split of runner slots between two weighted tenants that both keep the queue full, against a
 * baseline ref (the code before tenants) in the same run.
 *
 *   node --import tsx bench/fairness.bench.ts --rounds 5 --baseline-ref HEAD
 *   node --import tsx bench/fairness.bench.ts --rounds 5            # this working tree only
 *   node --import tsx bench/fairness.bench.ts --quick               # smoke run: 1 round, small floods
 *
 * Every measurement starts a fresh `darkroom serve` (embedded SQLite on a temporary data folder, only
 * the echo app, the fixed bench admin key) in a child process, so rounds and scenarios do not share a
 * queue: the leftovers of a flood go with the server (its stop lets the runner finish the requests it
 * holds, at most one echo sleep, and the data folder is deleted). The echo app runs with a fixed
 * number of runner slots, `--slots` (default 4): one runner started at boot (`--app-knobs
 * darkroom/echo:min_runners=1,max_runners=1,max_multiplexing=<slots>`), so that a flood really
 * queues; `--app-knobs <spec>` replaces that setting (e.g. `darkroom/echo:min_runners=2` for echo's
 * own 2 runners × 32, with `--slots 64` for the timeout and the aims). Two API keys are made as the
 * admin, `POST /v1/keys {"name", "scope": "api", "tenant"}`, for tenants `team-a` and `team-b`.
 * Scenarios, per round and side:
 *
 * - **flood**: tenant A submits `--flood` requests (default 600) of `--flood-ms` (1000) each
 *   (`POST /queue/darkroom/echo {"message": "a<i>", "sleep_ms": 1000}`, 16 in flight); once every
 *   one was accepted, tenant B submits one request of the same length. Measured: B's
 *   `queue_position` in the submit's answer, submit → IN_PROGRESS and submit → COMPLETED on the
 *   status stream (`GET …/status/stream`, read as it arrives; client clock), and the store's
 *   started_at − created_at of B (server clock). On the code before fair share B waits behind the
 *   whole flood (600 × 1 s ÷ 4 slots ≈ 150 s); `--b-timeout` (default 1.5 × that) bounds the wait,
 *   and a B that did not complete in time is recorded as NaN with `flood_b_completed` 0. Aim of the
 *   issue: B completes within 2.5 s.
 * - **weights**: tenants get weights with `PUT /v1/tenants/{name} {"weight": …}` (`--weight-a`,
 *   `--weight-b`, default 3 and 1; the code before tenants answers 404, which is recorded as
 *   `tenant_api` 0 and the run goes on), then both submit `--weights-n` requests (default 200 each)
 *   at once, interleaved (two clients, 8 in flight each), of `--weights-ms` (100–200 ms, the same
 *   pseudo-random length for the i-th request of either tenant). Once all completed, each request's
 *   started_at and finished_at are read back (`GET /v1/requests/{id}`, ms resolution). Both tenants
 *   have requests waiting from the first start until the earlier of the two tenants' last starts;
 *   the window is that stretch less `--window-trim` (20 %) at either end. Reported: tenant A's
 *   share of the slot time used in the window (each request's run clipped to the window) and of the
 *   starts in it. Aim: within 10 % of weight-a ÷ (weight-a + weight-b), 0.75 ± 0.075 for 3:1. Under
 *   oldest-first, interleaved submits give ≈ 0.5.
 *
 * Also recorded: the most requests seen running at once (from `/v1/ops` during the flood, and from
 * the weights scenario's start and finish times), which checks the slot setting. The baseline ref
 * is checked out into a temporary git worktree with this checkout's `node_modules` linked in;
 * "now" is this working tree as it is, uncommitted edits included; the two sides alternate order
 * every round. Per round the now/baseline ratio of B's times and of A's shares; over rounds the median and
 * min–max (NaNs left out, their number recorded). Results go to bench/results/fairness.json (a
 * `--quick` run: fairness.quick.json; `--tag <label>` adds `.<label>` before `.json`, for runs with
 * other settings).
 * @module
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BENCH_AUTH, startBenchServer, type BenchServer } from "./lib/bench-server.js";
import { median } from "./lib/rounds.js";
import { addBaselineWorktree, Cleanups, gitOutput } from "./lib/baseline-worktree.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string" },
    quick: { type: "boolean", default: false },
    "baseline-ref": { type: "string" },
    scenarios: { type: "string", default: "flood,weights" },
    slots: { type: "string", default: "4" },
    flood: { type: "string" },
    "flood-ms": { type: "string", default: "1000" },
    "b-timeout": { type: "string" },
    "weights-n": { type: "string" },
    "weights-ms": { type: "string", default: "100-200" },
    "weight-a": { type: "string", default: "3" },
    "weight-b": { type: "string", default: "1" },
    "window-trim": { type: "string", default: "0.2" },
    "app-knobs": { type: "string" },
    tag: { type: "string" },
  },
});
const QUICK = values.quick;
const ROUNDS = Number(values.rounds ?? (QUICK ? 1 : 5));
const BASELINE_REF = values["baseline-ref"];
const SCENARIOS = new Set(values.scenarios.split(",").map((s) => s.trim()));
const SLOTS = Number(values.slots);
const FLOOD = Number(values.flood ?? (QUICK ? 120 : 600));
const FLOOD_MS = Number(values["flood-ms"]);
/** Seconds B may wait: 1.5 × the time the whole flood takes on the slots, at least 30 s. */
const B_TIMEOUT_S = Number(values["b-timeout"] ?? Math.max(30, Math.ceil((1.5 * FLOOD * FLOOD_MS) / SLOTS / 1000)));
const WEIGHTS_N = Number(values["weights-n"] ?? (QUICK ? 60 : 200));
const [WEIGHTS_MS_LO, WEIGHTS_MS_HI] = ((): [number, number] => {
  const [lo = NaN, hi = lo] = values["weights-ms"].split("-").map(Number);
  return [lo, hi];
})();
const WEIGHT_A = Number(values["weight-a"]);
const WEIGHT_B = Number(values["weight-b"]);
const WINDOW_TRIM = Number(values["window-trim"]);
const SUBMIT_CONCURRENCY = 16;
const APP = "darkroom/echo";
/** One runner with `--slots` slots, started at boot; `--app-knobs` replaces it (then `--slots` should say how many slots it gives). */
const APP_KNOBS = values["app-knobs"] ?? `${APP}:min_runners=1,max_runners=1,max_multiplexing=${SLOTS}`;
const TENANTS = { a: "team-a", b: "team-b" } as const;
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const TAG = values.tag;
if (TAG !== undefined && !/^[\w.=-]+$/.test(TAG)) throw new Error("--tag must be letters, digits, '.', '_', '=' or '-'");
const RESULTS = path.join(ROOT, "bench/results", `fairness${QUICK ? ".quick" : ""}${TAG ? `.${TAG}` : ""}.json`);

for (const [name, v] of Object.entries({ rounds: ROUNDS, slots: SLOTS, flood: FLOOD, "flood-ms": FLOOD_MS, "b-timeout": B_TIMEOUT_S, "weights-n": WEIGHTS_N, "weight-a": WEIGHT_A, "weight-b": WEIGHT_B })) {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
}
if (!(WEIGHTS_MS_LO >= 0 && WEIGHTS_MS_HI >= WEIGHTS_MS_LO)) throw new Error("--weights-ms must be <lo>-<hi> in ms, e.g. 100-200");
if (!(WINDOW_TRIM >= 0 && WINDOW_TRIM < 0.5)) throw new Error("--window-trim must be in [0, 0.5)");
for (const s of SCENARIOS) if (s !== "flood" && s !== "weights") throw new Error(`unknown scenario "${s}" (flood, weights)`);

type Side = "baseline" | "now";
type Metrics = Record<string, number>;

const command = (): string =>
  [
    "node --import tsx bench/fairness.bench.ts",
    `--rounds ${ROUNDS}`,
    ...(BASELINE_REF ? [`--baseline-ref ${BASELINE_REF}`] : []),
    `--scenarios ${[...SCENARIOS].join(",")}`,
    `--slots ${SLOTS}`,
    ...(values["app-knobs"] ? [`--app-knobs '${APP_KNOBS}'`] : []),
    `--flood ${FLOOD} --flood-ms ${FLOOD_MS} --b-timeout ${B_TIMEOUT_S}`,
    `--weights-n ${WEIGHTS_N} --weights-ms ${WEIGHTS_MS_LO}-${WEIGHTS_MS_HI} --weight-a ${WEIGHT_A} --weight-b ${WEIGHT_B} --window-trim ${WINDOW_TRIM}`,
    ...(QUICK ? ["--quick"] : []),
    ...(TAG ? [`--tag ${TAG}`] : []),
  ].join(" ");

// ---- the baseline worktree, and cleanup on the way out (errors and Ctrl-C included) ----

const cleanups = new Cleanups("stopping the server and removing the baseline worktree");
const cleanup = (): Promise<void> => cleanups.run();
const git = (args: readonly string[]): string => gitOutput(ROOT, args);

// ---- clients ----

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const authOf = (key: string): Record<string, string> => ({ authorization: `Key ${key}`, "content-type": "application/json" });

async function api(base: string, method: string, route: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${route}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed };
}

/** Runs `n` jobs with at most `concurrency` at once; results in job order. */
async function pool<T>(n: number, concurrency: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(n);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      out[i] = await job(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker));
  return out;
}

interface Submitted {
  id: string;
  statusUrl: string;
  queuePosition: number;
}

/** `POST /queue/darkroom/echo`; a 429 or 503 (throttles, budgets) is retried after its Retry-After, as a client would. */
async function submit(base: string, key: string, input: Record<string, unknown>): Promise<Submitted> {
  for (let attempt = 0; ; attempt++) {
    const { status, body } = await api(base, "POST", `/queue/${APP}`, authOf(key), input);
    if ((status === 429 || status === 503) && attempt < 20) {
      await sleep(250 * (1 + Math.random()));
      continue;
    }
    if (status !== 200 || typeof body?.request_id !== "string") throw new Error(`submit answered ${status}: ${JSON.stringify(body).slice(0, 300)}`);
    return { id: body.request_id, statusUrl: body.status_url, queuePosition: Number(body.queue_position ?? NaN) };
  }
}

interface TenantSetup {
  keys: { a: string; b: string };
  /** The key's answer names its tenant (the field is dropped by code before tenants). */
  keyTenantShown: boolean;
  /** `PUT /v1/tenants/{name}` answers; null when the scenario sets no weights. */
  putStatus: number | null;
}

/** Two API keys, for tenants team-a and team-b, and (when given) their weights. */
async function setUpTenants(base: string, weights: { a: number; b: number } | null): Promise<TenantSetup> {
  const keys = { a: "", b: "" };
  let keyTenantShown = true;
  for (const t of ["a", "b"] as const) {
    const created = await api(base, "POST", "/v1/keys", BENCH_AUTH, { name: `bench ${TENANTS[t]}`, scope: "api", tenant: TENANTS[t] });
    if (created.status !== 201 || typeof created.body?.key !== "string") throw new Error(`POST /v1/keys answered ${created.status}: ${JSON.stringify(created.body).slice(0, 300)}`);
    keys[t] = created.body.key;
    keyTenantShown &&= created.body.tenant === TENANTS[t];
    // One check of the new secret before the floods, so that the key's first requests do not all
    // queue for a hash at once (the key-check throttle).
    const primed = await api(base, "GET", "/v1/requests?limit=1", authOf(keys[t]));
    if (primed.status !== 200) throw new Error(`GET /v1/requests with the ${TENANTS[t]} key answered ${primed.status}`);
  }
  let putStatus: number | null = null;
  if (weights) {
    for (const t of ["a", "b"] as const) {
      const put = await api(base, "PUT", `/v1/tenants/${TENANTS[t]}`, BENCH_AUTH, { weight: weights[t] });
      putStatus = put.status;
      if (put.status === 404) break; // no tenants API: the code before fair share
      if (put.status < 200 || put.status > 299) throw new Error(`PUT /v1/tenants/${TENANTS[t]} answered ${put.status}: ${JSON.stringify(put.body).slice(0, 300)}`);
    }
  }
  return { keys, keyTenantShown, putStatus };
}

/** A server with the echo app on `--slots` slots, its runner started and warm. */
async function startServer(root: string | undefined): Promise<BenchServer> {
  const server = await startBenchServer([APP], { appKnobs: APP_KNOBS, ...(root ? { root } : {}) });
  try {
    const warm = await api(server.base, "POST", `/run/${APP}`, BENCH_AUTH, { message: "warm-up" });
    if (warm.status !== 200) throw new Error(`warm-up run answered ${warm.status}`);
    return server;
  } catch (err) {
    await server.close();
    throw err;
  }
}

interface OpsSample {
  queueDepth: number;
  inFlight: number;
  runners: number;
}

async function opsSample(base: string): Promise<OpsSample> {
  const { body } = await api(base, "GET", "/v1/ops", BENCH_AUTH);
  const echo = (body?.apps as { app: string; queue_depth: number; runners: { in_flight: number }[] }[] | undefined)?.find((a) => a.app === APP);
  if (!echo) throw new Error("GET /v1/ops: no echo pool");
  return { queueDepth: echo.queue_depth, inFlight: echo.runners.reduce((s, r) => s + r.in_flight, 0), runners: echo.runners.length };
}

/** Samples /v1/ops every `everyMs` until stopped: the most requests running at once, and the most runners. */
function opsSampler(base: string, everyMs: number): { stop: () => Promise<{ maxInFlight: number; maxRunners: number }> } {
  let maxInFlight = 0;
  let maxRunners = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const s = await opsSample(base);
        maxInFlight = Math.max(maxInFlight, s.inFlight);
        maxRunners = Math.max(maxRunners, s.runners);
      } catch {
        // a sample lost under load changes nothing
      }
      await sleep(everyMs);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { maxInFlight, maxRunners };
    },
  };
}

/**
 * Follows a request's status stream from `t0` (performance.now() before its submit): when it was
 * first seen IN_PROGRESS and COMPLETED (ms since t0), NaN for what did not happen within the timeout.
 */
async function followStream(statusUrl: string, key: string, t0: number, timeoutMs: number): Promise<{ startedMs: number; completedMs: number; error: string | null }> {
  let startedMs = NaN;
  let completedMs = NaN;
  let error: string | null = null;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), Math.max(0, t0 + timeoutMs - performance.now()));
  try {
    const res = await fetch(`${statusUrl}/stream`, { headers: authOf(key), signal: controller.signal });
    if (res.status !== 200 || !res.body) throw new Error(`status stream answered ${res.status}`);
    const decoder = new TextDecoder();
    let buffered = "";
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      const now = performance.now() - t0;
      buffered += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const data = event
          .split("\n")
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trim())
          .join("\n");
        if (!data) continue;
        const status = JSON.parse(data) as { status?: string; error?: string };
        if (status.status === "IN_PROGRESS" && Number.isNaN(startedMs)) startedMs = now;
        if (status.status === "COMPLETED") {
          if (Number.isNaN(startedMs)) startedMs = now;
          completedMs = now;
          error = status.error ?? null;
        }
      }
      if (!Number.isNaN(completedMs)) break;
    }
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return { startedMs, completedMs, error };
}

// ---- scenario 1: one request behind a flood ----

async function floodScenario(server: BenchServer): Promise<{ metrics: Metrics; keyTenantShown: boolean }> {
  const { base } = server;
  const setup = await setUpTenants(base, null);
  const sampler = opsSampler(base, 250);
  try {
    const tFlood = performance.now();
    await pool(FLOOD, SUBMIT_CONCURRENCY, (i) => submit(base, setup.keys.a, { message: `a${i}`, sleep_ms: FLOOD_MS }));
    const floodAcceptedS = (performance.now() - tFlood) / 1000;
    const before = await opsSample(base);

    const t0 = performance.now();
    const b = await submit(base, setup.keys.b, { message: "b", sleep_ms: FLOOD_MS });
    const submitMs = performance.now() - t0;
    const seen = await followStream(b.statusUrl, setup.keys.b, t0, B_TIMEOUT_S * 1000);
    if (seen.error) throw new Error(`B's request failed: ${seen.error}`);
    const record = (await api(base, "GET", `/v1/requests/${b.id}`, authOf(setup.keys.b))).body as { created_at?: string; started_at?: string | null; finished_at?: string | null };
    const createdAt = Date.parse(record.created_at ?? "");
    const serverWaitS = record.started_at ? (Date.parse(record.started_at) - createdAt) / 1000 : NaN;
    const serverTotalS = record.finished_at ? (Date.parse(record.finished_at) - createdAt) / 1000 : NaN;
    const ops = await sampler.stop();
    return {
      keyTenantShown: setup.keyTenantShown,
      metrics: {
        flood_b_submit_to_completed_s: seen.completedMs / 1000,
        flood_b_submit_to_start_s: seen.startedMs / 1000,
        flood_b_queue_position: b.queuePosition,
        flood_b_completed: Number.isNaN(seen.completedMs) ? 0 : 1,
        flood_b_submit_answer_ms: submitMs,
        flood_b_server_wait_s: serverWaitS,
        flood_b_server_total_s: serverTotalS,
        flood_a_accepted_s: floodAcceptedS,
        flood_a_queued_at_b_submit: before.queueDepth,
        flood_max_running: ops.maxInFlight,
        flood_runners: ops.maxRunners,
      },
    };
  } finally {
    await sampler.stop();
  }
}

// ---- scenario 2: weighted tenants, both backlogged ----

/** The i-th request's length in ms, the same for both tenants: a fixed pseudo-random sequence. */
function weightsSleepMs(i: number): number {
  let x = (i + 1) * 2654435761;
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x45d9f3b) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  return WEIGHTS_MS_LO + (x % (WEIGHTS_MS_HI - WEIGHTS_MS_LO + 1));
}

interface Run {
  tenant: "a" | "b";
  start: number;
  end: number;
}

/** The share of tenant A in the middle of the stretch where both tenants had requests waiting. */
function windowShares(runs: readonly Run[], trim: number): Metrics {
  const lastStart = (t: "a" | "b"): number => Math.max(...runs.filter((r) => r.tenant === t).map((r) => r.start));
  const first = Math.min(...runs.map((r) => r.start));
  const backloggedUntil = Math.min(lastStart("a"), lastStart("b"));
  const span = backloggedUntil - first;
  const from = first + trim * span;
  const to = backloggedUntil - trim * span;
  let startsA = 0;
  let startsB = 0;
  let timeA = 0;
  let timeB = 0;
  for (const r of runs) {
    if (r.start >= from && r.start < to) {
      if (r.tenant === "a") startsA++;
      else startsB++;
    }
    const overlap = Math.max(0, Math.min(r.end, to) - Math.max(r.start, from));
    if (r.tenant === "a") timeA += overlap;
    else timeB += overlap;
  }
  // The most requests running at once, from the start and finish times. A finish and the claim of
  // the next request share a commit, but their times are taken apart (the next start can read a
  // millisecond or two before the previous finish): a finish counts up to 10 ms early.
  const edges = runs.flatMap((r): [number, number][] => [
    [r.start, 1],
    [r.end - 10, -1],
  ]);
  edges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let running = 0;
  let maxRunning = 0;
  for (const [, d] of edges) maxRunning = Math.max(maxRunning, (running += d));
  return {
    weights_share_a_slot_time: timeA / (timeA + timeB),
    weights_share_a_starts: startsA / (startsA + startsB),
    weights_window_starts: startsA + startsB,
    weights_window_s: (to - from) / 1000,
    weights_backlogged_s: span / 1000,
    weights_max_running: maxRunning,
  };
}

async function weightsScenario(server: BenchServer): Promise<{ metrics: Metrics; keyTenantShown: boolean; tenantApi: boolean }> {
  const { base } = server;
  const setup = await setUpTenants(base, { a: WEIGHT_A, b: WEIGHT_B });
  const tenantApi = setup.putStatus !== null && setup.putStatus >= 200 && setup.putStatus <= 299;
  const t0 = performance.now();
  // Both tenants submit at once, 8 in flight each, so that oldest-first interleaves them.
  const [a, b] = await Promise.all(
    (["a", "b"] as const).map((t) => pool(WEIGHTS_N, SUBMIT_CONCURRENCY / 2, (i) => submit(base, setup.keys[t], { message: `${t}${i}`, sleep_ms: weightsSleepMs(i) }))),
  );
  const acceptedS = (performance.now() - t0) / 1000;
  const workS = (2 * WEIGHTS_N * (WEIGHTS_MS_LO + WEIGHTS_MS_HI)) / 2 / SLOTS / 1000;
  const deadline = performance.now() + Math.max(60, 4 * workS) * 1000;
  for (;;) {
    const s = await opsSample(base);
    if (s.queueDepth === 0 && s.inFlight === 0) break;
    if (performance.now() > deadline) throw new Error(`weights: still ${s.queueDepth} queued and ${s.inFlight} running after ${Math.max(60, 4 * workS)} s`);
    await sleep(200);
  }
  const drainedS = (performance.now() - t0) / 1000;
  const requests = [...(a ?? []).map((r) => ({ tenant: "a" as const, id: r.id })), ...(b ?? []).map((r) => ({ tenant: "b" as const, id: r.id }))];
  const runs = await pool(requests.length, 8, async (i): Promise<Run> => {
    const { tenant, id } = requests[i]!;
    const { status, body } = await api(base, "GET", `/v1/requests/${id}`, authOf(setup.keys[tenant]));
    if (status !== 200 || body?.state !== "SUCCEEDED" || !body.started_at || !body.finished_at) throw new Error(`request ${id} of ${tenant}: ${status} ${JSON.stringify(body).slice(0, 300)}`);
    return { tenant, start: Date.parse(body.started_at), end: Date.parse(body.finished_at) };
  });
  return {
    keyTenantShown: setup.keyTenantShown,
    tenantApi,
    metrics: { ...windowShares(runs, WINDOW_TRIM), weights_accepted_s: acceptedS, weights_all_done_s: drainedS, weights_tenant_api: tenantApi ? 1 : 0 },
  };
}

// ---- rounds and summary ----

const fmt = (x: number, digits = 2): string => (Number.isFinite(x) ? x.toFixed(digits) : "—");

interface FiniteSpread {
  median: number;
  min: number;
  max: number;
  /** Rounds whose value was NaN (B did not complete in time), left out of the median. */
  missing: number;
}

function spreadOf(xs: number[]): FiniteSpread {
  const finite = xs.filter(Number.isFinite);
  return finite.length === 0
    ? { median: NaN, min: NaN, max: NaN, missing: xs.length }
    : { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), missing: xs.length - finite.length };
}
const fmtSpread = (s: FiniteSpread | undefined, digits = 2): string =>
  s ? `${fmt(s.median, digits)} [${fmt(s.min, digits)}–${fmt(s.max, digits)}]${s.missing ? ` (${s.missing} × none)` : ""}` : "—";

/** The metrics with a now/baseline ratio per round. */
const RATIOS = ["flood_b_submit_to_completed_s", "flood_b_submit_to_start_s", "flood_b_server_wait_s", "weights_share_a_slot_time", "weights_share_a_starts"];

const ROWS: { key: string; label: string; digits: number }[] = [
  { key: "flood_b_submit_to_completed_s", label: "flood: B submit → COMPLETED, s (aim ≤ 2.5)", digits: 2 },
  { key: "flood_b_submit_to_start_s", label: "flood: B submit → IN_PROGRESS, s", digits: 2 },
  { key: "flood_b_server_wait_s", label: "flood: B created → started (store), s", digits: 3 },
  { key: "flood_b_queue_position", label: "flood: B's queue_position at submit", digits: 0 },
  { key: "flood_a_queued_at_b_submit", label: "flood: requests queued when B submitted", digits: 0 },
  { key: "flood_a_accepted_s", label: "flood: A's submits all accepted, s", digits: 2 },
  { key: "flood_max_running", label: "flood: most requests running at once (/v1/ops)", digits: 0 },
  { key: "weights_share_a_slot_time", label: `weights ${WEIGHT_A}:${WEIGHT_B}: A's share of slot time (aim ${fmt(WEIGHT_A / (WEIGHT_A + WEIGHT_B), 3)} ± 10 %)`, digits: 3 },
  { key: "weights_share_a_starts", label: `weights ${WEIGHT_A}:${WEIGHT_B}: A's share of starts`, digits: 3 },
  { key: "weights_window_starts", label: "weights: starts in the window", digits: 0 },
  { key: "weights_window_s", label: "weights: window, s", digits: 2 },
  { key: "weights_max_running", label: "weights: most requests running at once", digits: 0 },
  { key: "weights_tenant_api", label: "weights: PUT /v1/tenants accepted (1) or 404 (0)", digits: 0 },
];

async function measure(root: string | undefined): Promise<{ metrics: Metrics; notes: Record<string, unknown> }> {
  const metrics: Metrics = {};
  const notes: Record<string, unknown> = {};
  for (const scenario of ["flood", "weights"] as const) {
    if (!SCENARIOS.has(scenario)) continue;
    const server = await startServer(root);
    cleanups.push(() => server.close());
    try {
      if (scenario === "flood") {
        const out = await floodScenario(server);
        Object.assign(metrics, out.metrics);
        notes["key_tenant_shown"] = out.keyTenantShown;
      } else {
        const out = await weightsScenario(server);
        Object.assign(metrics, out.metrics);
        notes["key_tenant_shown"] = out.keyTenantShown;
        notes["tenant_api"] = out.tenantApi;
      }
    } finally {
      cleanups.pop();
      await server.close();
    }
  }
  return { metrics, notes };
}

async function main(): Promise<void> {
  const loadAtStart = os.loadavg();
  const head = git(["rev-parse", "HEAD"]);
  const changedFiles = git(["status", "--porcelain", "--untracked-files=all", "--", "src", "bin", "package.json"])
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  const uncommitted = changedFiles.length;
  const baseline = BASELINE_REF ? addBaselineWorktree(ROOT, BASELINE_REF, cleanups) : null;
  const sides: Side[] = baseline ? ["baseline", "now"] : ["now"];
  console.log(`echo with ${SLOTS} slots (--app-knobs ${APP_KNOBS}); flood ${FLOOD} × ${FLOOD_MS} ms, B waits at most ${B_TIMEOUT_S} s; weights ${WEIGHT_A}:${WEIGHT_B}, ${WEIGHTS_N} × ${WEIGHTS_MS_LO}–${WEIGHTS_MS_HI} ms each`);
  console.log(
    `${baseline ? `baseline: ${BASELINE_REF} (${baseline.commit.slice(0, 12)}) in ${baseline.root}; ` : ""}now: this working tree, HEAD ${head.slice(0, 12)}${uncommitted ? ` + ${uncommitted} changed or new file(s) under src/, bin/, package.json` : ""}`,
  );

  const rounds: { round: number; order: Side[]; load_avg: number[]; baseline?: Metrics; now: Metrics; ratio?: Metrics; notes: Partial<Record<Side, Record<string, unknown>>> }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? sides : [...sides].reverse();
    const load = os.loadavg();
    const measured: Partial<Record<Side, Metrics>> = {};
    const notes: Partial<Record<Side, Record<string, unknown>>> = {};
    for (const side of order) {
      const out = await measure(side === "baseline" ? baseline?.root : undefined);
      measured[side] = out.metrics;
      notes[side] = out.notes;
      console.log(`round ${r + 1} ${side}: ${Object.entries(out.metrics).map(([k, v]) => `${k}=${fmt(v, 3)}`).join(" ")} ${JSON.stringify(out.notes)}`);
    }
    const now = measured.now ?? {};
    const entry: (typeof rounds)[number] = { round: r + 1, order, load_avg: load, now, notes };
    if (measured.baseline) {
      const old = measured.baseline;
      entry.baseline = old;
      entry.ratio = Object.fromEntries(RATIOS.filter((k) => k in now).map((k) => [k, (now[k] ?? NaN) / (old[k] ?? NaN)]));
    }
    rounds.push(entry);
  }

  const over = (pick: (r: (typeof rounds)[number]) => Metrics | undefined): Record<string, FiniteSpread> => {
    const keys = Object.keys(pick(rounds[0]!) ?? {});
    return Object.fromEntries(keys.map((k) => [k, spreadOf(rounds.map((r) => pick(r)?.[k] ?? NaN))]));
  };
  const summary = { now: over((r) => r.now), ...(baseline ? { baseline: over((r) => r.baseline), ratio: over((r) => r.ratio) } : {}) };
  // The ratio of the medians too: a baseline B that never completed leaves the per-round ratio NaN.
  const ratioOfMedians = baseline ? Object.fromEntries(RATIOS.filter((k) => summary.now[k]).map((k) => [k, (summary.now[k]?.median ?? NaN) / (summary.baseline?.[k]?.median ?? NaN)])) : undefined;

  console.log(`\n${command()}\nMedian over ${rounds.length} round(s) [min–max]${baseline ? "; now/baseline: median of the per-round ratios [min–max]" : ""}.\n`);
  console.log(baseline ? `| metric | baseline (${BASELINE_REF}) | now | now/baseline |\n|---|---|---|---|` : "| metric | now |\n|---|---|");
  for (const { key, label, digits } of ROWS) {
    if (!summary.now[key]) continue;
    if (baseline) console.log(`| ${label} | ${fmtSpread(summary.baseline?.[key], digits)} | ${fmtSpread(summary.now[key], digits)} | ${summary.ratio?.[key] ? fmtSpread(summary.ratio[key], 3) : ""} |`);
    else console.log(`| ${label} | ${fmtSpread(summary.now[key], digits)} |`);
  }
  const flood = summary.now["flood_b_submit_to_completed_s"];
  if (flood) console.log(`\nflood aim (B ≤ 2.5 s in every round): ${flood.missing === 0 && flood.max <= 2.5 ? "met" : "not met"} (now: max ${fmt(flood.max)} s${flood.missing ? `, ${flood.missing} round(s) without completion` : ""})`);
  const share = summary.now["weights_share_a_slot_time"];
  if (share) {
    const aim = WEIGHT_A / (WEIGHT_A + WEIGHT_B);
    console.log(`weights aim (A's slot share within 10 % of ${fmt(aim, 3)} in every round): ${Math.abs(share.min - aim) <= 0.1 * aim && Math.abs(share.max - aim) <= 0.1 * aim ? "met" : "not met"} (now: ${fmtSpread(share, 3)})`);
  }

  mkdirSync(path.dirname(RESULTS), { recursive: true });
  writeFileSync(
    RESULTS,
    `${JSON.stringify(
      {
        command: command(),
        quick: QUICK,
        setup: {
          app: APP,
          app_knobs: APP_KNOBS,
          slots: SLOTS,
          flood: { requests: FLOOD, sleep_ms: FLOOD_MS, b_timeout_s: B_TIMEOUT_S, submit_concurrency: SUBMIT_CONCURRENCY },
          weights: { weight_a: WEIGHT_A, weight_b: WEIGHT_B, requests_each: WEIGHTS_N, sleep_ms: [WEIGHTS_MS_LO, WEIGHTS_MS_HI], window_trim: WINDOW_TRIM, submit_concurrency_each: SUBMIT_CONCURRENCY / 2 },
          tenants: TENANTS,
          store: "embedded SQLite, a fresh data folder per scenario and round",
        },
        baseline: baseline ? { ref: BASELINE_REF, commit: baseline.commit } : null,
        now: { head, changed_or_new_files_under_src_bin_package_json: changedFiles },
        date: new Date().toISOString(),
        machine: { cpu: os.cpus()[0]?.model, cpus: os.cpus().length, node: process.version, load_avg_at_start: loadAtStart },
        rounds,
        summary,
        ...(ratioOfMedians ? { ratio_of_medians: ratioOfMedians } : {}),
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
