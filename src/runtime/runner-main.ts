/**
 * Entry point of a runner child process spawned by the local scheduler (IPC transport).
 * Configuration comes from the environment the scheduler sets; messages arrive over Node IPC.
 *
 * Without DARKROOM_APP_MODULE the runner is a spare (src/scheduler/spare-runners.ts): it loads
 * everything that does not depend on the app, says `spare`, and waits for `become` with the app to
 * load. Taking a spare then costs the app's import and setup only, not Node's start and the runtime's.
 * @module
 */
import { PlatformError, serializeError } from "../core/errors.js";
import { AllowList } from "../net/allow-list.js";
import { openStorageFromEnv } from "../storage/open-storage.js";
import { importApp } from "./app-loader.js";
import { fileAccessForRun } from "./file-access.js";
import type { FromRunner, StartPhases, ToRunner } from "./protocol.js";
import { RunnerHost } from "./runner-host.js";

/** Wall-clock milliseconds, on the same clock as `performance.timeOrigin`. */
const wallNow = (): number => performance.timeOrigin + performance.now();

// Static imports are evaluated before this line: Node, the loader and the runtime's modules are in.
const runtimeLoadedAt = wallNow();

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

/**
 * Messages that arrive before the host exists (a spare told to drain, a drain during setup's
 * import) wait here and are handed to it in order.
 */
const early: ToRunner[] = [];
let deliver: (message: ToRunner) => void = (message) => early.push(message);
process.on("message", (message: ToRunner) => deliver(message));
// Without the scheduler nobody can receive results: stop rather than linger as an orphan.
process.on("disconnect", () => process.exit(0));

/**
 * A spare's wait for its app: resolves with the module to load; a drain before that ends the process.
 * The scheduler may take a spare that is still loading, so `become` can be waiting already.
 */
function becomeWhenTold(): Promise<string> {
  return new Promise((resolve) => {
    const spareMessage = (message: ToRunner): void => {
      if (message.t === "become") {
        deliver = (next) => early.push(next);
        resolve(message.modulePath);
      } else if (message.t === "drain") {
        process.exit(0);
      }
    };
    send({ t: "spare" });
    deliver = spareMessage;
    for (const message of early.splice(0)) spareMessage(message);
  });
}

const modulePath = process.env["DARKROOM_APP_MODULE"] || (await becomeWhenTold());
const appAssignedAt = wallNow();
const app = await importApp(modulePath);
const startPhases: StartPhases = { processStartedAt: performance.timeOrigin, runtimeLoadedAt, appAssignedAt, importMs: wallNow() - appAssignedAt };
const host = new RunnerHost({
  app,
  send,
  startPhases,
  fileAccess: (run) => fileAccessForRun(run, { storage, allow, ownOrigins, filesUrl, maxFileBytes, fetchTimeoutMs, ...(outputTtl ? { outputTtlSeconds: Number(outputTtl) } : {}) }),
  onDrained: () => {
    exitWhenSent = true;
    exitIfSent();
  },
});

deliver = (message) => host.handle(message);
for (const message of early.splice(0)) host.handle(message);
await host.start();
