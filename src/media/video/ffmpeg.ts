/**
 * Shared ffmpeg plumbing for the video apps: finding the programs, the availability check, running
 * ffmpeg with progress and cancellation, probing outputs with ffprobe, and per-request temp folders.
 *
 * The apps shell out to the system ffmpeg (Debian's 5.1 is what was verified) instead of bundling a
 * build: the npm builds are either old or fail to install offline, and the system package gets
 * security updates.
 * @module
 */
import { execFile, spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

export const FFMPEG_REMEDY = "apt-get install ffmpeg (or set FFMPEG_PATH)";

/** Keeps the tail of stderr bounded: ffmpeg can log megabytes on a long job, only the end explains a failure. */
export const STDERR_TAIL_BYTES = 4000;

/** `FFMPEG_PATH` when set, else `ffmpeg` looked up on PATH. Read on every call so tests can change it. */
export function ffmpegPath(): string {
  return process.env["FFMPEG_PATH"] || "ffmpeg";
}

/** `FFPROBE_PATH` when set, else `ffprobe` on PATH. */
export function ffprobePath(): string {
  return process.env["FFPROBE_PATH"] || "ffprobe";
}

/** Resolves a program name (searched on PATH) or a path (checked as is) to an executable file, or null. */
export async function findExecutable(program: string): Promise<string | null> {
  const candidates = program.includes("/")
    ? [program]
    : (process.env["PATH"] ?? "").split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, program));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here: try the next PATH entry
    }
  }
  return null;
}

/**
 * The apps' `checkAvailability`: null when both ffmpeg and ffprobe can be found, else why not and how
 * to fix it, so the platform lists the app as unavailable (503) instead of failing each request.
 */
export async function checkFfmpeg(): Promise<{ reason: string; remedy: string } | null> {
  const missing: string[] = [];
  for (const [name, program, envName] of [
    ["ffmpeg", ffmpegPath(), "FFMPEG_PATH"],
    ["ffprobe", ffprobePath(), "FFPROBE_PATH"],
  ] as const) {
    if (!(await findExecutable(program))) {
      missing.push(program.includes("/") ? `${name} not found at ${envName}=${program}` : `${name} not found on PATH`);
    }
  }
  if (missing.length === 0) return null;
  return { reason: missing.join("; "), remedy: FFMPEG_REMEDY };
}

/**
 * The signal's reason as an Error. The platform aborts with its own error (a client cancellation),
 * which passes through unchanged so the request ends as cancelled, not failed.
 */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(`aborted: ${String(reason)}`);
}

export interface RunFfmpegOptions {
  signal?: AbortSignal;
  /** Called with 0..1, rising, as ffmpeg reports progress; needs `totalFrames` or `durationSec`. */
  onProgress?: (fraction: number) => void;
  /** Expected output duration, the denominator of the progress fraction when `totalFrames` is not given. */
  durationSec?: number;
  /**
   * Frames the (first video) output will have. When given, progress counts the frames ffmpeg has
   * handed to the encoder (`frame=`) instead of the muxed output time: x264 holds frames back for its
   * lookahead, so the output time trails the work by a second of video or so and a short clip sat at
   * 0 % until its last report.
   */
  totalFrames?: number;
  /**
   * Seconds between ffmpeg's progress reports (`-stats_period`, ffmpeg 4.4 and later; older ones keep
   * their fixed 0.5 s). ffmpeg reports no more often than this, so it is also the throttle on
   * `onProgress`. Unset: ffmpeg's default, 0.5 s.
   */
  progressPeriodSec?: number;
  /** Called with the child's pid once spawned (tests use it to check the process is gone after a cancel). */
  onSpawn?: (pid: number) => void;
}

/** Whether each ffmpeg program takes `-stats_period`, asked once per process: the answer only changes with an upgrade. */
const statsPeriodSupport = new Map<string, Promise<boolean>>();

/**
 * Whether `program` is ffmpeg 4.4 or later, which added `-stats_period`; an older one refuses the
 * option and with it the whole command. A version this cannot read (a git build: "N-…", "2024-…-git")
 * is taken as recent, which is what such builds are. One that does not run is asked again next time,
 * and meanwhile gets no option it might refuse; the real command reports why it does not run.
 */
export function supportsStatsPeriod(program: string = ffmpegPath()): Promise<boolean> {
  let known = statsPeriodSupport.get(program);
  if (!known) {
    known = new Promise<boolean>((resolve) => {
      execFile(program, ["-hide_banner", "-version"], { timeout: 10_000 }, (err, stdout) => {
        if (err) {
          statsPeriodSupport.delete(program);
          return resolve(false);
        }
        const version = /^ffmpeg version n?(\d+)\.(\d+)/m.exec(stdout);
        resolve(!version || Number(version[1]) > 4 || (Number(version[1]) === 4 && Number(version[2]) >= 4));
      });
    });
    statsPeriodSupport.set(program, known);
  }
  return known;
}

/**
 * Runs ffmpeg with `args` (inputs, filters, output). Adds `-progress pipe:1 -nostats` so progress
 * arrives as key=value lines on stdout rather than as carriage-return status lines on stderr, and
 * `-stats_period` when `progressPeriodSec` asks for another report rate.
 *
 * On abort ffmpeg gets SIGKILL, not SIGTERM: a half-written output is worthless, and SIGTERM makes
 * ffmpeg finish the muxing first, which on a large file delays the cancel. The promise rejects with
 * the abort reason once the process has exited, so the caller's temp-folder cleanup never races it.
 */
export async function runFfmpeg(args: string[], options: RunFfmpegOptions = {}): Promise<void> {
  const period = options.progressPeriodSec;
  const statsPeriod = period !== undefined && period > 0 && (await supportsStatsPeriod()) ? ["-stats_period", String(period)] : [];
  return spawnFfmpeg([...statsPeriod, ...args], options);
}

function spawnFfmpeg(args: string[], options: RunFfmpegOptions): Promise<void> {
  const { signal, onProgress, durationSec, totalFrames, onSpawn } = options;
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    // -nostdin: ffmpeg otherwise reads stdin for interactive keys and may stop on a stray byte.
    const child = spawn(ffmpegPath(), ["-hide_banner", "-nostdin", "-y", "-progress", "pipe:1", "-nostats", ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    if (child.pid !== undefined) onSpawn?.(child.pid);

    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_BYTES);
    });

    let pending = "";
    let lastFraction = -1;
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        if (!onProgress) break;
        let fraction: number;
        if (totalFrames !== undefined && totalFrames > 0) {
          const frame = /^frame=(\d+)/.exec(line.trim());
          if (!frame) continue;
          fraction = Math.min(1, Number(frame[1]) / totalFrames);
        } else {
          // Despite its name, out_time_ms is in microseconds (a long-standing ffmpeg quirk; out_time_us is the same value).
          const match = /^out_time_(?:ms|us)=(\d+)/.exec(line.trim());
          if (!match || !durationSec || durationSec <= 0) continue;
          fraction = Math.min(1, Number(match[1]) / 1e6 / durationSec);
        }
        // out_time arrives under two keys per report, and a report may repeat the last: report each increase once.
        if (fraction > lastFraction) {
          lastFraction = fraction;
          onProgress(fraction);
        }
      }
    });

    const onAbort = (): void => {
      child.kill("SIGKILL");
    };
    signal?.addEventListener("abort", onAbort, { once: true });

    child.on("error", (err) => {
      signal?.removeEventListener("abort", onAbort);
      reject(new Error(`could not start ffmpeg (${ffmpegPath()}): ${err.message}`));
    });
    child.on("close", (code, sig) => {
      signal?.removeEventListener("abort", onAbort);
      if (signal?.aborted) reject(abortReason(signal));
      else if (code === 0) resolve();
      else reject(new Error(`ffmpeg failed (${sig ?? `exit ${code}`}): ${stderr.trim().split("\n").slice(-8).join("\n")}`));
    });
  });
}

export interface VideoInfo {
  width: number;
  height: number;
  fps: number;
  duration: number;
  num_frames: number;
  codec: string;
}

/** Parses ffprobe's "num/den" rates; 0 when absent or "0/0". */
function parseRate(rate: string | undefined): number {
  if (!rate) return 0;
  const [num, den] = rate.split("/").map(Number);
  if (num === undefined || !Number.isFinite(num)) return 0;
  if (den === undefined) return num;
  return den > 0 ? num / den : 0;
}

interface ProbeJson {
  streams?: {
    codec_type?: string;
    codec_name?: string;
    width?: number;
    height?: number;
    avg_frame_rate?: string;
    r_frame_rate?: string;
    duration?: string;
    nb_frames?: string;
  }[];
  format?: { duration?: string };
}

/** Runs ffprobe and returns its stdout; rejects with stderr's tail on failure. */
export function runFfprobe(args: string[], signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(ffprobePath(), ["-v", "error", ...args], { stdio: ["ignore", "pipe", "pipe"], signal });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (err = (err + c).slice(-STDERR_TAIL_BYTES)));
    child.on("error", (e) => reject(signal?.aborted ? abortReason(signal) : new Error(`could not run ffprobe: ${e.message}`)));
    child.on("close", (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`ffprobe failed (exit ${code}): ${err.trim()}`));
    });
  });
}

/**
 * Describes the first video stream of `file`. The frame count comes from the container's `nb_frames`
 * (MP4 records it); when a container lacks it the frames are counted by decoding, which is exact but
 * slower, so it is only the fallback.
 */
export async function probe(file: string, signal?: AbortSignal): Promise<VideoInfo> {
  const json = JSON.parse(
    await runFfprobe(["-print_format", "json", "-show_streams", "-show_format", "-select_streams", "v:0", file], signal),
  ) as ProbeJson;
  const stream = json.streams?.find((s) => s.codec_type === "video");
  if (!stream || !stream.width || !stream.height) throw new Error("no video stream found");
  const fps = parseRate(stream.avg_frame_rate) || parseRate(stream.r_frame_rate);
  const duration = Number(stream.duration ?? json.format?.duration ?? 0) || 0;
  let numFrames = Number(stream.nb_frames ?? 0) || 0;
  if (!numFrames) {
    const counted = await runFfprobe(
      ["-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", file],
      signal,
    );
    numFrames = Number(counted.trim()) || Math.round(duration * fps);
  }
  return { width: stream.width, height: stream.height, fps, duration, num_frames: numFrames, codec: stream.codec_name ?? "unknown" };
}

/**
 * Runs `fn` with a fresh temp folder and deletes the folder afterwards, whether `fn` succeeded,
 * failed or was cancelled. `label` goes into the folder name (the request id, so a stuck process
 * can be traced to its request).
 */
export async function withTempDir<T>(label: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const safe = label.replace(/[^A-Za-z0-9_-]/g, "").slice(0, 64);
  const dir = await mkdtemp(path.join(tmpdir(), `darkroom-video-${safe}-`));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
