/**
 * What a queued echo request costs two versions of the server, in CPU, measured in short bursts that
 * alternate between them: the code at `--baseline-ref` (a temporary git worktree) and this checkout.
 *
 *   node --import tsx bench/echo-cost-ab.bench.ts --baseline-ref 529e401 --bursts 30 --burst-seconds 2
 *
 * Both servers (`darkroom serve`, embedded SQLite, only echo, spare runners off) are started once and
 * warmed up; then each burst pair loads one and then the other (the order flips every pair) with wrk
 * for `--burst-seconds`, each burst timed until every accepted request has completed, and reads
 * each server's CPU and its runners' from /proc over its own burst. A shared machine's load drifts
 * over seconds to minutes, and runs of a whole benchmark a side (queue-echo with --server-root) a
 * minute apart differed by more than the differences being looked for; pairs a few seconds apart
 * see nearly the same machine. Reported: the ratio of this checkout to the baseline per pair (CPU
 * per request, requests/s), with its median and quartiles, and each side's median.
 * Results: bench/results/echo-cost-ab.json (`--tag` adds a suffix).
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { addBaselineWorktree, Cleanups, gitOutput } from "./lib/baseline-worktree.js";
import { writeBenchResult } from "./lib/bench-result.js";
import { startBenchServer, type BenchServer } from "./lib/bench-server.js";
import { hasWrk, wrkThroughput } from "./lib/echo-rounds.js";
import { median, quantile } from "./lib/rounds.js";

const { values } = parseArgs({
  options: {
    "baseline-ref": { type: "string", default: "HEAD" },
    bursts: { type: "string", default: "30" },
    "burst-seconds": { type: "string", default: "2" },
    concurrency: { type: "string", default: "64" },
    tag: { type: "string" },
  },
});
const BURSTS = Number(values.bursts);
const BURST_SECONDS = Number(values["burst-seconds"]);
const CONCURRENCY = Number(values.concurrency);
const ROOT = fileURLToPath(new URL("../", import.meta.url));

interface Burst {
  cpu_us_per_request: number;
  requests_per_s: number;
  requests: number;
}

/** Builds a tree's compiled runner runtime where it has one, so that both sides start runners as `npm ci` leaves them. */
function buildRuntime(root: string): void {
  const script = path.join(root, "scripts/build-runtime.mjs");
  if (!existsSync(script)) return;
  const out = spawnSync(process.execPath, [script], { cwd: root, encoding: "utf8" });
  if (out.status !== 0) throw new Error(`build-runtime failed in ${root}: ${out.stderr}`);
}

async function burst(server: BenchServer): Promise<Burst> {
  const pid = server.process.pid;
  if (pid === undefined) throw new Error("the server has no pid");
  const r = await wrkThroughput(server.base, BURST_SECONDS, CONCURRENCY, pid);
  return { cpu_us_per_request: r.cpuUsPerRequest, requests_per_s: r.rps, requests: r.requests };
}

function spread(xs: number[]): { median: number; p25: number; p75: number; min: number; max: number } {
  return { median: median(xs), p25: quantile(xs, 0.25), p75: quantile(xs, 0.75), min: Math.min(...xs), max: Math.max(...xs) };
}

async function main(): Promise<void> {
  if (!hasWrk()) throw new Error("this benchmark needs wrk (apt-get install wrk)");
  const cleanups = new Cleanups("removing the baseline worktree and stopping the servers");
  try {
    const baseline = addBaselineWorktree(ROOT, values["baseline-ref"], cleanups);
    buildRuntime(baseline.root);
    buildRuntime(ROOT);
    const env = { DARKROOM_SPARE_RUNNERS: "0" };
    const servers = {
      baseline: await startBenchServer(["darkroom/echo"], { root: baseline.root, env }),
      head: await startBenchServer(["darkroom/echo"], { env }),
    };
    cleanups.push(() => servers.baseline.close());
    cleanups.push(() => servers.head.close());
    // Warm-up: runners started, both sides' code optimised, the databases past their first pages.
    for (let i = 0; i < 2; i++) for (const s of [servers.baseline, servers.head]) await burst(s);

    const pairs: { baseline: Burst; head: Burst; head_first: boolean }[] = [];
    for (let i = 0; i < BURSTS; i++) {
      const headFirst = i % 2 === 1;
      const first = await burst(headFirst ? servers.head : servers.baseline);
      const second = await burst(headFirst ? servers.baseline : servers.head);
      const pair = headFirst ? { baseline: second, head: first, head_first: true } : { baseline: first, head: second, head_first: false };
      pairs.push(pair);
      const ratio = pair.head.cpu_us_per_request / pair.baseline.cpu_us_per_request;
      console.log(`pair ${i + 1}: baseline ${pair.baseline.cpu_us_per_request.toFixed(0)} µs/req ${pair.baseline.requests_per_s.toFixed(0)} req/s, head ${pair.head.cpu_us_per_request.toFixed(0)} µs/req ${pair.head.requests_per_s.toFixed(0)} req/s, CPU ratio ${ratio.toFixed(3)}`);
    }
    const cpuRatios = pairs.map((p) => p.head.cpu_us_per_request / p.baseline.cpu_us_per_request);
    const rpsRatios = pairs.map((p) => p.head.requests_per_s / p.baseline.requests_per_s);
    const summary = {
      cpu_per_request_ratio: spread(cpuRatios),
      requests_per_s_ratio: spread(rpsRatios),
      baseline: { cpu_us_per_request: spread(pairs.map((p) => p.baseline.cpu_us_per_request)), requests_per_s: spread(pairs.map((p) => p.baseline.requests_per_s)) },
      head: { cpu_us_per_request: spread(pairs.map((p) => p.head.cpu_us_per_request)), requests_per_s: spread(pairs.map((p) => p.head.requests_per_s)) },
    };
    const c = summary.cpu_per_request_ratio;
    const r = summary.requests_per_s_ratio;
    console.log(`CPU per request, head ÷ baseline: median ${c.median.toFixed(3)} [quartiles ${c.p25.toFixed(3)}–${c.p75.toFixed(3)}]; requests/s: median ${r.median.toFixed(3)} [${r.p25.toFixed(3)}–${r.p75.toFixed(3)}]`);
    const tag = values.tag ? `.${values.tag}` : "";
    writeBenchResult(`echo-cost-ab${tag}`, `node --import tsx bench/echo-cost-ab.bench.ts --baseline-ref ${values["baseline-ref"]} --bursts ${BURSTS} --burst-seconds ${BURST_SECONDS} --concurrency ${CONCURRENCY}${values.tag ? ` --tag ${values.tag}` : ""}`, {
      baseline: { ref: values["baseline-ref"], commit: baseline.commit },
      head: { commit: gitOutput(ROOT, ["rev-parse", "HEAD"]), working_tree_changes: gitOutput(ROOT, ["status", "--porcelain", "--", "src"]).split("\n").filter(Boolean) },
      summary,
      pairs,
    });
  } finally {
    await cleanups.run();
  }
}

await main();
