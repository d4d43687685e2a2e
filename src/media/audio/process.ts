/**
 * Shared plumbing for the speech apps, which shell out to Debian programs (flite, pocketsphinx):
 * resolving a program with an env override, the availability check, and running a child process
 * that dies at once when the request is cancelled.
 *
 * Program lookup reuses media/video's `findExecutable` so that both families of apps resolve PATH
 * the same way.
 * @module
 */
import { spawn } from "node:child_process";
import { ffmpegPath, ffprobePath, findExecutable } from "../video/ffmpeg.js";

/** A system program an app needs: its name on PATH, the env variable that overrides it, the apt package. */
export interface ProgramSpec {
  name: string;
  envVar: string;
  aptPackage: string;
}

export const FLITE: ProgramSpec = { name: "flite", envVar: "FLITE_PATH", aptPackage: "flite" };
export const POCKETSPHINX: ProgramSpec = {
  name: "pocketsphinx_continuous",
  envVar: "POCKETSPHINX_PATH",
  // The program alone is useless without the acoustic model, dictionary and language model.
  aptPackage: "pocketsphinx pocketsphinx-en-us",
};
export const FFMPEG: ProgramSpec = { name: "ffmpeg", envVar: "FFMPEG_PATH", aptPackage: "ffmpeg" };
export const FFPROBE: ProgramSpec = { name: "ffprobe", envVar: "FFPROBE_PATH", aptPackage: "ffmpeg" };

/** The env override when set, else the bare name (searched on PATH). Read on every call so tests can change it. */
export function programPath(spec: ProgramSpec): string {
  // ffmpeg/ffprobe go through media/video so that one override governs every app.
  if (spec === FFMPEG) return ffmpegPath();
  if (spec === FFPROBE) return ffprobePath();
  return process.env[spec.envVar] || spec.name;
}

/**
 * An app's `checkAvailability`: null when every program resolves to an executable, else a reason
 * naming each missing one and a remedy with the apt packages that provide them. The platform then
 * lists the app as unavailable rather than failing every request with a spawn error.
 */
export async function checkPrograms(specs: ProgramSpec[]): Promise<{ reason: string; remedy: string } | null> {
  const missing: ProgramSpec[] = [];
  const reasons: string[] = [];
  for (const spec of specs) {
    const program = programPath(spec);
    if (await findExecutable(program)) continue;
    missing.push(spec);
    reasons.push(program.includes("/") ? `${spec.name} not found at ${spec.envVar}=${program}` : `${spec.name} not found on PATH`);
  }
  if (missing.length === 0) return null;
  const packages = [...new Set(missing.flatMap((s) => s.aptPackage.split(" ")))];
  const overrides = missing.map((s) => s.envVar).join(", ");
  return { reason: reasons.join("; "), remedy: `apt-get install ${packages.join(" ")} (or set ${overrides})` };
}

/** Keeps the tail of stderr bounded: only the end explains a failure. */
const STDERR_TAIL_BYTES = 4000;

/** The signal's reason as an Error; the platform's own cancellation error passes through unchanged so the request ends cancelled. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(`aborted: ${String(reason)}`);
}

export interface RunProgramOptions {
  signal?: AbortSignal;
  /** Called with the child's pid once spawned (tests check that the process is gone after a cancel). */
  onSpawn?: (pid: number) => void;
  /** Called with each complete stdout line as it arrives (for progress). */
  onLine?: (line: string) => void;
}

/**
 * Runs `program` with `args` and resolves with its stdout when it exits 0.
 *
 * On abort the child gets SIGKILL: flite and pocketsphinx hold no state worth flushing, and a
 * SIGTERM-ignoring or slow child would keep burning CPU past the cancel. The promise rejects with
 * the abort reason only after the child has exited, so the caller's temp-folder cleanup cannot race it.
 */
export function runProgram(program: string, args: string[], options: RunProgramOptions = {}): Promise<string> {
  const { signal, onSpawn, onLine } = options;
  return new Promise<string>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const child = spawn(program, args, { stdio: ["ignore", "pipe", "pipe"] });
    if (child.pid !== undefined) onSpawn?.(child.pid);

    let stdout = "";
    let pending = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      stdout += chunk;
      if (!onLine) return;
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_BYTES);
    });

    const onAbort = (): void => {
      child.kill("SIGKILL");
    };
    signal?.addEventListener("abort", onAbort, { once: true });

    const name = program.split("/").pop() ?? program;
    child.on("error", (err) => {
      signal?.removeEventListener("abort", onAbort);
      reject(new Error(`could not start ${name} (${program}): ${err.message}`));
    });
    child.on("close", (code, sig) => {
      signal?.removeEventListener("abort", onAbort);
      if (signal?.aborted) reject(abortReason(signal));
      else if (code === 0) resolve(stdout);
      else reject(new Error(`${name} failed (${sig ?? `exit ${code}`}): ${stderr.trim().split("\n").slice(-8).join("\n")}`));
    });
  });
}
