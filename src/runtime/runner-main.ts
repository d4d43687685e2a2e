/**
 * Entry point of a runner child process spawned by the local scheduler (IPC transport).
 * Configuration comes from the environment the scheduler sets; messages arrive over Node IPC.
 * @module
 */
import { PlatformError, serializeError } from "../core/errors.js";
import { AllowList } from "../net/allow-list.js";
import { openStorageFromEnv } from "../storage/open-storage.js";
import { importApp } from "./app-loader.js";
import { fileAccessForRun } from "./file-access.js";
import type { FromRunner, ToRunner } from "./protocol.js";
import { RunnerHost } from "./runner-host.js";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`runner: ${name} is not set`);
  return value;
}

if (!process.send) throw new Error("runner-main must be spawned with an IPC channel");

// Messages handed to the channel but not yet written: a large result can take several writes, and
// process.exit() would drop whatever is still queued.
let unsent = 0;
let exitWhenSent = false;
const exitIfSent = (): void => {
  if (exitWhenSent && unsent === 0) process.exit(0);
};

const send = (message: FromRunner): void => {
  // A closed channel means the scheduler is gone; the disconnect handler below exits.
  if (!process.connected) return;
  unsent += 1;
  try {
    process.send?.(message, undefined, {}, () => {
      unsent -= 1;
      exitIfSent();
    });
  } catch (err) {
    // The channel uses structured clone: a value it cannot copy (a function, a class with private
    // state) throws here, at send time. Its request still needs an outcome.
    unsent -= 1;
    if (message.t === "result" || message.t === "partial") {
      const error = new PlatformError("ERR_RUNNER_INCOMPLETE", { message: `The app returned a value that cannot be sent: ${err instanceof Error ? err.message : String(err)}` });
      if (message.t === "result") send({ t: "error", requestId: message.requestId, error: serializeError(error) });
      else send({ t: "log", requestId: message.requestId, level: "ERROR", message: error.message, timestamp: new Date().toISOString() });
    } else {
      throw err;
    }
  }
};

// DARKROOM_STORAGE_URL (any driver) when the server passes one, else the local DARKROOM_STORAGE_ROOT.
const storage = await openStorageFromEnv(process.env);
const allow = AllowList.parse(process.env["DARKROOM_ALLOW_HOSTS"] ?? "");
const ownOrigins = (process.env["DARKROOM_OWN_ORIGINS"] ?? "").split(",").filter(Boolean);
// The server's --files-url: output URLs are built on it.
const filesUrl = process.env["DARKROOM_FILES_URL"] || undefined;
const maxFileBytes = Number(process.env["DARKROOM_MAX_FILE_BYTES"] ?? 512 * 1024 * 1024);
const fetchTimeoutMs = Number(process.env["DARKROOM_FETCH_TIMEOUT_MS"] ?? 60_000);
const outputTtl = process.env["DARKROOM_OUTPUT_TTL_SECONDS"];

const app = await importApp(required("DARKROOM_APP_MODULE"));
const host = new RunnerHost({
  app,
  send,
  fileAccess: (run) => fileAccessForRun(run, { storage, allow, ownOrigins, filesUrl, maxFileBytes, fetchTimeoutMs, ...(outputTtl ? { outputTtlSeconds: Number(outputTtl) } : {}) }),
  onDrained: () => {
    exitWhenSent = true;
    exitIfSent();
  },
});

process.on("message", (message: ToRunner) => host.handle(message));
// Without the scheduler nobody can receive results: stop rather than linger as an orphan.
process.on("disconnect", () => process.exit(0));
await host.start();
