/**
 * ffmpeg and ffprobe for the video app tests: making clips, turning files into data URIs, reading
 * frames and stream details back out of the outputs. Uses the system programs, as the apps do.
 * @module
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { toDataUri } from "../../src/storage/data-uri.js";

const run = promisify(execFile);

/** Runs ffmpeg quietly, overwriting its output. */
export async function ffmpeg(...args: string[]): Promise<void> {
  await run("ffmpeg", ["-v", "error", "-y", ...args]);
}

/** A file as a base64 data URI, the way the tests hand videos to the apps. */
export async function fileDataUri(file: string, type = "video/mp4"): Promise<string> {
  return toDataUri(await readFile(file), type);
}

/**
 * Downloads a video the platform stored (a `video` record of a response), checks that it is
 * `file_size` bytes, writes it to `file` for ffprobe and ffmpeg, and returns its bytes.
 */
export async function downloadVideo(video: { url: string; file_size: number }, file: string): Promise<Buffer> {
  const bytes = Buffer.from(await (await fetch(video.url)).arrayBuffer());
  assert.equal(bytes.length, video.file_size);
  await writeFile(file, bytes);
  return bytes;
}

/**
 * A `testsrc2` pattern clip of `size` (e.g. "64x48"), `seconds` long at `fps`, written to `dir/name`
 * and returned as a data URI. ultrafast and a high CRF keep it cheap to make.
 */
export async function syntheticClip(dir: string, name: string, size: string, seconds: number, fps: number, crf = 35): Promise<string> {
  const file = path.join(dir, name);
  await ffmpeg("-f", "lavfi", "-i", `testsrc2=s=${size}:r=${fps}:d=${seconds}`, "-c:v", "libx264", "-preset", "ultrafast", "-crf", String(crf), file);
  return fileDataUri(file);
}

/**
 * Frame `index` of `file` as 8-bit grey pixels, w×h: the frame's own size, or with `resize` scaled to
 * w×h (area filter), so that frames of any size compare.
 */
export async function grabFrame(file: string, index: number, w: number, h: number, options: { resize?: boolean } = {}): Promise<Buffer> {
  const filter = `select=eq(n\\,${index})${options.resize ? `,scale=${w}:${h}:flags=area` : ""}`;
  const { stdout } = await run(
    "ffmpeg",
    ["-v", "error", "-i", file, "-vf", filter, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"],
    { encoding: "buffer", maxBuffer: 64 << 20 },
  );
  assert.equal(stdout.length, w * h, `frame ${index} of ${path.basename(file)} was extracted`);
  return stdout;
}

/** One stream as `ffprobe -show_streams` describes it (the fields the tests read). */
export interface StreamInfo {
  codec_type: string;
  codec_name: string;
  width?: number;
  height?: number;
  r_frame_rate?: string;
  nb_frames?: string;
  duration?: string;
}

export async function ffprobeStreams(file: string): Promise<StreamInfo[]> {
  const { stdout } = await run("ffprobe", ["-v", "error", "-print_format", "json", "-show_streams", file]);
  return (JSON.parse(stdout) as { streams: StreamInfo[] }).streams;
}
