/**
 * Storing an encoded video (MP4 or WebM) as fal's video output record (`VideoSchema` in
 * `src/runtime/sdk.ts` declares it to clients): every number in the record is measured with ffprobe
 * from the file actually stored, never copied from the request, so a client sees what it got even
 * where the encoder rounded (odd sizes, frame counts).
 * @module
 */
import { readFile } from "node:fs/promises";
import type { OutputFiles } from "../context.js";
import { probe } from "./ffmpeg.js";

/** fal's `video` record, as the SDK's `VideoSchema` describes it. */
export interface VideoRecord {
  url: string;
  content_type: string;
  file_name: string;
  file_size: number;
  width: number;
  height: number;
  fps: number;
  /** Seconds. */
  duration: number;
  num_frames: number;
}

/** The containers the video apps write. */
export type VideoContentType = "video/mp4" | "video/webm";

/**
 * Probes `file`, stores it as an output of the request and returns fal's `video` record.
 * `contentType` must match the container in `file` (and `fileName`'s extension).
 */
export async function storeVideo(
  ctx: OutputFiles,
  file: string,
  fileName: string,
  contentType: VideoContentType = "video/mp4",
): Promise<VideoRecord> {
  const info = await probe(file, ctx.signal);
  const stored = await ctx.files.put(await readFile(file), {
    contentType,
    fileName,
    width: info.width,
    height: info.height,
  });
  return {
    url: stored.url,
    content_type: contentType,
    file_name: stored.file_name,
    file_size: stored.file_size,
    width: info.width,
    height: info.height,
    // Rounded so that 24000/1001-style rates read as 23.976 rather than a long float.
    fps: Math.round(info.fps * 1000) / 1000,
    duration: Math.round(info.duration * 1000) / 1000,
    num_frames: info.num_frames,
  };
}
