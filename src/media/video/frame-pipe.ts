/**
 * Raw frames through ffmpeg pipes, for the apps that work on a video frame by frame (video-upscale,
 * video-remove-background): a decoder that yields one RGB frame at a time and an encoder that takes
 * frames back, so a video is never held in memory (only the frame in hand, plus what the OS pipes
 * buffer). `ffmpeg.ts` runs ffmpeg file to file with its stdio closed, which this cannot use; both
 * run the same programs (`FFMPEG_PATH`, `FFPROBE_PATH`).
 *
 * Both ends are killed with SIGKILL on abort, as `runFfmpeg` does: a half-made output is worthless,
 * and a cancelled request must not leave ffmpeg running.
 * @module
 */
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { once } from "node:events";
import type { Readable, Writable } from "node:stream";
import { abortReason, ffmpegPath, runFfprobe, STDERR_TAIL_BYTES } from "./ffmpeg.js";

/** What `probe()` in `ffmpeg.ts` leaves out and frame-by-frame work needs. */
export interface StreamLayout {
  /**
   * Clockwise display rotation from the stream's display matrix (or legacy `rotate` tag), as 0, 90,
   * 180 or 270. ffmpeg applies it while decoding, so at 90 and 270 the frames come out with width and
   * height swapped (see {@link decodedSize}).
   */
  rotation: number;
  /** The video stream's average frame rate as ffprobe's exact `num/den`, e.g. `30000/1001`; null if unknown. */
  frameRate: string | null;
  /** Codec of the first audio stream, or null when there is none. */
  audioCodec: string | null;
}

interface LayoutJson {
  streams?: {
    codec_type?: string;
    codec_name?: string;
    avg_frame_rate?: string;
    r_frame_rate?: string;
    tags?: { rotate?: string };
    side_data_list?: { rotation?: number }[];
  }[];
}

/** A `num/den` rate with both parts positive, else null (ffprobe writes `0/0` when it does not know). */
function exactRate(rate: string | undefined): string | null {
  const match = /^(\d+)\/(\d+)$/.exec(rate ?? "");
  return match && Number(match[1]) > 0 && Number(match[2]) > 0 ? match[0] : null;
}

/** Rotation, exact frame rate and audio codec of `file`, from one ffprobe run. */
export async function probeStreamLayout(file: string, signal?: AbortSignal): Promise<StreamLayout> {
  const out = await runFfprobe(
    [
      "-show_entries", "stream=codec_type,codec_name,avg_frame_rate,r_frame_rate:stream_tags=rotate:stream_side_data=rotation",
      "-of", "json", file,
    ],
    signal,
  );
  const streams = (JSON.parse(out) as LayoutJson).streams ?? [];
  const video = streams.find((s) => s.codec_type === "video");
  const audio = streams.find((s) => s.codec_type === "audio");
  const raw = video?.side_data_list?.find((d) => typeof d.rotation === "number")?.rotation ?? Number(video?.tags?.rotate ?? 0);
  return {
    // The display matrix may say -90 or 450; whole quarter turns in 0..270 are what ffmpeg applies.
    rotation: ((Math.round((Number.isFinite(raw) ? raw : 0) / 90) * 90) % 360 + 360) % 360,
    frameRate: exactRate(video?.avg_frame_rate) ?? exactRate(video?.r_frame_rate),
    audioCodec: audio?.codec_name ?? null,
  };
}

export interface FrameSize {
  width: number;
  height: number;
}

/** The size of the frames ffmpeg decodes from a stream stored at `stored` and turned by `rotation`. */
export function decodedSize(stored: FrameSize, rotation: number): FrameSize {
  const quarterTurn = rotation === 90 || rotation === 270;
  return quarterTurn ? { width: stored.height, height: stored.width } : { width: stored.width, height: stored.height };
}

type Child = ChildProcessByStdio<Writable | null, Readable | null, Readable>;

interface ProcessOptions {
  signal?: AbortSignal;
  /** Called with the child's pid once spawned (tests use it to check the process is gone after a cancel). */
  onSpawn?: (pid: number) => void;
}

/** A spawned ffmpeg with a piped stdin or stdout: its exit as a promise, stderr's tail for the error message. */
class FfmpegProcess {
  readonly child: Child;
  /** Settles once ffmpeg has exited; rejects only when it could not be started. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #what: string;
  readonly #signal: AbortSignal | undefined;
  #stderr = "";

  /** `what` names the job in error messages ("decoding", "encoding"). */
  constructor(what: string, args: string[], pipe: "stdin" | "stdout", options: ProcessOptions) {
    this.#what = what;
    this.#signal = options.signal;
    // -nostdin only turns off ffmpeg's interactive keys; a `pipe:0` input is still read.
    this.child = spawn(ffmpegPath(), ["-hide_banner", "-nostdin", "-v", "error", "-y", ...args], {
      stdio: [pipe === "stdin" ? "pipe" : "ignore", pipe === "stdout" ? "pipe" : "ignore", "pipe"],
    }) as Child;
    if (this.child.pid !== undefined) options.onSpawn?.(this.child.pid);
    this.child.stderr.setEncoding("utf8").on("data", (c: string) => {
      this.#stderr = (this.#stderr + c).slice(-STDERR_TAIL_BYTES);
    });
    this.exited = new Promise((resolve, reject) => {
      this.child.once("error", (err) => reject(new Error(`could not start ffmpeg (${ffmpegPath()}): ${err.message}`)));
      this.child.once("close", (code, signal) => resolve({ code, signal }));
    });
    const onAbort = (): void => this.kill();
    this.#signal?.addEventListener("abort", onAbort, { once: true });
    const forget = (): void => this.#signal?.removeEventListener("abort", onAbort);
    // Whoever awaits `exited` (or `done`) reports a failed spawn; this handler only unhooks the signal.
    this.exited.then(forget, forget);
  }

  /** SIGKILL: a half-made output is worthless, and SIGTERM would first finish muxing it. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }

  /**
   * Resolves when ffmpeg exited with 0. Rejects with the abort reason after an abort (the kill, not
   * ffmpeg, ended it), else with the tail of its stderr.
   */
  async done(): Promise<void> {
    const { code, signal } = await this.exited;
    if (this.#signal?.aborted) throw abortReason(this.#signal);
    if (code === 0) return;
    const tail = this.#stderr.trim().split("\n").slice(-8).join("\n");
    throw new Error(`ffmpeg ${this.#what} failed (${signal ?? `exit ${code}`})${tail ? `: ${tail}` : ""}`);
  }
}

export interface DecodeOptions extends ProcessOptions {
  /** A filter graph (`-vf`) applied before the frames are piped out, e.g. a crop. */
  filter?: string;
  /** swscale flags of the conversion to RGB (`-sws_flags`); ffmpeg's defaults when left out. */
  swsFlags?: string;
}

/**
 * Decodes the first video stream of `file` to RGB24 frames of `size` (the size after ffmpeg's
 * automatic rotation and after `filter`), one Buffer per frame, in order. Frames pass through as
 * decoded (`-fps_mode passthrough`): none is duplicated or dropped to fit a constant rate, so a
 * variable-rate clip yields exactly its frames. The decoder only runs ahead by what the pipe holds:
 * it waits while the caller works on a frame. Stopping early (break, throw, `return()`, abort) kills it.
 */
export async function* decodeFrames(file: string, size: FrameSize, options: DecodeOptions = {}): AsyncGenerator<Buffer> {
  options.signal?.throwIfAborted();
  const frameBytes = size.width * size.height * 3;
  const decoder = new FfmpegProcess(
    "decoding",
    [
      "-i", file, "-map", "0:v:0",
      ...(options.filter ? ["-vf", options.filter] : []),
      "-fps_mode", "passthrough",
      ...(options.swsFlags ? ["-sws_flags", options.swsFlags] : []),
      "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
    ],
    "stdout",
    options,
  );
  try {
    let frame = Buffer.allocUnsafe(frameBytes);
    let filled = 0;
    for await (const chunk of decoder.child.stdout as Readable) {
      const bytes = chunk as Buffer;
      let offset = 0;
      while (offset < bytes.length) {
        const n = Math.min(frameBytes - filled, bytes.length - offset);
        bytes.copy(frame, filled, offset, offset + n);
        filled += n;
        offset += n;
        if (filled === frameBytes) {
          yield frame;
          // A fresh buffer: the caller may still hold the one just yielded.
          frame = Buffer.allocUnsafe(frameBytes);
          filled = 0;
        }
      }
    }
    // ffmpeg's own exit error explains a cut-off stream better than the byte count would.
    await decoder.done();
    if (filled !== 0) throw new Error(`the decoder ended inside a frame (${filled} of ${frameBytes} bytes)`);
  } finally {
    decoder.kill();
    await decoder.exited.catch(() => undefined);
  }
}

export interface EncoderOptions extends ProcessOptions {
  /** Size of every frame written. */
  size: FrameSize;
  /** Layout of the frames written: packed RGB, or RGBA for an output that keeps alpha. */
  pixelFormat?: "rgb24" | "rgba";
  /** Frame rate of the frames written, e.g. `12` or `30000/1001`. */
  frameRate: string;
  /**
   * Everything after the raw-frame input (input 0): further inputs, `-map`s, codec options and,
   * last, the output file.
   */
  outputArgs: string[];
}

/**
 * Encodes raw frames written one at a time, with the codec and container `outputArgs` choose.
 * `write` waits while the pipe is full, so frames are never queued in memory faster than the encoder
 * takes them.
 */
export class FrameEncoder {
  readonly #ffmpeg: FfmpegProcess;
  readonly #frameBytes: number;
  readonly #signal: AbortSignal | undefined;
  #writeError: Error | undefined;

  constructor(options: EncoderOptions) {
    const { size, frameRate, signal } = options;
    const pixelFormat = options.pixelFormat ?? "rgb24";
    signal?.throwIfAborted();
    this.#frameBytes = size.width * size.height * (pixelFormat === "rgba" ? 4 : 3);
    this.#signal = signal;
    this.#ffmpeg = new FfmpegProcess(
      "encoding",
      [
        "-f", "rawvideo", "-pix_fmt", pixelFormat, "-s", `${size.width}x${size.height}`, "-framerate", frameRate, "-i", "pipe:0",
        ...options.outputArgs,
      ],
      "stdin",
      options,
    );
    // Without a listener an EPIPE (ffmpeg gone) would be an uncaught error that takes the runner down.
    this.#stdin.on("error", (err) => {
      this.#writeError ??= err;
    });
  }

  get #stdin(): Writable {
    return this.#ffmpeg.child.stdin as Writable;
  }

  async write(frame: Uint8Array): Promise<void> {
    if (frame.length !== this.#frameBytes) throw new Error(`frame holds ${frame.length} bytes, expected ${this.#frameBytes}`);
    await this.#failIfGone();
    if (this.#stdin.write(frame)) return;
    // Wait for room, but not for ever: a dead encoder never drains.
    // An EPIPE rejects `once`; #failIfGone then reports the exit status and stderr instead.
    await Promise.race([once(this.#stdin, "drain").catch(() => undefined), this.#ffmpeg.exited]);
    await this.#failIfGone();
  }

  /** Ends the input and waits for the output file to be written. */
  async finish(): Promise<void> {
    this.#stdin.end();
    await this.#ffmpeg.done();
  }

  /** Kills the encoder and waits until it has exited. */
  async abort(): Promise<void> {
    this.#ffmpeg.kill();
    await this.#ffmpeg.exited.catch(() => undefined);
  }

  async #failIfGone(): Promise<void> {
    if (this.#signal?.aborted) throw abortReason(this.#signal);
    const child = this.#ffmpeg.child;
    const gone = child.exitCode !== null || child.signalCode !== null;
    if (!gone && !this.#writeError) return;
    // The exit status and stderr say why; the EPIPE alone would not.
    await this.#ffmpeg.done();
    throw this.#writeError ?? new Error("ffmpeg encoding stopped before its input ended");
  }
}
