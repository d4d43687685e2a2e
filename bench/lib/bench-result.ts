/**
 * A benchmark's results file, bench/results/<name>.json: the command that made it, when, and the
 * machine it ran on (its load too: the machine may be shared), then what the benchmark measured.
 * @module
 */
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const RESULTS = fileURLToPath(new URL("../results/", import.meta.url));

/** Writes bench/results/<name>.json; `measured`'s fields follow the command, date and machine, in their order. */
export function writeBenchResult(name: string, command: string, measured: Record<string, unknown>): void {
  const machine = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, load_avg: os.loadavg() };
  writeFileSync(path.join(RESULTS, `${name}.json`), `${JSON.stringify({ command, date: new Date().toISOString(), machine, ...measured }, null, 1)}\n`);
}
