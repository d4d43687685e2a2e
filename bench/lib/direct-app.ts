/**
 * An app called directly in this process, the way its runner would but without the platform: its
 * module imported, `setup()` run, then its default endpoint called with one input, each timed. The
 * reference the per-app benchmarks measure the platform against.
 * @module
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { importApp } from "../../src/runtime/app-loader.js";
import type { HandlerContext } from "../../src/runtime/sdk.js";
import { createLocalStorage } from "../../src/storage/local-storage.js";
import { directContext } from "./direct-context.js";

export interface DirectApp {
  importMs: number;
  setupMs: number;
  /** Calls the default endpoint once with the input; resolves with the milliseconds it took. */
  call: (i: number) => Promise<number>;
  /** Deletes the files the calls stored. */
  close: () => void;
}

export async function loadAppDirect(modulePath: string, input: unknown): Promise<DirectApp> {
  let t = performance.now();
  const defined = await importApp(modulePath);
  const importMs = performance.now() - t;
  t = performance.now();
  const state: unknown = defined.setup ? await defined.setup(() => undefined) : undefined;
  const setupMs = performance.now() - t;
  const endpoint = defined.endpoints.find((e) => e.path === "")!;
  const handler = endpoint.handler as (i: unknown, c: HandlerContext) => Promise<unknown>;
  const dir = mkdtempSync(path.join(os.tmpdir(), "darkroom-direct-"));
  const storage = createLocalStorage({ root: dir });
  return {
    importMs,
    setupMs,
    async call(i) {
      const started = performance.now();
      await handler(endpoint.input.parse(input), directContext(storage, `direct-${i}`, state));
      return performance.now() - started;
    },
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}
