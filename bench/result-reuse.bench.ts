/**
 * What result reuse saves (issue #18's aim: a HIT answered at least 50× faster than the run it
 * replaces, for darkroom/upscale): the same upscale of a real photo crop through `/run`, computed
 * (`X-Darkroom-Cache: off`) against answered from its kept result (`X-Darkroom-Cache: use`, a HIT),
 * alternating within each round, on one warm server.
 *
 *   node --import tsx bench/result-reuse.bench.ts --rounds 5 --calls 8 --size 128
 *
 * Times are the client's wall time per call (request sent to body read). Each HIT is checked to
 * carry the first result's bytes. Results: bench/results/result-reuse.json.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { writeBenchResult } from "./lib/bench-result.js";
import { BENCH_AUTH, startBenchServer } from "./lib/bench-server.js";
import { median, summarizeRounds } from "./lib/rounds.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const { values } = parseArgs({ options: { rounds: { type: "string", default: "5" }, calls: { type: "string", default: "8" }, size: { type: "string", default: "128" } } });
const ROUNDS = Number(values.rounds);
const CALLS = Number(values.calls);
const SIZE = Number(values.size);

const crop = await sharp(path.join(ROOT, "test/fixtures/media/astronaut.png")).extract({ left: 128, top: 32, width: SIZE, height: SIZE }).png().toBuffer();
const input = { image_url: `data:image/png;base64,${crop.toString("base64")}`, scale: 2 };

async function timedRun(base: string, cache: "off" | "use"): Promise<{ ms: number; status: string | null; body: string }> {
  const started = performance.now();
  const res = await fetch(`${base}/run/darkroom/upscale`, { method: "POST", headers: { ...BENCH_AUTH, "x-darkroom-cache": cache }, body: JSON.stringify(input) });
  const body = await res.text();
  const ms = performance.now() - started;
  if (!res.ok) throw new Error(`upscale answered ${res.status}: ${body}`);
  return { ms, status: res.headers.get("x-darkroom-cache-status"), body };
}

const server = await startBenchServer(["darkroom/upscale"], { env: { DARKROOM_SPARE_RUNNERS: "0" } });
const rounds: Record<string, number>[] = [];
try {
  // Warm the runner and its model; the first `use` computes and keeps the result (MISS).
  await timedRun(server.base, "off");
  const kept = await timedRun(server.base, "use");
  if (kept.status !== "MISS") throw new Error(`the first cached call was ${kept.status}, not MISS`);
  for (let round = 1; round <= ROUNDS; round++) {
    const runs: number[] = [];
    const hits: number[] = [];
    for (let c = 0; c < CALLS; c++) {
      runs.push((await timedRun(server.base, "off")).ms);
      const hit = await timedRun(server.base, "use");
      if (hit.status !== "HIT" || hit.body !== kept.body) throw new Error(`call ${c} of round ${round} was ${hit.status}, or not the kept result`);
      hits.push(hit.ms);
    }
    const result = { run_p50_ms: median(runs), hit_p50_ms: median(hits), speedup: median(runs) / median(hits) };
    rounds.push(result);
    console.log(`round ${round}: ${Object.entries(result).map(([k, v]) => `${k}=${v.toFixed(2)}`).join(" ")}`);
  }
} finally {
  await server.close();
}
const summary = summarizeRounds(rounds);
writeBenchResult("result-reuse", `node --import tsx bench/result-reuse.bench.ts --rounds ${ROUNDS} --calls ${CALLS} --size ${SIZE}`, { rounds, summary });
