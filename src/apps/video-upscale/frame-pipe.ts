/**
 * Raw RGB frames through ffmpeg pipes: a decoder that yields one frame at a time and an encoder that
 * takes them back, so that a video is never held in memory (only the frame being worked on, plus
 * what the OS pipes buffer). `video-common/ffmpeg.ts` runs ffmpeg file to file; this module adds the
 * piped form the frame-by-frame apps need, with the same programs (`FFMPEG_PATH`, `FFPROBE_PATH`).
 * @module
 */
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { once } from "node:events";
import type { Readable, Writable } from "node:stream";
import { ffmpegPath, ffprobePath } from "../video-common/ffmpeg.js";

/** Only the end of stderr explains a failure; ffmpeg can log a lot before it. */
const STDERR_TAIL_BYTES = 4000;

/**
 * Flags of the YUV↔RGB conversions on both sides of the model. With swscale's defaults a lossless
 * yuv420p → rgb24 → yuv420p round trip of the test clip kept 38 dB of luma PSNR; exact rounding and
 * full-resolution chroma interpolation keep 41 dB, for a few percent more ffmpeg time.
 */
const SWS_FLAGS = "bicubic+accurate_rnd+full_chroma_int";

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(`aborted: ${String(reason)}`);
}

/** What `video-common`'s `probe()` leaves out and frame-by-frame work needs. */
export interface StreamDetails {
  /**
   * Whether the stream's display matrix (or legacy `rotate` tag) turns it by 90° or 270°: ffmpeg
   * then rotates the frames as it decodes them, so they come out with width and height swapped.
   */
  quarterTurn: boolean;
  /** The video stream's average frame rate as ffprobe's exact `num/den`, e.g. `30000/1001`; null if unknown. */
  frameRate: string | null;
  /** Codec of the first audio stream, or null when there is none. */
  audioCodec: string | null;
}

interface StreamsJson {
  streams?: {
    codec_type?: string;
    codec_name?: string;
    avg_frame_rate?: string;
    r_frame_rate?: string;
    tags?: { rotate?: string };
    side_data_list?: { rotation?: number }[];
  }[];
}

const validRate = (rate: string | undefined): string | null => {
  if (!rate) return null;
  const [num, den] = rate.split("/").map(Number);
  return num !== undefined && den !== undefined && num > 0 && den > 0 ? rate : null;
};

/** Quarter turn, exact frame rate and audio codec of `file`, from one ffprobe run. */
export async function probeStreamDetails(file: string, signal?: AbortSignal): Promise<StreamDetails> {
  const child = spawn(ffprobePath(), ["-v", "error", "-print_format", "json", "-show_streams", file], {
    stdio: ["ignore", "pipe", "pipe"],
    ...(signal ? { signal } : {}),
  });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => (err = (err + c).slice(-STDERR_TAIL_BYTES)));
  const [code] = (await once(child, "close").catch((e: unknown) => {
    throw signal?.aborted ? abortReason(signal) : new Error(`could not run ffprobe: ${e instanceof Error ? e.message : String(e)}`);
  })) as [number | null];
  if (code !== 0) throw new Error(`ffprobe failed (exit ${code}): ${err.trim()}`);
  const json = JSON.parse(out) as StreamsJson;
  const video = json.streams?.find((s) => s.codec_type === "video");
  const audio = json.streams?.find((s) => s.codec_type === "audio");
  // Which way it turns does not matter here, only whether width and height trade places.
  const matrix = video?.side_data_list?.find((d) => typeof d.rotation === "number")?.rotation;
  const degrees = matrix ?? (Number(video?.tags?.rotate ?? 0) || 0);
  return {
    quarterTurn: Math.abs(Math.round(degrees / 90)) % 2 === 1,
    frameRate: validRate(video?.avg_frame_rate) ?? validRate(video?.r_frame_rate),
    audioCodec: audio?.codec_name ?? null,
  };
}

type Child = ChildProcessByStdio<Writable | null, Readable | null, Readable>;

/** A spawned ffmpeg: its exit as a promise, with stderr's tail for the error message. */
class FfmpegProcess {
  readonly child: Child;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #stderr = "";

  constructor(args: string[], stdin: "pipe" | "ignore", stdout: "pipe" | "ignore") {
    // -nostdin only turns off ffmpeg's interactive keys; a `pipe:0` input is still read.
    this.child = spawn(ffmpegPath(), ["-hide_banner", "-nostdin", "-v", "error", "-y", ...args], {
      stdio: [stdin, stdout, "pipe"],
    }) as Child;
    this.child.stderr.setEncoding("utf8").on("data", (c: string) => {
      this.#stderr = (this.#stderr + c).slice(-STDERR_TAIL_BYTES);
    });
    this.exited = new Promise((resolve, reject) => {
      this.child.once("error", (err) => reject(new Error(`could not start ffmpeg (${ffmpegPath()}): ${err.message}`)));
      this.child.once("close", (code, signal) => resolve({ code, signal }));
    });
    // A failed spawn rejects `exited`; whoever awaits it reports the error.
    this.exited.catch(() => undefined);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** SIGKILL: a half-made output is worthless, and SIGTERM would first finish muxing it. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }

  /** Resolves when ffmpeg exited with 0; rejects with the tail of its stderr otherwise. */
  async done(what: string): Promise<void> {
    const { code, signal } = await this.exited;
    if (code === 0) return;
    const tail = this.#stderr.trim().split("\n").slice(-8).join("\n");
    throw new Error(`ffmpeg ${what} failed (${signal ?? `exit ${code}`})${tail ? `: ${tail}` : ""}`);
  }
}

export interface FrameSize {
  width: number;
  height: number;
}

export interface DecodeOptions {
  signal?: AbortSignal;
  onSpawn?: (pid: number) => void;
}

/**
 * Decodes the first video stream of `file` to RGB24 frames of `size` (the size after ffmpeg's
 * automatic rotation), one Buffer per frame, in order. Frames pass through as decoded
 * (`-fps_mode passthrough`): none is duplicated or dropped to fit a constant rate, so a variable-rate
 * clip yields exactly its frames. The decoder only runs ahead by what the pipe holds: it waits
 * while the caller works on a frame. Stopping early (break, throw, abort) kills it.
 */
export async function* decodeFrames(file: string, size: FrameSize, options: DecodeOptions = {}): AsyncGenerator<Buffer> {
  const { signal } = options;
  signal?.throwIfAborted();
  const frameBytes = size.width * size.height * 3;
  const decoder = new FfmpegProcess(
    ["-i", file, "-map", "0:v:0", "-fps_mode", "passthrough", "-sws_flags", SWS_FLAGS, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
    "ignore",
    "pipe",
  );
  if (decoder.pid !== undefined) options.onSpawn?.(decoder.pid);
  const onAbort = (): void => decoder.kill();
  signal?.addEventListener("abort", onAbort, { once: true });
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
    if (signal?.aborted) throw abortReason(signal);
    await decoder.done("decoding");
    if (filled !== 0) throw new Error(`the decoder ended inside a frame (${filled} of ${frameBytes} bytes)`);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    decoder.kill();
    await decoder.exited.catch(() => undefined);
  }
}

export interface EncoderOptions {
  /** Size of every frame written. */
  size: FrameSize;
  /** Output frame rate, e.g. `12` or `30000/1001`. */
  frameRate: string;
  output: string;
  /** A file whose first audio stream goes into the output; omit for a silent output. */
  audioFrom?: string;
  /** Copy the audio as is (it must fit MP4, as AAC does) instead of re-encoding it to AAC. */
  copyAudio?: boolean;
  signal?: AbortSignal;
  onSpawn?: (pid: number) => void;
}

/**
 * Encodes RGB24 frames written one at a time into an H.264 MP4 (yuv420p, faststart), muxing the
 * audio of another file beside them. `write` waits while the pipe is full, so frames are never queued
 * in memory faster than x264 takes them.
 */
export class FrameEncoder {
  readonly #ffmpeg: FfmpegProcess;
  readonly #frameBytes: number;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => this.#ffmpeg.kill();
  #writeError: Error | undefined;

  constructor(options: EncoderOptions) {
    const { size, frameRate, output, audioFrom, copyAudio, signal } = options;
    signal?.throwIfAborted();
    this.#frameBytes = size.width * size.height * 3;
    this.#signal = signal;
    const audio = audioFrom
      ? ["-i", audioFrom, "-map", "1:a:0", ...(copyAudio ? ["-c:a", "copy"] : ["-c:a", "aac", "-b:a", "192k"])]
      : [];
    this.#ffmpeg = new FfmpegProcess(
      [
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", `${size.width}x${size.height}`, "-framerate", frameRate, "-i", "pipe:0",
        ...audio,
        "-map", "0:v:0", "-sws_flags", SWS_FLAGS,
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart",
        output,
      ],
      "pipe",
      "ignore",
    );
    if (this.#ffmpeg.pid !== undefined) options.onSpawn?.(this.#ffmpeg.pid);
    // Without a listener an EPIPE (ffmpeg gone) would be an uncaught error that takes the runner down.
    this.#stdin.on("error", (err) => {
      this.#writeError ??= err;
    });
    signal?.addEventListener("abort", this.#onAbort, { once: true });
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

  /** Ends the input and waits for the MP4 to be written. */
  async finish(): Promise<void> {
    this.#stdin.end();
    try {
      await this.#ffmpeg.done("encoding");
      if (this.#signal?.aborted) throw abortReason(this.#signal);
    } finally {
      this.#signal?.removeEventListener("abort", this.#onAbort);
    }
  }

  /** Kills the encoder and waits until it has exited. */
  async abort(): Promise<void> {
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#ffmpeg.kill();
    await this.#ffmpeg.exited.catch(() => undefined);
  }

  async #failIfGone(): Promise<void> {
    if (this.#signal?.aborted) throw abortReason(this.#signal);
    const gone = this.#ffmpeg.child.exitCode !== null || this.#ffmpeg.child.signalCode !== null;
    if (!gone && !this.#writeError) return;
    // The exit status and stderr say why; the EPIPE alone would not.
    await this.#ffmpeg.done("encoding");
    throw this.#writeError ?? new Error("ffmpeg encoding stopped before its input ended");
  }
}
