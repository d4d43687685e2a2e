/**
 * `darkroom/video-upscale`: ×2 or ×4 super-resolution of a video, frame by frame, with the ESRGAN
 * models of `darkroom/upscale` (same loader, same tiling: `src/media/upscale/`). ffmpeg decodes the frames into a pipe and
 * encodes the upscaled ones from another, so only the frames in hand are in memory (one per model
 * thread, plus one: `upscale-frames.ts`); the audio track is muxed back untouched where MP4 can carry it.
 * @module
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fieldError, isPlatformError } from "../../core/errors.js";
import { defineApp, endpoint, FileUrl, VideoSchema, z, type HandlerContext } from "../../runtime/sdk.js";
import { packageWeights } from "../../media/package-weights.js";
import { type UpscaleAppState, upscaleAppLifecycle } from "../../media/upscale/model-cache.js";
import { upscaleFrames } from "../../media/upscale/upscale-frames.js";
import { checkFfmpeg, probe, withTempDir, type VideoInfo } from "../../media/video/ffmpeg.js";
import { decodedSize, decodeFrames, FrameEncoder, probeStreamLayout, type StreamLayout } from "../../media/video/frame-pipe.js";
import { storeVideo } from "../../media/video/video-file.js";
import { probeInput } from "../../media/video/video-input.js";

/** 64 MiB of input file: bounds the download and the temp copy; CPU time runs out long before bigger files pay off. */
export const MAX_INPUT_BYTES = 64 * 1024 * 1024;
/** 1280×720 pixels per input frame: one such frame takes ~35 s (slim) to ~100 s (medium) on one core. */
export const MAX_INPUT_PIXELS = 1280 * 720;
/** 3840×2160 pixels per output frame (4K UHD): the raw frame (25 MB) and x264's work on it stay bounded. */
export const MAX_OUTPUT_PIXELS = 3840 * 2160;
export const MAX_DURATION_SECONDS = 60;
/** 60 s at 30 fps. */
export const MAX_FRAMES = 1800;
/**
 * Input pixels over all frames (frames × width × height) that fit the 600 s request timeout. The
 * models run at ~25 (slim) and ~10 (medium) thousand input pixels per second on one wasm thread
 * (measured on a shared 2-core EPYC VM, 80×60 to 320×240 frames, ×2 and ×4), so both budgets take
 * about 300–350 s there, leaving room for a busier machine.
 */
export const MAX_WORK_PIXELS = { slim: 8_000_000, medium: 3_000_000 } as const;

/**
 * Audio codecs copied into the MP4 as they are; anything else (PCM, Vorbis, FLAC, which ffmpeg 5.1
 * only muxes into MP4 as experimental) is re-encoded to AAC.
 */
const MP4_AUDIO = new Set(["aac", "mp3", "alac", "opus", "ac3", "eac3"]);

/**
 * Flags of the YUV↔RGB conversions on both sides of the model. With swscale's defaults a lossless
 * yuv420p → rgb24 → yuv420p round trip of the test clip kept 38 dB of luma PSNR; exact rounding and
 * full-resolution chroma interpolation keep 41 dB, for a few percent more ffmpeg time.
 */
const SWS_FLAGS = "bicubic+accurate_rnd+full_chroma_int";

/**
 * The encoder's output: H.264 MP4 (yuv420p, faststart), with the first audio stream of `audioFrom`
 * (input 1) beside the frames, copied as is when MP4 can carry `audioCodec`, else re-encoded to AAC.
 */
function encoderOutputArgs(output: string, audioFrom: string, audioCodec: string | null): string[] {
  const audio = audioCodec
    ? ["-i", audioFrom, "-map", "1:a:0", ...(MP4_AUDIO.has(audioCodec) ? ["-c:a", "copy"] : ["-c:a", "aac", "-b:a", "192k"])]
    : [];
  return [
    ...audio,
    "-map", "0:v:0", "-sws_flags", SWS_FLAGS,
    "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
    "-movflags", "+faststart",
    output,
  ];
}

const VideoUpscaleInput = z.object({
  video_url: FileUrl.describe(
    "Video to upscale (http(s) URL or data: URI), any container and codec ffmpeg reads. Limits: file ≤ 64 MiB; " +
      "≤ 1280×720 (921,600 pixels) per input frame; ≤ 3840×2160 per output frame; ≤ 60 s and ≤ 1800 frames; and " +
      "frames × pixels per frame ≤ 8,000,000 with slim or 3,000,000 with medium (what fits the 600 s timeout on " +
      "one CPU core, e.g. 104 frames of 320×240 with slim). Audio, if any, is kept.",
  ),
  scale: z.literal([2, 4]).default(2).describe("Upscaling factor"),
  model: z
    .enum(["slim", "medium"])
    .default("slim")
    .describe("ESRGAN size: slim is fastest; medium is a little sharper and takes about 2.5× as long"),
});

const VideoUpscaleOutput = z.object({
  video: VideoSchema.describe("The upscaled MP4 (H.264 yuv420p, faststart): same frame rate, frames and audio as the input"),
});

type Input = z.output<typeof VideoUpscaleInput>;

const megapixels = (pixels: number): string => (pixels / 1e6).toFixed(2);

/** The job a video makes, once its header has passed every limit. */
interface Plan {
  /** Size of the decoded frames (after ffmpeg applies the rotation flag). */
  width: number;
  height: number;
  /** Frames the container declares; decoding stops with a 422 past `maxFrames`. */
  frames: number;
  maxFrames: number;
  frameRate: string;
}

/** Checks every limit from ffprobe's view of the file, before any frame is decoded. */
function plan(info: VideoInfo, layout: StreamLayout, input: Input): Plan {
  const { width, height } = decodedSize(info, layout.rotation);
  const pixels = width * height;
  if (pixels > MAX_INPUT_PIXELS) {
    throw fieldError(
      "video_url",
      `frames are ${width}×${height} (${megapixels(pixels)} MP); the input limit is ${megapixels(MAX_INPUT_PIXELS)} MP ` +
        `per frame (${MAX_INPUT_PIXELS} pixels, e.g. 1280×720)`,
    );
  }
  const outPixels = pixels * input.scale * input.scale;
  if (outPixels > MAX_OUTPUT_PIXELS) {
    throw fieldError(
      "video_url",
      `output frames would be ${width * input.scale}×${height * input.scale} (${megapixels(outPixels)} MP); the output ` +
        `limit is ${megapixels(MAX_OUTPUT_PIXELS)} MP per frame (${MAX_OUTPUT_PIXELS} pixels, e.g. 3840×2160): use scale 2 or a smaller video`,
    );
  }
  const fps = info.fps;
  const frameRate = layout.frameRate ?? (fps > 0 ? String(fps) : null);
  if (!frameRate || !(info.num_frames > 0)) {
    throw fieldError("video_url", "could not determine the video's frame rate and frame count");
  }
  const duration = info.duration > 0 ? info.duration : info.num_frames / fps;
  if (duration > MAX_DURATION_SECONDS) {
    throw fieldError("video_url", `video is ${duration.toFixed(1)} s long; the duration limit is ${MAX_DURATION_SECONDS} seconds`);
  }
  if (info.num_frames > MAX_FRAMES) {
    throw fieldError("video_url", `video has ${info.num_frames} frames; the frame limit is ${MAX_FRAMES} frames`);
  }
  const budget = MAX_WORK_PIXELS[input.model];
  const work = info.num_frames * pixels;
  if (work > budget) {
    throw fieldError(
      "video_url",
      `${info.num_frames} frames of ${width}×${height} are ${work} input pixels; the work limit of the ${input.model} ` +
        `model is ${budget} pixels (frames × pixels per frame, ${Math.floor(budget / pixels)} frames at this size): ` +
        `use a shorter or smaller video${input.model === "medium" ? ", or the slim model" : ""}`,
    );
  }
  return { width, height, frames: info.num_frames, maxFrames: Math.min(MAX_FRAMES, Math.floor(budget / pixels)), frameRate };
}

/** Reads the input into `file`, turning the size limit into a 422 on the field like the other limits. */
async function saveInput(ctx: HandlerContext<unknown>, url: string, file: string): Promise<void> {
  try {
    const { data } = await ctx.files.read(url, { maxBytes: MAX_INPUT_BYTES });
    await writeFile(file, data);
  } catch (err) {
    if (isPlatformError(err) && err.code === "ERR_FILE_TOO_LARGE") {
      throw fieldError("video_url", `video file is over the input limit of ${MAX_INPUT_BYTES / 1024 / 1024} MiB (${MAX_INPUT_BYTES} bytes)`);
    }
    throw err;
  }
}

async function upscaleVideo(input: Input, ctx: HandlerContext<UpscaleAppState>): Promise<z.input<typeof VideoUpscaleOutput>> {
  return withTempDir(`vu-${ctx.requestId}`, async (dir) => {
    // No extension: ffmpeg probes the container from the bytes, so any format the client sends works.
    const source = path.join(dir, "input");
    const output = path.join(dir, "output.mp4");
    await saveInput(ctx, input.video_url, source);
    ctx.throwIfCancelled();

    const [info, layout] = await probeInput(ctx, Promise.all([probe(source, ctx.signal), probeStreamLayout(source, ctx.signal)]));
    const job = plan(info, layout, input);
    const model = await ctx.state.models.get(input.model, input.scale);
    ctx.throwIfCancelled();

    const { width, height } = job;
    const scale = input.scale;
    const encoder = new FrameEncoder({
      size: { width: width * scale, height: height * scale },
      frameRate: job.frameRate,
      outputArgs: encoderOutputArgs(output, source, layout.audioCodec),
      signal: ctx.signal,
    });
    let decoded = 0;
    let done = 0;
    /** The decoded frames, stopped with a 422 past the frame and work limits. */
    async function* framesWithinLimits(): AsyncGenerator<Buffer> {
      for await (const frame of decodeFrames(source, { width, height }, { swsFlags: SWS_FLAGS, signal: ctx.signal })) {
        if (decoded >= job.maxFrames) {
          throw fieldError(
            "video_url",
            `the video decodes to more than ${job.maxFrames} frames, the most the frame and work limits allow at ${width}×${height} ` +
              `(its header declared ${job.frames})`,
          );
        }
        decoded += 1;
        yield frame;
      }
    }
    try {
      // With model threads, the next frames are upscaled while this one is written out.
      for await (const upscaled of upscaleFrames(model, framesWithinLimits(), { width, height }, { signal: ctx.signal })) {
        await encoder.write(upscaled);
        done += 1;
        ctx.progress(done, Math.max(job.frames, done), `frame ${done}/${Math.max(job.frames, done)}`);
        ctx.throwIfCancelled();
      }
      if (done === 0) throw fieldError("video_url", "the video has no decodable frames");
      await encoder.finish();
    } catch (err) {
      await encoder.abort();
      throw err;
    }
    ctx.throwIfCancelled();

    const video = await storeVideo(ctx, output, `upscaled-x${scale}.mp4`);
    // Megapixels of output over all frames: what the work (and the image upscaler's unit) scales with.
    ctx.bill((video.num_frames * video.width * video.height) / 1e6);
    return { video };
  });
}

export default defineApp<UpscaleAppState>({
  id: "darkroom/video-upscale",
  version: "1.0.0",
  metadata: {
    display_name: "Video upscale (ESRGAN)",
    category: "video-to-video",
    description:
      "Upscales a video ×2 or ×4, frame by frame, with the ESRGAN networks of darkroom/upscale (slim or medium) on " +
      "CPU through TensorFlow.js WebAssembly. Frames stream through ffmpeg (decode and H.264 encode), so memory stays " +
      "flat; frame rate, frame count and the audio track are kept.",
    tags: ["upscale", "super-resolution", "esrgan", "video-to-video", "video", "ffmpeg", "cpu"],
    license:
      "MIT (code and model weights: @upscalerjs/esrgan-slim and -medium 1.0.0, © 2022 Kevin Scott); uses the system " +
      "ffmpeg (Debian's build is GPL-2.0-or-later as it links libx264)",
    weights_origin:
      "npm @upscalerjs/esrgan-slim and @upscalerjs/esrgan-medium 1.0.0 (UpscalerJS, github.com/thekevinscott/UpscalerJS): " +
      "RDN networks in the Keras architecture of idealo/image-super-resolution (Apache-2.0), trained by UpscalerJS on " +
      "DIV2K; the same files darkroom/upscale loads",
  },
  knobs: { max_runners: 1, keep_alive: 300, request_timeout: 600, startup_timeout: 120 },
  // The same input gives the same output; requests reuse results when they ask (X-Darkroom-Cache).
  cache: { reuse: "deterministic", default: "off" },
  weights: () => packageWeights(["@upscalerjs/esrgan-slim", "@upscalerjs/esrgan-medium", "@upscalerjs/esrgan-thick"]),
  checkAvailability: checkFfmpeg,
  ...upscaleAppLifecycle,
  endpoints: [
    endpoint({
      path: "",
      description: "Upscale a video ×2 or ×4, frame by frame",
      input: VideoUpscaleInput,
      output: VideoUpscaleOutput,
      handler: upscaleVideo,
    }),
  ],
});
