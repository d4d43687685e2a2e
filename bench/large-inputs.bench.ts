/**
 * Large inline inputs at once: what 16 concurrent 30 MB inputs cost the gateway's memory and the
 * database, against the code before the security pass, in the same run.
 *
 *   node --import tsx bench/large-inputs.bench.ts --rounds 3 --baseline-ref b254182
 *
 * Each round starts both servers (order alternating between rounds) with only the echo app, and
 * sends `--concurrency` requests at once to `POST /queue/darkroom/echo`, each `{"file_url": "data:…"}`
 * with `--mb` MB of base64 (what fal's clients send for a file passed inline); echo stores the file
 * and answers with its URL. A 503 with `Retry-After` (the gateway's in-flight budget) is retried as
 * a client would. Measured on the gateway process: resident memory before, its peak while the
 * requests are submitted and run (sampled every 20 ms from /proc), after; the database's size on
 * disk once all were accepted; how many submits were answered 503 first; the time until all were
 * accepted, and how many completed within `--complete-timeout` seconds after that (the code before
 * the pass reads every 30 MB row on every claim and status poll, and took minutes per request).
 * Results go to bench/results/large-inputs.json.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BENCH_AUTH, startBenchServer, type BenchServer } from "./lib/bench-server.js";
import { summarizeRounds, type Spread } from "./lib/rounds.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "16" },
    mb: { type: "string", default: "30" },
    "baseline-ref": { type: "string", default: "b254182" },
    "complete-timeout": { type: "string", default: "60" },
  },
});
const completeTimeoutS = Number(values["complete-timeout"]);
const rounds = Number(values.rounds);
const concurrency = Number(values.concurrency);
const inputBytes = Number(values.mb) * 1_000_000;
const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** Resident memory of a process, from /proc (Linux): current and peak since it started, MB. */
function rssOf(pid: number): { rssMb: number; peakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rssMb: kb("VmRSS") / 1024, peakMb: kb("VmHWM") / 1024 };
}

/** Bytes of the SQLite database files (main file, WAL) in a data folder. */
function databaseBytes(dataDir: string): number {
  return readdirSync(dataDir)
    .filter((f) => f.startsWith("darkroom.db"))
    .reduce((sum, f) => sum + statSync(path.join(dataDir, f)).size, 0);
}

function inlineInput(seed: number): string {
  // Base64 of bytes that differ per request, so nothing is shared or compressed away.
  const raw = Buffer.alloc(Math.floor((inputBytes * 3) / 4));
  for (let i = 0; i < raw.length; i += 4096) raw[i] = (seed * 31 + i) & 0xff;
  return JSON.stringify({ file_url: `data:application/octet-stream;base64,${raw.toString("base64")}` });
}

async function submitUntilAccepted(base: string, body: string): Promise<{ statusUrl: string; busy: number }> {
  for (let busy = 0; ; busy++) {
    const res = await fetch(`${base}/queue/darkroom/echo`, { method: "POST", headers: BENCH_AUTH, body });
    if (res.status === 503 || res.status === 429) {
      const wait = Number(res.headers.get("retry-after") ?? "1");
      await res.arrayBuffer();
      await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 2) * 1000 * (0.5 + Math.random())));
      continue;
    }
    const answer = (await res.json()) as { status_url?: string };
    if (res.status !== 200 || !answer.status_url) throw new Error(`submit answered ${res.status}: ${JSON.stringify(answer).slice(0, 300)}`);
    return { statusUrl: answer.status_url, busy };
  }
}

/** Resolves true once the request completed, false when `deadline` (performance.now()) passes first. */
async function waitCompleted(statusUrl: string, deadline: number): Promise<boolean> {
  while (performance.now() < deadline) {
    const res = await fetch(statusUrl, { headers: BENCH_AUTH });
    const status = (await res.json()) as { status?: string };
    if (status.status === "COMPLETED") return true;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return false;
}

async function measure(server: BenchServer): Promise<Record<string, number>> {
  const pid = server.process.pid;
  if (pid === undefined) throw new Error("server has no pid");
  const bodies = Array.from({ length: concurrency }, (_, i) => inlineInput(i));
  const before = rssOf(pid);
  let peak = before.rssMb;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssOf(pid).rssMb);
  }, 20);
  const started = performance.now();
  try {
    const submitted = await Promise.all(bodies.map((body) => submitUntilAccepted(server.base, body)));
    const acceptedMs = performance.now() - started;
    const databaseAfterSubmitMb = databaseBytes(server.dataDir) / 1e6;
    const deadline = performance.now() + completeTimeoutS * 1000;
    const completed = await Promise.all(submitted.map((s) => waitCompleted(s.statusUrl, deadline)));
    const allDone = completed.every(Boolean);
    const doneMs = performance.now() - started;
    clearInterval(sampler);
    const after = rssOf(pid);
    return {
      rss_before_mb: before.rssMb,
      rss_peak_mb: Math.max(peak, after.peakMb),
      rss_after_mb: after.rssMb,
      peak_over_before_mb: Math.max(peak, after.peakMb) - before.rssMb,
      database_after_submits_mb: databaseAfterSubmitMb,
      submits_answered_busy_first: submitted.filter((s) => s.busy > 0).length,
      all_accepted_s: acceptedMs / 1000,
      completed_in_time: completed.filter(Boolean).length,
      // NaN when some had not completed when the wait ran out.
      all_completed_s: allDone ? doneMs / 1000 : NaN,
    };
  } finally {
    clearInterval(sampler);
  }
}

/** A worktree of the baseline ref, with this checkout's node_modules. */
function baselineTree(ref: string): { root: string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "darkroom-baseline-"));
  rmSync(dir, { recursive: true });
  execFileSync("git", ["worktree", "add", "--detach", dir, ref], { cwd: ROOT, stdio: "ignore" });
  symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  return {
    root: dir,
    remove: () => {
      // The link goes first, so that nothing can ever delete through it into this checkout's modules.
      rmSync(path.join(dir, "node_modules"), { force: true });
      execFileSync("git", ["worktree", "remove", "--force", dir], { cwd: ROOT, stdio: "ignore" });
    },
  };
}

const baseline = baselineTree(values["baseline-ref"]);
process.once("SIGINT", () => {
  baseline.remove();
  process.exit(130);
});
const results: { round: number; tree: string; metrics: Record<string, number> }[] = [];
try {
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? (["before", "now"] as const) : (["now", "before"] as const);
    for (const tree of order) {
      const server = await startBenchServer(["darkroom/echo"], tree === "before" ? { root: baseline.root } : {});
      try {
        const metrics = await measure(server);
        results.push({ round, tree, metrics });
        console.log(`round ${round + 1} ${tree}: ${JSON.stringify(metrics)}`);
      } finally {
        await server.close();
      }
    }
  }
} finally {
  baseline.remove();
}

const summary: Record<string, Record<string, Spread>> = {};
for (const tree of ["before", "now"]) {
  console.log(`\n${tree === "before" ? `before (${values["baseline-ref"]})` : "now"}:`);
  summary[tree] = summarizeRounds(results.filter((r) => r.tree === tree).map((r) => r.metrics));
}
const out = path.join(ROOT, "bench/results/large-inputs.json");
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify(
    {
      command: `node --import tsx bench/large-inputs.bench.ts --rounds ${rounds} --concurrency ${concurrency} --mb ${values.mb} --baseline-ref ${values["baseline-ref"]} --complete-timeout ${completeTimeoutS}`,
      date: new Date().toISOString(),
      machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, node: process.version, loadavg: os.loadavg() },
      rounds: results,
      summary,
    },
    null,
    2,
  )}\n`,
);
console.log(`\nwritten to ${path.relative(ROOT, out)}`);
