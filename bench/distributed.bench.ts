/**
 * The end-to-end benchmark of bench/queue-echo.bench.ts in the distributed setup: two gateways
 * (`darkroom serve --local-runners false`) on one PostgreSQL database, two remote runner hosts
 * (`darkroom runner`, echo app) connected to them over the runner protocol's HTTP transport. The
 * baseline is the same echo handler called in-process, measured in the same run.
 *
 *   node --import tsx bench/distributed.bench.ts --rounds 3 --latency-n 200 --wrk-seconds 5
 *
 * Per round:
 * - direct handler latency (the baseline) and GET /health (this client's HTTP floor);
 * - sync run latency through gateway A (POST /run) and its added latency over the baseline;
 * - queue latency: submit to gateway A, follow the status stream on gateway B until COMPLETED
 *   (the events cross gateways through LISTEN/NOTIFY), and its added latency;
 * - submit to start: the store's `started_at - created_at` of the queued requests, i.e. from the
 *   gateway accepting the request to a runner's claim of it (the issue's aim: p50 ≤ 10 ms);
 * - queued requests/s at saturation: one wrk per gateway submitting for `--wrk-seconds`, timed until
 *   every accepted request has completed.
 * The database is the machine's PostgreSQL (127.0.0.1:5432, or DARKROOM_TEST_DATABASE_URL's server),
 * in a database made for the run and dropped after it; its commits are durable (the server's
 * default synchronous_commit), which is what every acknowledged submit relies on.
 * Results go to bench/results/distributed.json.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { createLocalStorage } from "../src/storage/local-storage.js";
import { createPostgresStore } from "../src/store/postgres/postgres-store.js";
import { startGatewayProcess, type GatewayProcess } from "../test/helpers/gateway-process.js";
import { startRunnerProcess, type RunnerProcess } from "../test/helpers/remote-runner.js";
import { createTestDatabase } from "../test/store/pg-database.js";
import { median, quantile, summarizeRounds } from "./lib/rounds.js";
import { BENCH_AUTH, BENCH_KEY } from "./lib/bench-server.js";
import { directContext } from "./lib/direct-context.js";
import { directEchoLatencies, ECHO_APP, healthLatencies, syncEchoLatencies, writeRoundResults, writeWrkSubmitScript } from "./lib/echo-rounds.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    "latency-n": { type: "string", default: "200" },
    "wrk-seconds": { type: "string", default: "5" },
    concurrency: { type: "string", default: "32" },
  },
});
const ROUNDS = Number(values.rounds);
const LATENCY_N = Number(values["latency-n"]);
const WRK_SECONDS = Number(values["wrk-seconds"]);
const CONCURRENCY = Number(values.concurrency);
const APP = ECHO_APP;

/** Submit to `submitTo`, follow the status stream on `watchOn`. Returns latencies and request ids. */
async function queueLatencies(submitTo: string, watchOn: string, n: number): Promise<{ latencies: number[]; ids: string[] }> {
  const latencies: number[] = [];
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const submitted = await fetch(`${submitTo}/queue/${APP}`, { method: "POST", headers: BENCH_AUTH, body: JSON.stringify({ message: { i } }) });
    const { request_id } = (await submitted.json()) as { request_id: string };
    const stream = await fetch(`${watchOn}/queue/${APP}/requests/${request_id}/status/stream`, { headers: BENCH_AUTH });
    const text = await stream.text();
    if (!text.includes('"COMPLETED"')) throw new Error("stream ended without COMPLETED");
    latencies.push(performance.now() - t);
    ids.push(request_id);
  }
  return { latencies, ids };
}

/** One wrk per gateway, at once; then wait until the queue is empty and nothing runs. */
async function wrkThroughput(gateways: string[], store: ReturnType<typeof createPostgresStore>, seconds: number, concurrency: number): Promise<number> {
  const script = path.join(os.tmpdir(), `darkroom-dist-bench-${process.pid}.lua`);
  writeWrkSubmitScript(script);
  const t = performance.now();
  const outputs = await Promise.all(
    gateways.map(
      (g) =>
        new Promise<string>((resolve) => {
          const child = spawn("wrk", ["-t1", `-c${Math.max(1, Math.floor(concurrency / gateways.length))}`, `-d${seconds}s`, "-s", script, `${g}/queue/${APP}`]);
          let out = "";
          child.stdout.on("data", (c: Buffer) => (out += c.toString()));
          child.on("exit", () => resolve(out));
        }),
    ),
  );
  let total = 0;
  for (const out of outputs) {
    const n = /(\d+) requests in/.exec(out)?.[1];
    if (!n || /Non-2xx/.test(out)) throw new Error(`wrk failed: ${out}`);
    total += Number(n);
  }
  for (;;) {
    const depth = (await store.queueDepths()).get(APP) ?? 0;
    const running = (await store.running()).length;
    if (depth === 0 && running === 0) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  rmSync(script, { force: true });
  return total / ((performance.now() - t) / 1000);
}

async function main(): Promise<void> {
  if (spawnSync("wrk", ["--version"]).error) throw new Error("this benchmark needs wrk (apt-get install wrk)");
  const database = await createTestDatabase();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "darkroom-dist-bench-"));
  const env = {
    DARKROOM_ADMIN_KEY: BENCH_KEY,
    DARKROOM_DATA_DIR: dataDir,
    DARKROOM_DATABASE_URL: database.url,
    DARKROOM_STORAGE_URL: `file://${path.join(dataDir, "files")}`,
    DARKROOM_LOCAL_RUNNERS: "false",
    DARKROOM_LOG_LEVEL: "warn",
  };
  const gateways: GatewayProcess[] = [];
  const runners: RunnerProcess[] = [];
  const store = createPostgresStore({ url: database.url });
  try {
    gateways.push(await startGatewayProcess({ env, args: ["--only", APP] }));
    gateways.push(await startGatewayProcess({ env, args: ["--only", APP] }));
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    const minted = await fetch(`${a.url}/v1/runner-tokens`, { method: "POST", headers: BENCH_AUTH, body: JSON.stringify({ apps: [APP] }) });
    const token = ((await minted.json()) as { token: string }).token;
    runners.push(await startRunnerProcess({ gateways: [a.url, b.url], token, app: APP, slots: 32 }));
    runners.push(await startRunnerProcess({ gateways: [b.url, a.url], token, app: APP, slots: 32 }));

    // Warm up both gateways, both runners and the JIT on every side.
    await syncEchoLatencies(a.url, 100);
    await syncEchoLatencies(b.url, 100);
    await queueLatencies(a.url, b.url, 50);

    const rounds: Record<string, number>[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const direct = await directEchoLatencies(LATENCY_N, directContext(createLocalStorage({ root: path.join(os.tmpdir(), "darkroom-dist-bench-direct") }), "bench", undefined));
      const floor = await healthLatencies(a.url, LATENCY_N);
      const sync = await syncEchoLatencies(a.url, LATENCY_N);
      const queued = await queueLatencies(a.url, b.url, LATENCY_N);
      const records = await Promise.all(queued.ids.map((id) => store.get(id)));
      const toStart = records.map((rec) => (rec?.startedAt ?? NaN) - (rec?.createdAt ?? NaN)).filter(Number.isFinite);
      const rps = await wrkThroughput([a.url, b.url], store, WRK_SECONDS, CONCURRENCY);
      const round = {
        direct_p50_ms: median(direct),
        direct_p99_ms: quantile(direct, 0.99),
        http_floor_p50_ms: median(floor),
        sync_p50_ms: median(sync),
        sync_p99_ms: quantile(sync, 0.99),
        sync_added_p50_ms: median(sync) - median(direct),
        sync_added_p99_ms: quantile(sync, 0.99) - quantile(direct, 0.99),
        queue_cross_gateway_p50_ms: median(queued.latencies),
        queue_cross_gateway_p99_ms: quantile(queued.latencies, 0.99),
        queue_added_p50_ms: median(queued.latencies) - median(direct),
        queue_added_p99_ms: quantile(queued.latencies, 0.99) - quantile(direct, 0.99),
        submit_to_start_p50_ms: median(toStart),
        submit_to_start_p99_ms: quantile(toStart, 0.99),
        queued_rps_wrk_two_gateways: rps,
      };
      rounds.push(round);
      console.log(`round ${r + 1}: ${Object.entries(round).map(([k, v]) => `${k}=${v.toFixed(3)}`).join(" ")}`);
    }
    const summary = summarizeRounds(rounds);
    const pgVersion = spawnSync("psql", ["--version"], { encoding: "utf8" }).stdout.trim();
    writeRoundResults(
      "distributed",
      {
        command: `node --import tsx bench/distributed.bench.ts --rounds ${ROUNDS} --latency-n ${LATENCY_N} --wrk-seconds ${WRK_SECONDS} --concurrency ${CONCURRENCY}`,
        setup: "2 gateways (--local-runners false) + 2 `darkroom runner` hosts (echo, 32 slots each) + PostgreSQL, all on this machine",
        postgres: pgVersion,
      },
      rounds,
      summary,
    );
  } finally {
    await Promise.all(runners.map((r) => r.stop()));
    await Promise.all(gateways.map((g) => g.stop()));
    await store.close();
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
