/**
 * Starts `darkroom runner` processes for tests: a real child process that connects to a gateway over
 * the runner protocol's HTTP transport, the way a runner on another machine does.
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { REPO_ROOT } from "./platform.js";

export interface RunnerProcess {
  child: ChildProcess;
  /** Everything the runner wrote to stderr so far. */
  output(): string;
  /** The runner id it registered under (after `ready`). */
  runnerId: string;
  /** SIGTERM and wait for the exit (drain). */
  stop(): Promise<number | null>;
  /** SIGKILL, no drain: a machine lost. */
  kill(): Promise<void>;
}

/** Spawns `darkroom runner` and resolves once it reports ready. */
export async function startRunnerProcess(options: { gateways: string[]; token: string; app: string; slots?: number; env?: Record<string, string> }): Promise<RunnerProcess> {
  const args = [path.join(REPO_ROOT, "bin/darkroom.js"), "runner", "--gateway", options.gateways.join(","), "--token", options.token, "--app", options.app];
  if (options.slots !== undefined) args.push("--slots", String(options.slots));
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env: { ...process.env, ...options.env }, stdio: ["ignore", "ignore", "pipe"] });
  let output = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const runnerId = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`runner did not become ready in 60 s:\n${output}`)), 60_000);
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /runner ready: (rr-[A-Za-z0-9_-]+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`runner exited (${code}) before it was ready:\n${output}`));
    });
  });
  return {
    child,
    runnerId,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      return exited;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
}
