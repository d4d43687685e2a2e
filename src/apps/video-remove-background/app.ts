/**
 * `darkroom/video-remove-background`: replaces the background behind people in a video with a solid
 * colour (MP4, H.264) or with transparency (WebM, VP9 with alpha), using Robust Video Matting frame by
 * frame with its recurrent state carried from each frame to the next, which is what keeps the matte
 * stable over time. ffmpeg decodes to raw frames on a pipe and encodes from another; see
 * `src/media/video/frame-pipe.ts`.
 * @module
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { fieldError } from "../../core/errors.js";
import { defineApp, endpoint, FileUrl, VideoSchema, z, type HandlerContext } from "../../runtime/sdk.js";
import { packageWeights } from "../../media/package-weights.js";
import { RVM_PACKAGE } from "../../media/matting/rvm-model.js";
import { compositeOver, cutout, parseHexColor } from "../../media/matting/compose.js";
import { RVM_LICENSE, RVM_WEIGHTS_ORIGIN } from "../../media/matting/provenance.js";
import { readLimited } from "../../media/matting/read-input.js";
import { autoDownsampleRatio, type RvmAppState, rvmAppLifecycle } from "../../media/matting/rvm-model.js";
import { checkFfmpeg, probe, runFfmpeg, withTempDir, type VideoInfo } from "../../media/video/ffmpeg.js";
import { decodedSize, decodeFrames, FrameEncoder, probeStreamLayout } from "../../media/video/frame-pipe.js";
import { storeVideo } from "../../media/video/video-file.js";
import { probeInput } from "../../media/video/video-input.js";

/** 60 s of input. */
export const MAX_INPUT_SECONDS = 60;
/**
 * 600 frames (20 s at 30 fps): matting runs at about 1 to 2.5 frames a second on one core up to
 * 1080p, so the longest allowed job stays within the 30 min request timeout.
 */
export const MAX_FRAMES = 600;
/** 1920×1080 either way round. */
export const MAX_LONG_SIDE = 1920;
export const MAX_SHORT_SIDE = 1080;
/** 100 MiB of encoded input. */
export const MAX_INPUT_BYTES = 100 * 1024 * 1024;

const HEX_COLOR = /^#?[0-9a-fA-F]{6}$/;

const VideoRemoveBackgroundInput = z.object({
  video_url: FileUrl.describe(
    "Video with people (http(s) URL or data: URI), any container and codec ffmpeg reads; at most 60 s, 600 frames, " +
      "1920×1080 (or 1080×1920) and 100 MiB. Audio, if any, is kept (AAC in MP4, Opus in WebM).",
  ),
  background_color: z
    .string()
    .regex(HEX_COLOR, "must be a #rrggbb colour")
    .default("#00ff00")
    .describe("Colour that replaces the background in MP4 output, as #rrggbb (default green, for keying)"),
  output_format: z
    .enum(["mp4", "webm"])
    .default("mp4")
    .describe(
      "mp4: H.264 (yuv420p) with the background replaced by background_color; webm: VP9 with an alpha channel " +
        "(yuva420p), transparent where there is no person, background_color unused",
    ),
  downsample_ratio: z
    .number()
    .min(0.05)
    .max(1)
    .optional()
    .describe(
      "Scale at which RVM's first stage looks at each frame (0.05 to 1). Default: the short side brought to about " +
        "256 px (0.25 at 1080p, 0.36 at 720p, 1 up to 256 px), as the RVM authors recommend; raise it for full-body shots",
    ),
});

const VideoRemoveBackgroundOutput = z.object({
  video: VideoSchema.describe("The matted video: MP4 (H.264) on background_color, or WebM (VP9 with alpha)"),
});

type Input = z.output<typeof VideoRemoveBackgroundInput>;

function checkLimits(info: VideoInfo, width: number, height: number): void {
  if (info.duration > MAX_INPUT_SECONDS) {
    throw fieldError("video_url", `video is ${info.duration.toFixed(1)} s long; the input limit is ${MAX_INPUT_SECONDS} seconds`);
  }
  if (info.num_frames > MAX_FRAMES) {
    throw fieldError("video_url", `video has ${info.num_frames} frames; the input limit is ${MAX_FRAMES} frames`);
  }
  const long = Math.max(width, height);
  const short = Math.min(width, height);
  if (long > MAX_LONG_SIDE || short > MAX_SHORT_SIDE) {
    throw fieldError(
      "video_url",
      `video is ${width}×${height}; the input limit is ${MAX_LONG_SIDE}×${MAX_SHORT_SIDE} (or ${MAX_SHORT_SIDE}×${MAX_LONG_SIDE})`,
    );
  }
}

/** Tags outputs as BT.709 and converts with that matrix, so players show the chosen colour as chosen. */
const COLOUR_ARGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"];

/** The encoder's output after the raw frames: VP9 with alpha in WebM, or H.264 in MP4. */
function encoderOutputArgs(format: Input["output_format"], output: string): string[] {
  const scale = ["-vf", "scale=out_color_matrix=bt709:out_range=tv"];
  if (format === "webm") {
    // Constant quality (-b:v 0); cpu-used 4 with row threading keeps VP9 near the model's own pace.
    return [...scale, "-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-crf", "30", "-b:v", "0", "-deadline", "good", "-cpu-used", "4", "-row-mt", "1", ...COLOUR_ARGS, output];
  }
  return [...scale, "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", ...COLOUR_ARGS, "-movflags", "+faststart", output];
}

/** Copies the matted video and re-encodes the source's first audio stream beside it. */
function muxAudioArgs(format: Input["output_format"], video: string, source: string, output: string): string[] {
  const audio = format === "webm" ? ["-c:a", "libopus", "-b:a", "128k"] : ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"];
  // Errors only on stderr, so that a failure's message is ffmpeg's reason rather than its stream listing.
  return ["-v", "error", "-i", video, "-i", source, "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", ...audio, "-shortest", output];
}

interface MattingRun {
  frames: number;
  downsampleRatio: number;
}

const decodeFailure = (err: unknown): Error =>
  fieldError("video_url", `could not decode the video: ${err instanceof Error ? err.message : String(err)}`);

/**
 * Decodes `source` frame by frame, mattes each with one recurrent session (the state flows from each
 * frame to the next) and encodes the result to `output`. Both ffmpeg processes are killed if
 * anything fails or the request is cancelled.
 */
async function matteVideo(
  ctx: HandlerContext<RvmAppState>,
  input: Input,
  source: string,
  output: string,
  size: { width: number; height: number; totalFrames: number; rate: string },
): Promise<MattingRun> {
  const { width, height, totalFrames, rate } = size;
  const downsampleRatio = input.downsample_ratio ?? autoDownsampleRatio(width, height);
  const background = parseHexColor(input.background_color);
  const { signal } = ctx;
  // ffmpeg auto-rotates while decoding; the crop keeps even sizes, which H.264 4:2:0 requires.
  const frames = decodeFrames(source, { width, height }, { filter: `crop=${width}:${height}:0:0`, signal });
  const encoder = new FrameEncoder({
    size: { width, height },
    pixelFormat: input.output_format === "webm" ? "rgba" : "rgb24",
    frameRate: rate,
    outputArgs: encoderOutputArgs(input.output_format, output),
    signal,
  });
  const session = ctx.state.model.session(downsampleRatio);
  try {
    let done = 0;
    /** A decoder that fails mid-stream had an input it could not read: a 422, with ffmpeg's reason. */
    const nextFrame = (): Promise<IteratorResult<Buffer>> => frames.next().catch((err: unknown) => Promise.reject(decodeFailure(err)));
    for (;;) {
      const next = await nextFrame();
      if (next.done) break;
      ctx.throwIfCancelled();
      const matte = await session.next({ data: next.value, width, height });
      await encoder.write(input.output_format === "webm" ? cutout(matte) : compositeOver(matte, background));
      done++;
      const total = Math.max(totalFrames, done);
      ctx.progress(done, total, `frame ${done}/${total}`);
      // Let the runner read its messages (a cancel among them) between frames.
      await yieldToEventLoop();
    }
    ctx.throwIfCancelled();
    if (done === 0) throw fieldError("video_url", "the video has no decodable frames");
    await encoder.finish();
    return { frames: done, downsampleRatio };
  } catch (err) {
    // Stops whichever end is still running: the decoder if the encoder or the model failed, and the other way round.
    await Promise.allSettled([frames.return(undefined), encoder.abort()]);
    // A cancellation kills the decoder too, whose cut-off output must not be reported as the cause.
    ctx.throwIfCancelled();
    throw err;
  } finally {
    session.dispose();
  }
}

async function removeVideoBackground(
  input: Input,
  ctx: HandlerContext<RvmAppState>,
): Promise<z.input<typeof VideoRemoveBackgroundOutput>> {
  const data = await readLimited(ctx, input.video_url, "video_url", MAX_INPUT_BYTES);
  ctx.throwIfCancelled();

  return withTempDir(`vrb-${ctx.requestId}`, async (dir) => {
    // No extension: ffmpeg probes the container from the bytes, so any format the client sends works.
    const source = path.join(dir, "input");
    await writeFile(source, data);

    const [info, layout] = await probeInput(ctx, Promise.all([probe(source, ctx.signal), probeStreamLayout(source, ctx.signal)]));
    const shown = decodedSize(info, layout.rotation);
    checkLimits(info, shown.width, shown.height);
    if (!(info.duration > 0) || !(info.fps > 0)) {
      throw fieldError("video_url", "could not determine the video's duration and frame rate");
    }

    const ext = input.output_format;
    const matted = path.join(dir, `matted.${ext}`);
    const run = await matteVideo(ctx, input, source, matted, {
      width: shown.width & ~1,
      height: shown.height & ~1,
      totalFrames: info.num_frames,
      rate: layout.frameRate ?? String(info.fps),
    });
    ctx.log(`matted ${run.frames} frames at downsample ratio ${run.downsampleRatio.toFixed(3)}`);

    let output = matted;
    if (layout.audioCodec !== null) {
      output = path.join(dir, `with-audio.${ext}`);
      await runFfmpeg(muxAudioArgs(input.output_format, matted, source, output), { signal: ctx.signal });
    }
    ctx.throwIfCancelled();
    const video = await storeVideo(ctx, output, `background-removed.${ext}`, ext === "webm" ? "video/webm" : "video/mp4");
    ctx.bill(video.duration);
    return { video };
  });
}

export default defineApp<RvmAppState>({
  id: "darkroom/video-remove-background",
  version: "1.0.0",
  metadata: {
    display_name: "Video background removal (Robust Video Matting)",
    category: "video-to-video",
    description:
      "Replaces the background behind people in a video with a solid colour (MP4, H.264) or makes it transparent " +
      "(WebM, VP9 with alpha). Robust Video Matting (MobileNetV3) runs frame by frame with its recurrent state " +
      "carried across frames, so the matte stays stable over time. CPU only (TensorFlow.js WebAssembly and ffmpeg): " +
      "about 1 to 2.5 frames a second up to 1080p.",
    tags: ["background-removal", "matting", "video-matting", "green-screen", "video-to-video", "ffmpeg", "cpu"],
    license:
      `${RVM_LICENSE}. Uses the system ffmpeg (Debian's build is GPL-2.0-or-later as it links libx264; FFmpeg itself ` +
      "is LGPL-2.1-or-later)",
    weights_origin: RVM_WEIGHTS_ORIGIN,
  },
  // Two runners, as for remove-background: RVM on wasm runs one thread and ffmpeg's decode and
  // encode of a small frame take little, so a second video uses the second core: 1.9× the videos
  // per second of one runner on 2 cores (bench/README.md).
  knobs: { max_runners: 2, keep_alive: 300, request_timeout: 1800, startup_timeout: 120 },
  // The same input gives the same output; requests reuse results when they ask (X-Darkroom-Cache).
  cache: { reuse: "deterministic", default: "off" },
  weights: () => packageWeights([RVM_PACKAGE]),
  checkAvailability: checkFfmpeg,
  ...rvmAppLifecycle,
  endpoints: [
    endpoint({
      path: "",
      description: "Replace the background behind the people in a video",
      input: VideoRemoveBackgroundInput,
      output: VideoRemoveBackgroundOutput,
      handler: removeVideoBackground,
    }),
  ],
});
