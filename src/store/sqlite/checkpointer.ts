/**
 * WAL checkpoints off the event loop. A checkpoint copies the write-ahead log into the database file
 * and fsyncs it; run by SQLite's auto-checkpoint inside a commit, that fsync stalls the gateway's
 * only thread for milliseconds every few hundred requests. Here a worker thread with its own
 * connection checkpoints (PASSIVE: it never blocks writers) on a timer instead.
 * @module
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

const WORKER_SOURCE = `
const { workerData, parentPort } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma("busy_timeout = 5000");
const timer = setInterval(() => {
  try { db.pragma("wal_checkpoint(PASSIVE)"); } catch { /* busy: the next tick tries again */ }
}, workerData.intervalMs);
parentPort.on("message", () => { clearInterval(timer); db.close(); process.exit(0); });
`;

export interface Checkpointer {
  stop(): Promise<void>;
}

export function startCheckpointer(path: string, intervalMs = 500): Checkpointer {
  const driver = createRequire(import.meta.url).resolve("better-sqlite3");
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, intervalMs, driver } });
  // The worker must never keep the process alive on its own.
  worker.unref();
  worker.on("error", () => undefined);
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        worker.once("exit", () => resolve());
        // Waiting for the exit must keep the process alive until the worker has closed its connection.
        worker.ref();
        worker.postMessage("stop");
      }),
  };
}
