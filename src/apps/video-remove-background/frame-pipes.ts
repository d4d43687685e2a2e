/**
 * ffmpeg as a frame pipe: one process decodes a video to raw RGB frames on its stdout, another
 * encodes raw frames from its stdin, and the handler mattes each frame in between. The shared
 * `runFfmpeg` in video-common runs ffmpeg as a batch job with its stdio closed, which this cannot use.
 *
 * Both ends are killed with SIGKILL on abort, as `runFfmpeg` does: a half-written output is worthless,
 * and a cancelled request must not leave ffmpeg running.
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { ffmpegPath, ffprobePath } from "../video-common/ffmpeg.js";

/** Only the end of stderr explains a failure; ffmpeg can log megabytes on a long job. */
const STDERR_TAIL_BYTES = 4000;

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(`aborted: ${String(reason)}`);
}

export interface FfmpegPipe {
  readonly child: ChildProcess;
  /** Resolves when ffmpeg exits with 0; rejects with stderr's tail otherwise, or with the abort reason. */
  readonly exited: Promise<void>;
  /** SIGKILL if still running, and drops whatever output is left unread. */
  kill(): void;
}

/**
 * Spawns ffmpeg with `args`, stdin and/or stdout piped. The `exited` promise always settles (it is
 * also given a no-op catch so that an unawaited failure after another error is not unhandled).
 */
export function spawnFfmpegPipe(
  args: string[],
  options: { stdin?: boolean; stdout?: boolean; signal?: AbortSignal; onSpawn?: (pid: number) => void },
): FfmpegPipe {
  const { signal } = options;
  // -nostdin only when stdin is not the frame source: otherwise ffmpeg reads interactive keys from it.
  const child = spawn(ffmpegPath(), ["-hide_banner", "-loglevel", "error", ...(options.stdin ? [] : ["-nostdin"]), "-y", ...args], {
    stdio: [options.stdin ? "pipe" : "ignore", options.stdout ? "pipe" : "ignore", "pipe"],
  });
  if (child.pid !== undefined) options.onSpawn?.(child.pid);
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_TAIL_BYTES);
  });
  // A write to a killed encoder fails with EPIPE; the write's callback reports it, the event must not crash.
  child.stdin?.on("error", () => {});

  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    // 'close' (and so `exited`) waits for stdout to end, which unread frames would hold back forever.
    child.stdout?.destroy();
  };
  signal?.addEventListener("abort", kill, { once: true });
  const exited = new Promise<void>((resolve, reject) => {
    child.on("error", (err) => {
      signal?.removeEventListener("abort", kill);
      reject(new Error(`could not start ffmpeg (${ffmpegPath()}): ${err.message}`));
    });
    child.on("close", (code, sig) => {
      signal?.removeEventListener("abort", kill);
      if (signal?.aborted) reject(abortReason(signal));
      else if (code === 0) resolve();
      else reject(new Error(`ffmpeg failed (${sig ?? `exit ${code}`}): ${stderr.trim().split("\n").slice(-8).join("\n")}`));
    });
  });
  exited.catch(() => {});
  if (signal?.aborted) kill();
  return { child, exited, kill };
}

/**
 * Cuts a raw video stream into frames of `frameBytes`. Pulling through the async iterator pauses the
 * stream while the consumer works, so the decoder never runs more than a pipe buffer ahead.
 */
export async function* readFrames(stream: Readable, frameBytes: number): AsyncGenerator<Buffer> {
  let frame = Buffer.allocUnsafe(frameBytes);
  let filled = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let offset = 0;
    while (offset < chunk.length) {
      const n = Math.min(frameBytes - filled, chunk.length - offset);
      chunk.copy(frame, filled, offset, offset + n);
      filled += n;
      offset += n;
      if (filled === frameBytes) {
        yield frame;
        frame = Buffer.allocUnsafe(frameBytes);
        filled = 0;
      }
    }
  }
  if (filled > 0) throw new Error(`the decoded video ended inside a frame (${filled} of ${frameBytes} bytes)`);
}

/** Writes one frame and waits until the pipe has taken it; rejects if the encoder has gone. */
export function writeFrame(stdin: Writable, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    stdin.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

export interface StreamLayout {
  /** Clockwise display rotation in degrees from the container (0, 90, 180, 270). */
  rotation: number;
  /** The first video stream's average frame rate as ffprobe's exact "num/den", e.g. "30000/1001". */
  frameRate: string | null;
  hasAudio: boolean;
}

interface LayoutJson {
  streams?: {
    codec_type?: string;
    avg_frame_rate?: string;
    r_frame_rate?: string;
    tags?: { rotate?: string };
    side_data_list?: { rotation?: number }[];
  }[];
}

/**
 * What `probe` in video-common leaves out and a frame pipe needs: the display rotation (ffmpeg
 * auto-rotates while decoding, so a portrait phone video arrives with width and height swapped), the
 * exact frame rate, and whether there is audio to carry over.
 */
export function probeLayout(file: string, signal?: AbortSignal): Promise<StreamLayout> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      ffprobePath(),
      [
        "-v", "error",
        "-show_entries", "stream=codec_type,avg_frame_rate,r_frame_rate:stream_tags=rotate:stream_side_data=rotation",
        "-of", "json", file,
      ],
      { stdio: ["ignore", "pipe", "pipe"], ...(signal ? { signal } : {}) },
    );
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (err = (err + c).slice(-STDERR_TAIL_BYTES)));
    child.on("error", (e) => reject(signal?.aborted ? abortReason(signal) : new Error(`could not run ffprobe: ${e.message}`)));
    child.on("close", (code) => {
      if (code !== 0) {
        reject(new Error(`ffprobe failed (exit ${code}): ${err.trim()}`));
        return;
      }
      const streams = (JSON.parse(out) as LayoutJson).streams ?? [];
      const video = streams.find((s) => s.codec_type === "video");
      const raw = video?.side_data_list?.find((d) => typeof d.rotation === "number")?.rotation ?? Number(video?.tags?.rotate ?? 0);
      const rate = [video?.avg_frame_rate, video?.r_frame_rate].find((r) => r !== undefined && /^\d+\/[1-9]\d*$/.test(r) && !r.startsWith("0/"));
      resolve({
        rotation: ((Math.round((Number.isFinite(raw) ? raw : 0) / 90) * 90) % 360 + 360) % 360,
        frameRate: rate ?? null,
        hasAudio: streams.some((s) => s.codec_type === "audio"),
      });
    });
  });
}
