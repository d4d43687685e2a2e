/**
 * Runs the real `darkroom` CLI (`node bin/darkroom.js`) as a child process, with an environment
 * that holds only what the test gives it (no DARKROOM_* or FAL_KEY leaking in from the shell).
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { REPO_ROOT } from "../helpers/platform.js";

export const CLI = path.join(REPO_ROOT, "bin/darkroom.js");

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string;
}

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ["DARKROOM_URL", "DARKROOM_KEY", "FAL_KEY", "DARKROOM_DATA_DIR", "FAL_KEY_ID", "FAL_KEY_SECRET"]) delete env[name];
  return { ...env, ...extra };
}

export interface RunningCli {
  child: ChildProcess;
  /** Output so far. */
  readonly stdout: string;
  readonly stderr: string;
  done: Promise<CliResult>;
}

export function startCli(args: string[], options: CliOptions = {}): RunningCli {
  const child = spawn(process.execPath, [CLI, ...args], { env: cleanEnv(options.env), cwd: options.cwd ?? REPO_ROOT, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  child.stdin?.end(options.stdin ?? "");
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    done,
  };
}

export function cli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return startCli(args, options).done;
}

/** The request id from run's `submitted <app> request <id>` line. */
export function submittedId(stderr: string): string {
  const m = /submitted \S+ request (\S+)/.exec(stderr);
  if (!m?.[1]) throw new Error(`no 'submitted' line in:\n${stderr}`);
  return m[1];
}

/** A port nothing listens on: bound, then released. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A scratch working directory for the CLI (downloads land here), deleted by `remove()`. */
export function scratchDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), "darkroom-cli-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
