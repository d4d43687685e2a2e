/**
 * Python apps served by this gateway's own scheduler (`darkroom serve --apps path/app.py::Class`):
 * how such an app is named, how its manifest is read (the runner's `--manifest`, in a child process,
 * so that the app's imports never load into the gateway), and how its runner is started.
 * @module
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { AppManifest } from "../core/types.js";
import { manifestOfRunnerApp, RunnerApp } from "./runner-app.js";

const run = promisify(execFile);

/** The `python/` folder of this checkout: the runner (`darkroom_runner`) and the `fal` package. */
export const PYTHON_DIR = fileURLToPath(new URL("../../python/", import.meta.url));

/** A Python app file, as `--apps` takes it: `path/app.py`, or fal's `path/app.py::ClassName`. */
export function isPythonAppSpec(modulePath: string): boolean {
  return /\.py(::[A-Za-z_][A-Za-z0-9_]*)?$/.test(modulePath);
}

/** The Python that runs the apps: `DARKROOM_PYTHON`, else `python3` from the PATH. */
export function pythonCommand(env: NodeJS.ProcessEnv = process.env): string {
  return env["DARKROOM_PYTHON"] || "python3";
}

/** The environment of a Python runner or probe: the runner and the fal package importable, output unbuffered. */
export function pythonEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, PYTHONPATH: [PYTHON_DIR.replace(/\/$/, ""), env["PYTHONPATH"]].filter(Boolean).join(path.delimiter), PYTHONUNBUFFERED: "1" };
}

/** The command line of a Python runner for `spec` that talks to its scheduler over the inherited fd 3. */
export function pythonRunnerArgs(spec: string): string[] {
  return ["-m", "darkroom_runner", "--ipc-fd", "3", "--app", spec];
}

/**
 * Reads a Python app's manifest. Rejects with the app's own error output when the file does not
 * load; an app whose requirements are missing loads, and comes back `unavailable` with the remedy.
 */
export async function probePythonApp(spec: string, env: NodeJS.ProcessEnv = process.env): Promise<AppManifest> {
  let stdout: string;
  try {
    ({ stdout } = await run(pythonCommand(env), ["-m", "darkroom_runner", "--manifest", "--app", spec], { env: pythonEnv(env), maxBuffer: 16 * 1024 * 1024, timeout: 120_000 }));
  } catch (err) {
    const failed = err as { code?: unknown; stderr?: string; message?: string };
    if (failed.code === "ENOENT") throw new Error(`${pythonCommand(env)} was not found: install Python 3, or set DARKROOM_PYTHON`);
    const lines = (failed.stderr ?? failed.message ?? "").trim().split("\n");
    // The last lines of a traceback say what went wrong.
    throw new Error(lines.slice(-6).join("\n"));
  }
  let described: unknown;
  try {
    described = JSON.parse(stdout);
  } catch {
    throw new Error(`the runner printed no manifest: ${stdout.slice(0, 300)}`);
  }
  const parsed = RunnerApp.safeParse(described);
  if (!parsed.success) throw new Error(`the app's manifest is not valid: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return manifestOfRunnerApp(parsed.data, spec, { remote: false });
}
