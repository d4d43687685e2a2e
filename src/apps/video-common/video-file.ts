/**
 * fal's video output record, and storing an encoded video (MP4 or WebM) as one: every number in the
 * record is measured with ffprobe from the file actually stored, never copied from the request, so a
 * client sees what it got even where the encoder rounded (odd sizes, frame counts).
 * @module
 */
import { readFile } from "node:fs/promises";
import { FileSchema, z, type HandlerContext } from "../../runtime/sdk.js";
import { probe } from "./ffmpeg.js";

export const VideoSchema = FileSchema.extend({
  width: z.number().int(),
  height: z.number().int(),
  fps: z.number(),
  duration: z.number().describe("Seconds"),
  num_frames: z.number().int(),
});

export type VideoRecord = z.input<typeof VideoSchema>;

/** The containers the video apps write. */
export type VideoContentType = "video/mp4" | "video/webm";

/**
 * Probes `file`, stores it as an output of the request and returns fal's `video` record.
 * `contentType` must match the container in `file` (and `fileName`'s extension).
 */
export async function storeVideo(
  ctx: HandlerContext<unknown>,
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
