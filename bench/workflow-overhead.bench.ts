/**
 * What running apps as a workflow adds (issue #18's aim: at most 5 ms per node at p50): a chain of
 * `--nodes` darkroom/echo nodes (each working `--work-ms`) called through `/run/{workflow}`, against
 * the same calls made one after another by the client (`/run/darkroom/echo`), in the same run.
 *
 *   node --import tsx bench/workflow-overhead.bench.ts --rounds 5 --calls 20 --nodes 5 --work-ms 20
 *
 * Per call: the workflow's wall time less the sum of its nodes' run times (their requests'
 * started_at to finished_at), divided by the nodes, is the workflow's own overhead per node: the
 * executor's claim, each node's submit and queue wait, the wake-up when it ends, the events. The
 * client chain's per-call time less its run time is the same overhead for a client doing the
 * chaining itself over HTTP. Results: bench/results/workflow-overhead.json.
 */
import { parseArgs } from "node:util";
import { nodeRequestId } from "../src/scheduler/workflow-executor.js";
import { writeBenchResult } from "./lib/bench-result.js";
import { BENCH_AUTH, startBenchServer } from "./lib/bench-server.js";
import { median, summarizeRounds } from "./lib/rounds.js";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "5" }, calls: { type: "string", default: "20" }, nodes: { type: "string", default: "5" }, "work-ms": { type: "string", default: "20" } } });
const ROUNDS = Number(values.rounds);
const CALLS = Number(values.calls);
const NODES = Number(values.nodes);
const WORK_MS = Number(values["work-ms"]);

async function call(base: string, method: string, route: string, body?: unknown): Promise<any> {
  const res = await fetch(`${base}${route}`, { method, headers: BENCH_AUTH, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A request's run time, from its record's started_at and finished_at. */
async function runMs(base: string, id: string): Promise<number> {
  const record = await call(base, "GET", `/v1/requests/${id}`);
  return Date.parse(record.finished_at) - Date.parse(record.started_at);
}

const server = await startBenchServer(["darkroom/echo"], { env: { DARKROOM_SPARE_RUNNERS: "0" } });
const rounds: Record<string, number>[] = [];
try {
  const nodes: Record<string, unknown> = { input: { type: "input", depends: [], input: { text: "" } } };
  for (let i = 1; i <= NODES; i++) {
    nodes[`n${i}`] = { type: "run", depends: [i === 1 ? "input" : `n${i - 1}`], app: "darkroom/echo", input: { message: i === 1 ? "$input.text" : `$n${i - 1}.message`, sleep_ms: WORK_MS } };
  }
  await call(server.base, "PUT", "/v1/workflows/bench/chain", { contents: { nodes, output: { text: `$n${NODES}.message` } } });
  // Warm: the echo runner and both paths.
  for (let i = 0; i < 3; i++) {
    await call(server.base, "POST", "/run/bench/chain", { text: "warm" });
    await call(server.base, "POST", "/run/darkroom/echo", { message: "warm", sleep_ms: WORK_MS });
  }
  for (let round = 1; round <= ROUNDS; round++) {
    const workflowPerNode: number[] = [];
    const clientPerNode: number[] = [];
    for (let c = 0; c < CALLS; c++) {
      // The workflow: one call, its nodes' requests read back for their run times.
      let started = performance.now();
      const res = await fetch(`${server.base}/run/bench/chain`, { method: "POST", headers: BENCH_AUTH, body: JSON.stringify({ text: `w${c}` }) });
      const id = res.headers.get("x-fal-request-id") ?? "";
      await res.text();
      const workflowMs = performance.now() - started;
      let nodeRun = 0;
      for (let i = 1; i <= NODES; i++) nodeRun += await runMs(server.base, nodeRequestId(id, `n${i}`));
      workflowPerNode.push((workflowMs - nodeRun) / NODES);

      // The same chain made by the client, call after call.
      let message: unknown = `c${c}`;
      let clientRun = 0;
      started = performance.now();
      const ids: string[] = [];
      for (let i = 1; i <= NODES; i++) {
        const r = await fetch(`${server.base}/run/darkroom/echo`, { method: "POST", headers: BENCH_AUTH, body: JSON.stringify({ message, sleep_ms: WORK_MS }) });
        ids.push(r.headers.get("x-fal-request-id") ?? "");
        message = ((await r.json()) as { message: unknown }).message;
      }
      const clientMs = performance.now() - started;
      for (const rid of ids) clientRun += await runMs(server.base, rid);
      clientPerNode.push((clientMs - clientRun) / NODES);
    }
    const result = { workflow_overhead_per_node_p50_ms: median(workflowPerNode), client_chain_overhead_per_node_p50_ms: median(clientPerNode) };
    rounds.push(result);
    console.log(`round ${round}: ${Object.entries(result).map(([k, v]) => `${k}=${v.toFixed(2)}`).join(" ")}`);
  }
} finally {
  await server.close();
}
const summary = summarizeRounds(rounds);
writeBenchResult("workflow-overhead", `node --import tsx bench/workflow-overhead.bench.ts --rounds ${ROUNDS} --calls ${CALLS} --nodes ${NODES} --work-ms ${WORK_MS}`, { rounds, summary });
