/**
 * `darkroom/frame-interpolation`: raises a video's frame rate with ffmpeg's `minterpolate`, either
 * motion-compensated (block motion estimation, the classic non-neural interpolator) or by blending
 * neighbouring frames. No learned model (RIFE, FILM) ships with weights offline, so this is the
 * interpolator that runs here.
 * @module
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fieldError } from "../../core/errors.js";
import { defineApp, endpoint, FileUrl, VideoSchema, z, type HandlerContext } from "../../runtime/sdk.js";
import { checkFfmpeg, probe, runFfmpeg, withTempDir, type VideoInfo } from "../../media/video/ffmpeg.js";
import { storeVideo } from "../../media/video/video-file.js";
import { probeInput } from "../../media/video/video-input.js";

/** 60 s of input: motion-compensated interpolation runs at a few frames per second per core at 1080p. */
export const MAX_INPUT_SECONDS = 60;
/** 1920×1080 either way round (portrait 1080×1920 is accepted too). */
export const MAX_LONG_SIDE = 1920;
export const MAX_SHORT_SIDE = 1080;
export const MAX_TARGET_FPS = 120;

const FrameInterpolationInput = z.object({
  video_url: FileUrl.describe(
    "Video to interpolate (http(s) URL or data: URI), any container and codec ffmpeg reads; at most 60 s and " +
      "1920×1080 (or 1080×1920). Audio, if any, is re-encoded to AAC and kept.",
  ),
  target_fps: z
    .number()
    .positive()
    .max(MAX_TARGET_FPS)
    .optional()
    .describe("Output frame rate, up to 120; default twice the source rate (capped at 120)"),
  mode: z
    .enum(["mci", "blend"])
    .default("mci")
    .describe("mci: motion-compensated interpolation (sharper on motion, slower); blend: cross-fade neighbouring frames"),
});

const FrameInterpolationOutput = z.object({ video: VideoSchema.describe("The interpolated MP4 (H.264, yuv420p)") });

type Input = z.output<typeof FrameInterpolationInput>;

function checkLimits(info: VideoInfo): void {
  if (info.duration > MAX_INPUT_SECONDS) {
    throw fieldError(
      "video_url",
      `video is ${info.duration.toFixed(1)} s long; the input limit is ${MAX_INPUT_SECONDS} seconds`,
    );
  }
  const long = Math.max(info.width, info.height);
  const short = Math.min(info.width, info.height);
  if (long > MAX_LONG_SIDE || short > MAX_SHORT_SIDE) {
    throw fieldError(
      "video_url",
      `video is ${info.width}×${info.height}; the input limit is ${MAX_LONG_SIDE}×${MAX_SHORT_SIDE} (or ${MAX_SHORT_SIDE}×${MAX_LONG_SIDE})`,
    );
  }
}

async function interpolate(input: Input, ctx: HandlerContext<unknown>): Promise<z.input<typeof FrameInterpolationOutput>> {
  const { data } = await ctx.files.read(input.video_url);
  ctx.throwIfCancelled();

  return withTempDir(`fi-${ctx.requestId}`, async (dir) => {
    // No extension: ffmpeg probes the container from the bytes, so any format the client sends works.
    const source = path.join(dir, "input");
    const output = path.join(dir, "output.mp4");
    await writeFile(source, data);

    const info = await probeInput(ctx, probe(source, ctx.signal));
    checkLimits(info);
    if (!(info.duration > 0) || !(info.fps > 0)) {
      throw fieldError("video_url", "could not determine the video's duration and frame rate");
    }
    const targetFps = input.target_fps ?? Math.min(MAX_TARGET_FPS, info.fps * 2);

    // minterpolate stops short of the source's end (it needs a following frame to interpolate
    // towards): two clones of the last frame give it one, and -t trims back to the source length,
    // so 2 s at 12 fps becomes 48 frames at 24 fps rather than 45.
    const filter = [
      "tpad=stop_mode=clone:stop=2",
      input.mode === "mci"
        ? `minterpolate=fps=${targetFps}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1`
        : `minterpolate=fps=${targetFps}:mi_mode=blend`,
      "format=yuv420p",
    ].join(",");
    ctx.progress(0, 100, "interpolating");
    await runFfmpeg(
      [
        "-i", source,
        "-map", "0:v:0", "-map", "0:a:0?",
        "-vf", filter,
        "-t", info.duration.toFixed(6),
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k",
        "-movflags", "+faststart",
        output,
      ],
      {
        signal: ctx.signal,
        durationSec: info.duration,
        onProgress: (f) => ctx.progress(Math.round(f * 100), 100, "interpolating"),
      },
    );
    ctx.throwIfCancelled();
    const video = await storeVideo(ctx, output, `interpolated-${Math.round(targetFps)}fps.mp4`);
    ctx.bill(video.duration);
    return { video };
  });
}

export default defineApp({
  id: "darkroom/frame-interpolation",
  version: "1.0.0",
  metadata: {
    display_name: "Frame interpolation (ffmpeg minterpolate)",
    category: "video-to-video",
    description:
      "Raises a video's frame rate (up to 120 fps) with ffmpeg's minterpolate filter: motion-compensated " +
      "interpolation (block-matching motion estimation with overlapped block compensation) or frame blending. " +
      "CPU only, no learned model.",
    tags: ["frame-interpolation", "video-to-video", "slow-motion", "ffmpeg", "video", "cpu"],
    license:
      "Uses the system ffmpeg (Debian's build is GPL-2.0-or-later as it links libx264; FFmpeg itself, " +
      "minterpolate included, is LGPL-2.1-or-later); no model weights",
    weights_origin: "none: no model weights, ffmpeg's minterpolate filter",
  },
  // Two runners: minterpolate is single-threaded, so two videos at once use both cores: 1.6×
  // the videos per second of one at a time on 2 cores (bench/README.md).
  knobs: { max_runners: 2, keep_alive: 300, request_timeout: 600, startup_timeout: 60 },
  // The same input gives the same output; requests reuse results when they ask (X-Darkroom-Cache).
  cache: { reuse: "deterministic", default: "off" },
  checkAvailability: checkFfmpeg,
  endpoints: [
    endpoint({
      path: "",
      description: "Interpolate a video to a higher frame rate",
      input: FrameInterpolationInput,
      output: FrameInterpolationOutput,
      handler: interpolate,
    }),
  ],
});
