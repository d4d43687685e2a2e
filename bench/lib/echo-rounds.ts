/**
 * What the echo end-to-end benchmarks (queue-echo, distributed) measure alike: the echo handler
 * called in-process (the baseline), GET /health (this client's HTTP floor), sync runs of echo, the
 * wrk script that submits to its queue, and the results file with the machine it ran on.
 * @module
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import echoApp from "../../src/apps/echo/app.js";
import type { HandlerContext } from "../../src/runtime/sdk.js";
import { BENCH_AUTH, BENCH_KEY } from "./bench-server.js";
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
