/**
 * End-to-end overhead of the platform with the echo app, against calling the same handler
 * in-process (the baseline, measured in the same run).
 *
 *   npm run bench                    # default: 5 rounds
 *   node --import tsx bench/queue-echo.bench.ts --rounds 5 --latency-n 300 --throughput-n 4000 --concurrency 64
 *
 * It starts a real server (`darkroom serve`, embedded SQLite, one echo app) in a child process on a
 * temporary data folder, so that the load generator and the server do not share an event loop, and
 * reports per round, then the median and spread (min–max) over rounds:
 * - in-process handler latency (baseline), and GET /health as the HTTP floor of this client (context:
 *   the added latency includes it, since the baseline makes no HTTP call);
 * - sync run latency (POST /run) and its added latency over the baseline, p50 and p99;
 * - queue latency: submit, then completion seen over the SSE status stream, p50 and p99;
 * - queued requests/s at saturation, submit to completion: N submits from Node's fetch with
 *   `concurrency` in flight, and (when `wrk` is installed) wrk submitting for `--wrk-seconds`; each is
 *   timed until every accepted request has completed. For the wrk phase also the CPU the server and
 *   its runners used per request (from /proc), which another process's load disturbs far less than
 *   wall time.
 * `--server-root DIR` runs another checkout's server (a worktree of an older commit) under this
 * client, for before/after comparisons. Node's fetch costs more CPU per request than
 *   the server does, so on 2 cores the wrk figure is the one that measures the server.
 * Results are written to bench/results/queue-echo.json.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { parseArgs } from "node:util";
import { median, quantile, summarizeRounds, timed } from "./lib/rounds.js";
import { BENCH_AUTH, startBenchServer } from "./lib/bench-server.js";
import { contextWithoutFiles } from "./lib/direct-context.js";
import { directEchoLatencies, hasWrk, healthLatencies, syncEchoLatencies, waitUntilDrained, wrkThroughput, writeRoundResults } from "./lib/echo-rounds.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    "latency-n": { type: "string", default: "300" },
    "throughput-n": { type: "string", default: "4000" },
    concurrency: { type: "string", default: "64" },
    "wrk-seconds": { type: "string", default: "5" },
    // Another checkout's server (a git worktree of an older commit) under this bench's client, so
    // that a before/after comparison measures both servers the same way.
    "server-root": { type: "string" },
  },
});
const ROUNDS = Number(values.rounds);
const LATENCY_N = Number(values["latency-n"]);
const THROUGHPUT_N = Number(values["throughput-n"]);
const CONCURRENCY = Number(values.concurrency);
const WRK_SECONDS = Number(values["wrk-seconds"]);
const AUTH = BENCH_AUTH;

/** Submit, then read the status stream until COMPLETED. */
function queueLatencies(base: string, n: number): Promise<number[]> {
  return timed(n, async (i) => {
    const submitted = await fetch(`${base}/queue/darkroom/echo`, { method: "POST", headers: AUTH, body: JSON.stringify({ message: { i } }) });
    const { status_url } = (await submitted.json()) as { status_url: string };
    const stream = await fetch(`${status_url}/stream`, { headers: AUTH });
    const text = await stream.text(); // the server closes the stream after COMPLETED
    if (!text.includes('"COMPLETED"')) throw new Error("stream ended without COMPLETED");
  });
}

async function throughput(base: string, n: number, concurrency: number): Promise<number> {
  const t = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const res = await fetch(`${base}/queue/darkroom/echo`, { method: "POST", headers: AUTH, body: JSON.stringify({ message: { i } }) });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`submit returned ${res.status}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await waitUntilDrained(base);
  return n / ((performance.now() - t) / 1000);
}

async function main(): Promise<void> {
  const server = await startBenchServer(["darkroom/echo"], values["server-root"] ? { root: path.resolve(values["server-root"]) } : {});
  const serverPid = server.process.pid!;
  const { base } = server;
  try {
    const useWrk = hasWrk();
    if (!useWrk) console.log("wrk not found (apt-get install wrk): measuring saturation with the fetch client only");
    // Warm up: start runners, JIT both sides.
    await syncEchoLatencies(base, 200);
    await throughput(base, 500, CONCURRENCY);

    const rounds: Record<string, number>[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const direct = await directEchoLatencies(LATENCY_N, contextWithoutFiles("bench", undefined));
      const floor = await healthLatencies(base, LATENCY_N);
      const sync = await syncEchoLatencies(base, LATENCY_N);
      const queued = await queueLatencies(base, LATENCY_N);
      const rps = await throughput(base, THROUGHPUT_N, CONCURRENCY);
      const wrk = useWrk ? await wrkThroughput(base, WRK_SECONDS, CONCURRENCY, serverPid) : null;
      const round = {
        direct_p50_ms: median(direct),
        direct_p99_ms: quantile(direct, 0.99),
        http_floor_p50_ms: median(floor),
        http_floor_p99_ms: quantile(floor, 0.99),
        sync_p50_ms: median(sync),
        sync_p99_ms: quantile(sync, 0.99),
        sync_added_p50_ms: median(sync) - median(direct),
        sync_added_p99_ms: quantile(sync, 0.99) - quantile(direct, 0.99),
        queue_sse_p50_ms: median(queued),
        queue_sse_p99_ms: quantile(queued, 0.99),
        queue_added_p50_ms: median(queued) - median(direct),
        queue_added_p99_ms: quantile(queued, 0.99) - quantile(direct, 0.99),
        queued_rps_fetch_client: rps,
        ...(wrk ? { queued_rps_wrk_client: wrk.rps, server_cpu_us_per_request_wrk: wrk.cpuUsPerRequest } : {}),
      };
      rounds.push(round);
      console.log(`round ${r + 1}: ${Object.entries(round).map(([k, v]) => `${k}=${v.toFixed(3)}`).join(" ")}`);
    }
    const summary = summarizeRounds(rounds);
    writeRoundResults(
      "queue-echo",
      {
        command: `node --import tsx bench/queue-echo.bench.ts --rounds ${ROUNDS} --latency-n ${LATENCY_N} --throughput-n ${THROUGHPUT_N} --concurrency ${CONCURRENCY} --wrk-seconds ${WRK_SECONDS}${values["server-root"] ? ` --server-root ${values["server-root"]}` : ""}`,
        load_generators: { fetch: "Node's fetch, in the bench process", wrk: useWrk ? spawnSync("wrk", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0] : "not installed" },
      },
      rounds,
      summary,
    );
  } finally {
    await server.close();
  }
}

await main();
