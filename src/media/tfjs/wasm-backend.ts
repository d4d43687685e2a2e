/**
 * The TensorFlow.js wasm backend, started once per runner process and shared by every tfjs app
 * (upscale, face-analysis, safety-checker): they all import the same `@tensorflow/tfjs`.
 * @module
 */
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { packageDir } from "./package-dir.js";

/**
 * Emscripten's Node glue, run when the wasm module is instantiated, adds process-wide
 * `uncaughtException` and `unhandledRejection` listeners that rethrow. They would crash the runner
 * past any handler it installed itself, so the returned function removes every such listener added
 * since the call.
 */
function keepProcessListeners(): () => void {
  // Seen as a plain EventEmitter: process's per-event overloads do not accept a union of event names.
  const emitter: NodeJS.EventEmitter = process;
  const events = ["uncaughtException", "unhandledRejection"];
  const before = new Map(events.map((e) => [e, new Set(emitter.listeners(e))]));
  return () => {
    for (const event of events) {
      for (const listener of emitter.listeners(event)) {
        if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener as (...args: unknown[]) => void);
      }
    }
  };
}

let backendReady: Promise<string> | undefined;

/**
 * Selects the wasm backend once per process and resolves to the backend in use. The pure-JS cpu
 * backend is ~35x slower on conv nets, so falling back to it is logged.
 */
export function initBackend(log: (message: string) => void = () => {}): Promise<string> {
  backendReady ??= (async () => {
    // In Node, emscripten reads the .wasm with fs, so a directory path works; pointing at the
    // installed package keeps it working wherever node_modules ends up.
    setWasmPaths(path.join(packageDir("@tensorflow/tfjs-backend-wasm"), "dist") + path.sep);
    let ok = false;
    const restoreListeners = keepProcessListeners();
    try {
      ok = await tf.setBackend("wasm");
    } catch (err) {
      log(`tfjs wasm backend failed to start: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      restoreListeners();
    }
    if (!ok) {
      log("falling back to the tfjs cpu backend: models will run much slower");
      await tf.setBackend("cpu");
    }
    await tf.ready();
    return tf.getBackend();
  })();
  return backendReady;
}
