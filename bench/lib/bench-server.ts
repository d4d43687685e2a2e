/**
 * A `darkroom serve` for benchmarks: its own process (so the bench's client does not share its event
 * loop), a free port, a temporary data folder, a fixed admin key, and a wait until it is ready.
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const BENCH_KEY = "dk_bench:bench-secret-0123456789abcdef";
export const BENCH_AUTH = { authorization: `Key ${BENCH_KEY}`, "content-type": "application/json" };

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface BenchServer {
  /** "http://127.0.0.1:port" */
  base: string;
  process: ChildProcess;
  /** Its data folder (database, files), deleted by `close`. */
  dataDir: string;
  /** Milliseconds from spawn until `/ready` answered. */
  readyMs: number;
  /** Stops the server (SIGTERM, it drains) and deletes its data folder. */
  close: () => Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

/** Polls `${base}/ready` every 100 ms until it answers 200; throws after 30 s. */
export async function waitUntilReady(base: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/ready`)).ok) return;
    } catch {
      // not up yet
    }
    if (i > 300) throw new Error("server did not start within 30 s");
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Starts a server that serves only `apps` and resolves once `/ready` answers. `appKnobs` is passed
 * as `--app-knobs`, for benchmarks that compare scaling settings. `root` runs another checkout's
 * `bin/darkroom.js`, with that folder as the working directory (a git worktree of an older commit,
 * for an A/B run in one process); without it, this checkout's. `env` adds to the server's environment.
 */
export async function startBenchServer(apps: readonly string[], options: { appKnobs?: string; root?: string; env?: Record<string, string> } = {}): Promise<BenchServer> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "darkroom-bench-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const started = performance.now();
  const child = spawn(process.execPath, [path.join(options.root ?? ROOT, "bin/darkroom.js"), "serve", "--port", String(port), "--data-dir", dataDir, "--only", apps.join(","), ...(options.appKnobs ? ["--app-knobs", options.appKnobs] : [])], {
    env: { ...process.env, DARKROOM_ADMIN_KEY: BENCH_KEY, DARKROOM_LOG_LEVEL: "warn", ...options.env },
    ...(options.root ? { cwd: options.root } : {}),
    stdio: ["ignore", "ignore", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitUntilReady(base);
  } catch (err) {
    await close();
    throw err;
  }
  return { base, process: child, dataDir, readyMs: performance.now() - started, close };
}
