/**
 * The client's video as the video apps first look at it: ffprobe failing on the input means the
 * client sent something that is no readable video, which is their error (a 422), not the app's.
 * @module
 */
import { fieldError } from "../../core/errors.js";
import type { Cancellable } from "../context.js";

/**
 * Awaits `probing` (ffprobe runs on the input in `video_url`) and turns its failure into a 422 on
 * `video_url` carrying ffprobe's reason. A cancellation during the probe stays a cancellation: the
 * killed ffprobe's error is not reported as the cause.
 */
export async function probeInput<T>(ctx: Cancellable, probing: Promise<T>): Promise<T> {
  try {
    return await probing;
  } catch (err) {
    ctx.throwIfCancelled();
    throw fieldError("video_url", `could not read the video: ${err instanceof Error ? err.message : String(err)}`);
  }
}
