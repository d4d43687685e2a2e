/**
 * What the echo end-to-end benchmarks (queue-echo, distributed) measure alike: the echo handler
 * called in-process (the baseline), GET /health (this client's HTTP floor), sync runs of echo, wrk
 * submitting to its queue until every accepted request has completed (with the server's CPU for
 * it), and the results file with the machine it ran on.
 * @module
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import echoApp from "../../src/apps/echo/app.js";
import type { HandlerContext } from "../../src/runtime/sdk.js";
import { BENCH_AUTH, BENCH_KEY } from "./bench-server.js";
import { processTreeCpuMs } from "./process-cpu.js";
import { timed, type Summary } from "./rounds.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const ECHO_APP = "darkroom/echo";

/** The echo handler called directly with `ctx`: input parsing and the handler, no HTTP. */
export async function directEchoLatencies(n: number, ctx: HandlerContext): Promise<number[]> {
  const endpoint = echoApp.endpoints.find((e) => e.path === "");
  if (!endpoint) throw new Error("echo has no root endpoint");
  const handler = endpoint.handler as (i: unknown, c: HandlerContext) => Promise<unknown>;
  return timed(n, (i) => handler(endpoint.input.parse({ message: { i } }), ctx));
}

/** GET /health: the HTTP round trip of this client and server alone, for context. */
export async function healthLatencies(base: string, n: number): Promise<number[]> {
  return timed(n, async () => (await fetch(`${base}/health`)).arrayBuffer());
}

/** POST /run of echo, one at a time. */
export async function syncEchoLatencies(base: string, n: number): Promise<number[]> {
  return timed(n, async (i) => {
    const res = await fetch(`${base}/run/${ECHO_APP}`, { method: "POST", headers: BENCH_AUTH, body: JSON.stringify({ message: { i } }) });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`sync run returned ${res.status}`);
  });
}

/** Writes the wrk script that POSTs one echo input with the bench key to `file`. */
export function writeWrkSubmitScript(file: string): void {
  writeFileSync(
    file,
    `wrk.method = "POST"\nwrk.body = '{"message":{"hello":"world"}}'\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Key ${BENCH_KEY}"\n`,
  );
}

/** Writes bench/results/<name>.json: `head` (the command, the setup), then the date, the machine, the rounds and their summary. */
export function writeRoundResults(name: string, head: Record<string, unknown>, rounds: Record<string, number>[], summary: Summary): void {
  mkdirSync(path.join(ROOT, "bench/results"), { recursive: true });
  writeFileSync(
    path.join(ROOT, `bench/results/${name}.json`),
    `${JSON.stringify(
      {
        ...head,
        date: new Date().toISOString(),
        machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, load_avg: os.loadavg() },
        rounds,
        summary,
      },
      null,
      2,
    )}\n`,
  );
}

/** Resolves once echo has nothing queued or running on the server at `base`: the last request has completed. */
export async function waitUntilDrained(base: string): Promise<void> {
  for (;;) {
    const ops = (await (await fetch(`${base}/v1/ops`, { headers: BENCH_AUTH })).json()) as { apps: { app: string; queue_depth: number; runners: { in_flight: number }[] }[] };
    const echo = ops.apps.find((a) => a.app === ECHO_APP);
    if (!echo) throw new Error(`${ECHO_APP} is not served at ${base}`);
    if (echo.queue_depth === 0 && echo.runners.every((r) => r.in_flight === 0)) return;
    await new Promise((r) => setTimeout(r, 2));
  }
}

export function hasWrk(): boolean {
  return spawnSync("wrk", ["--version"]).error === undefined;
}

const WRK_SCRIPT = path.join(os.tmpdir(), `darkroom-bench-${process.pid}.lua`);

/**
 * Saturation with wrk (C, so the load generator does not eat the CPU the server needs on a 2-core
 * box): submits to echo's queue for `seconds`, then waits until every accepted request has completed.
 * Returns the requests completed per second, how many, and the CPU the server (pid `serverPid`) and
 * its runners spent per request over the whole of it.
 */
export async function wrkThroughput(base: string, seconds: number, concurrency: number, serverPid: number): Promise<{ rps: number; requests: number; cpuUsPerRequest: number }> {
  writeWrkSubmitScript(WRK_SCRIPT);
  const t = performance.now();
  const cpuBefore = processTreeCpuMs(serverPid);
  const out = spawnSync("wrk", ["-t1", `-c${concurrency}`, `-d${seconds}s`, "-s", WRK_SCRIPT, `${base}/queue/${ECHO_APP}`], { encoding: "utf8" });
  const total = /(\d+) requests in/.exec(out.stdout)?.[1];
  if (!total || /Non-2xx/.test(out.stdout)) throw new Error(`wrk failed: ${out.stdout}${out.stderr}`);
  await waitUntilDrained(base);
  const cpuMs = processTreeCpuMs(serverPid) - cpuBefore;
  const requests = Number(total);
  return { rps: requests / ((performance.now() - t) / 1000), requests, cpuUsPerRequest: (cpuMs * 1000) / requests };
}
