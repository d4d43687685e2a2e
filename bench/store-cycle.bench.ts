/**
 * The store's cost per request, without HTTP or runners: batches of requests go through the queue's
 * life cycle (enqueue → queue position → claim → finish with usage) on a real database file, the way
 * the gateway and the scheduler drive it under load. Reports CPU microseconds of this process per
 * request (less sensitive to a noisy machine than wall time) and requests/s, for the submit path
 * before and after `Store.submit`, measured alternately in the same run.
 *
 *   node --import tsx bench/store-cycle.bench.ts --rounds 5 --requests 20000 --batch 32
 * @module
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { createSqliteStore } from "../src/store/sqlite/sqlite-store.js";
import type { Store } from "../src/store/store.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    requests: { type: "string", default: "20000" },
    batch: { type: "string", default: "32" },
    // Size of a data URI in each input (0: a tiny JSON input), for the cost of large inline inputs.
    "input-bytes": { type: "string", default: "0" },
  },
});
const INPUT_BYTES = Number(values["input-bytes"]);
const ROUNDS = Number(values.rounds);
const REQUESTS = Number(values.requests);
const BATCH = Number(values.batch);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

type Flow = "enqueue+position" | "submit";

/**
 * One batch at a time, as under saturation: submits (the gateway answers each with its queue
 * position), one claim for a runner's free slots, then the finishes. `enqueue+position` is how the
 * gateway did it before `Store.submit` (a write, then the position read); `submit` is one write.
 */
async function cycle(store: Store, n: number, flow: Flow): Promise<void> {
  const input = INPUT_BYTES > 0 ? { image_url: `data:image/png;base64,${"A".repeat(INPUT_BYTES)}` } : { message: { hello: "world" } };
  const output = { message: { hello: "world" } };
  for (let done = 0; done < n; done += BATCH) {
    const requests = Array.from({ length: Math.min(BATCH, n - done) }, () => ({
      id: crypto.randomUUID(), appId: "bench/echo", endpoint: "", input, priority: "normal" as const, mode: "queue" as const, startDeadline: null,
      maxAttempts: 3, webhookUrl: null, keyId: "bench", baseUrl: "http://127.0.0.1", outputTtlSeconds: null,
    }));
    await Promise.all(
      requests.map(async (request) => {
        if (flow === "submit") return (await store.submit(request, null)).queuePosition;
        await store.enqueue(request);
        return store.queuePosition(request.id);
      }),
    );
    const claimed = await store.claimMany("bench/echo", "runner-1", 30_000, requests.length);
    await Promise.all(
      claimed.map((r) =>
        store.finish(r.id, { state: "SUCCEEDED", output, statusCode: 200, error: null, errorType: null, billableUnits: 1 }, { owner: "runner-1", attempt: r.attempt }),
      ),
    );
  }
}

async function measure(flow: Flow): Promise<{ cpuUsPerRequest: number; requestsPerS: number }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "darkroom-store-bench-"));
  const store = createSqliteStore({ path: path.join(dir, "db.sqlite") });
  try {
    await cycle(store, 2000, flow); // warm-up: statement caches, page cache
    const cpu = process.cpuUsage();
    const t = performance.now();
    await cycle(store, REQUESTS, flow);
    const wallS = (performance.now() - t) / 1000;
    const used = process.cpuUsage(cpu);
    return { cpuUsPerRequest: (used.user + used.system) / REQUESTS, requestsPerS: REQUESTS / wallS };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const FLOWS: Flow[] = ["enqueue+position", "submit"];
const results = new Map<Flow, { cpuUsPerRequest: number; requestsPerS: number }[]>(FLOWS.map((f) => [f, []]));
for (let round = 1; round <= ROUNDS; round++) {
  // Alternate the order so that drift of a noisy machine does not favour one flow.
  for (const flow of round % 2 ? FLOWS : [...FLOWS].reverse()) {
    const r = await measure(flow);
    results.get(flow)?.push(r);
    console.log(`round ${round} ${flow}: ${r.cpuUsPerRequest.toFixed(1)} µs CPU/request, ${r.requestsPerS.toFixed(0)} req/s`);
  }
}
const summary: Record<string, unknown> = {};
for (const flow of FLOWS) {
  const rs = results.get(flow) ?? [];
  const cpu = rs.map((r) => r.cpuUsPerRequest);
  const rps = rs.map((r) => r.requestsPerS);
  summary[flow] = { cpu_us_per_request: { median: median(cpu), min: Math.min(...cpu), max: Math.max(...cpu) }, requests_per_s: { median: median(rps), min: Math.min(...rps), max: Math.max(...rps) } };
  console.log(`${flow}: median ${median(cpu).toFixed(1)} µs CPU/request [${Math.min(...cpu).toFixed(1)}–${Math.max(...cpu).toFixed(1)}], ${median(rps).toFixed(0)} req/s [${Math.min(...rps).toFixed(0)}–${Math.max(...rps).toFixed(0)}]`);
}
const ratios = (results.get("submit") ?? []).map((r, i) => (results.get("enqueue+position")?.[i]?.cpuUsPerRequest ?? NaN) / r.cpuUsPerRequest);
console.log(`CPU per request, enqueue+position ÷ submit, per round: ${ratios.map((x) => x.toFixed(2)).join(" ")} (median ${median(ratios).toFixed(2)})`);
mkdirSync(path.join(import.meta.dirname, "results"), { recursive: true });
writeFileSync(
  path.join(import.meta.dirname, "results", INPUT_BYTES > 0 ? `store-cycle.input-${INPUT_BYTES}.json` : "store-cycle.json"),
  JSON.stringify({ command: `node --import tsx bench/store-cycle.bench.ts --rounds ${ROUNDS} --requests ${REQUESTS} --batch ${BATCH}${INPUT_BYTES > 0 ? ` --input-bytes ${INPUT_BYTES}` : ""}`, date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, summary, cpu_ratio_per_round: ratios }, null, 2) + "\n",
);
