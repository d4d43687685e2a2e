/**
 * `darkroom/image-to-video`: turns one still image into an H.264 MP4 with a Ken Burns pan or zoom,
 * using ffmpeg's `zoompan` filter. No model is involved: this is the honest image-to-video that
 * runs offline here (no generative video model ships with weights in npm or Debian).
 *
 * Aspect ratio: the image is scaled to COVER the output frame and centre-cropped (never padded), so
 * the frame is always filled; the edges of an image whose aspect differs from the output are cut off.
 * @module
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { fieldError } from "../../core/errors.js";
import { defineApp, endpoint, FileUrl, VideoSchema, z, type HandlerContext } from "../../runtime/sdk.js";
import { checkFfmpeg, runFfmpeg, withTempDir } from "../../media/video/ffmpeg.js";
import { storeVideo } from "../../media/video/video-file.js";

/** 16 MP: decoding and the 2× supersampled canvas below stay within a few hundred MB. */
export const MAX_INPUT_PIXELS = 16_000_000;
/** 1200 frames (20 s at 60 fps): bounds encode time to well under the request timeout at 1080p on CPU. */
export const MAX_OUTPUT_FRAMES = 1200;
export const MAX_WIDTH = 1920;
export const MAX_HEIGHT = 1080;

/** Presets are 16:9 landscape; 854 rather than 853.3 because H.264 with yuv420p needs even sizes. */
const PRESETS = {
  "480p": { width: 854, height: 480 },
  "720p": { width: 1280, height: 720 },
  "1080p": { width: 1920, height: 1080 },
} as const;

/**
 * Seconds between progress reports while encoding: ten a second reads as a steady climb to a client,
 * and is few enough messages for the runner link and every open status stream.
 */
const PROGRESS_PERIOD_SEC = 0.1;

/** How far the zoom goes: 1.0 → 1.3 (or back), and the zoom held while panning so there is room to move. */
const ZOOM_RANGE = 0.3;
const PAN_ZOOM = 1.3;

const ImageToVideoInput = z.object({
  image_url: FileUrl.describe(
    "Image to animate (http(s) URL or data: URI): PNG, JPEG, WebP, GIF, TIFF or AVIF, at most 16 megapixels. " +
      "It is scaled to cover the output frame and centre-cropped, never padded.",
  ),
  duration: z.number().min(1).max(20).default(4).describe("Length of the video in seconds (1 to 20)"),
  fps: z.number().int().min(6).max(60).default(24).describe("Frames per second (6 to 60)"),
  resolution: z
    .union([
      z.enum(["480p", "720p", "1080p"]),
      z.object({
        width: z.number().int().min(64).max(MAX_WIDTH),
        height: z.number().int().min(64).max(MAX_HEIGHT),
      }),
    ])
    .default("720p")
    .describe(
      "480p (854×480), 720p (1280×720), 1080p (1920×1080), or {width, height} up to 1920×1080; odd sizes are " +
        "rounded down to even, as H.264 4:2:0 requires",
    ),
  motion: z
    .enum(["zoom_in", "zoom_out", "pan_left", "pan_right"])
    .default("zoom_in")
    .describe("Camera move: zoom in to 1.3× on the centre, zoom out from it, or pan across at 1.3× zoom"),
});

const ImageToVideoOutput = z.object({ video: VideoSchema.describe("The MP4 (H.264, yuv420p, faststart)") });

type Input = z.output<typeof ImageToVideoInput>;

function outputSize(resolution: Input["resolution"]): { width: number; height: number } {
  if (typeof resolution === "string") return PRESETS[resolution];
  return { width: resolution.width & ~1, height: resolution.height & ~1 };
}

/**
 * zoompan expressions for each motion. `on` is the output frame number and `last` the final one, so
 * each move spans the whole clip. zoompan rounds x/y to whole pixels of its input, which makes slow
 * moves judder; running it on a canvas twice the output size halves that step to half an output pixel.
 */
function zoompanExpressions(motion: Input["motion"], last: number): { z: string; x: string; y: string } {
  const t = `(on/${Math.max(1, last)})`;
  const centreX = "(iw-iw/zoom)/2";
  const centreY = "(ih-ih/zoom)/2";
  switch (motion) {
    case "zoom_in":
      return { z: `1+${ZOOM_RANGE}*${t}`, x: centreX, y: centreY };
    case "zoom_out":
      return { z: `${1 + ZOOM_RANGE}-${ZOOM_RANGE}*${t}`, x: centreX, y: centreY };
    case "pan_left":
      // The view starts at the right edge and moves left.
      return { z: String(PAN_ZOOM), x: `(iw-iw/zoom)*(1-${t})`, y: centreY };
    case "pan_right":
      return { z: String(PAN_ZOOM), x: `(iw-iw/zoom)*${t}`, y: centreY };
  }
}

async function imageToVideo(input: Input, ctx: HandlerContext<unknown>): Promise<z.input<typeof ImageToVideoOutput>> {
  const { width, height } = outputSize(input.resolution);
  const frames = Math.round(input.duration * input.fps);
  // Unreachable through the schema's own bounds today (20 s × 60 fps = 1200), kept so that widening either bound cannot silently lift it.
  if (frames > MAX_OUTPUT_FRAMES) {
    throw fieldError("duration", `${frames} frames (duration × fps) exceed the limit of ${MAX_OUTPUT_FRAMES} output frames`);
  }

  const { data } = await ctx.files.read(input.image_url);
  let meta: sharp.Metadata;
  try {
    meta = await sharp(data).metadata();
  } catch (err) {
    throw fieldError("image_url", `could not decode the image: ${err instanceof Error ? err.message : String(err)}`);
  }
  const { width: inW, height: inH } = meta.autoOrient;
  if (inW * inH > MAX_INPUT_PIXELS) {
    throw fieldError(
      "image_url",
      `image is ${inW}×${inH} (${((inW * inH) / 1e6).toFixed(1)} MP); the input limit is ` +
        `${MAX_INPUT_PIXELS / 1e6} megapixels (${MAX_INPUT_PIXELS} pixels)`,
    );
  }
  // Normalise to an upright 8-bit PNG here: sharp applies EXIF orientation and flattens formats that
  // ffmpeg's image demuxers read differently (AVIF, animated GIF, CMYK JPEG).
  const png = await sharp(data, { limitInputPixels: MAX_INPUT_PIXELS }).autoOrient().toColourspace("srgb").png({ compressionLevel: 1 }).toBuffer();
  ctx.throwIfCancelled();

  return withTempDir(`i2v-${ctx.requestId}`, async (dir) => {
    const source = path.join(dir, "input.png");
    const output = path.join(dir, "output.mp4");
    await writeFile(source, png);

    const canvasW = width * 2;
    const canvasH = height * 2;
    const { z: zoom, x, y } = zoompanExpressions(input.motion, frames - 1);
    const filter = [
      `scale=${canvasW}:${canvasH}:force_original_aspect_ratio=increase:flags=lanczos`,
      `crop=${canvasW}:${canvasH}`,
      "setsar=1",
      // d = frames: zoompan emits that many frames from the one input image, at the requested rate.
      `zoompan=z='${zoom}':x='${x}':y='${y}':d=${frames}:s=${width}x${height}:fps=${input.fps}`,
      "format=yuv420p",
    ].join(",");
    // Progress counts encoded frames: zoompan makes them at a steady rate, so the climb is even, where
    // the muxed output time stayed at 0 while x264 filled its lookahead and then jumped.
    let encoded = 0;
    ctx.progress(0, frames, "encoding");
    await runFfmpeg(
      [
        "-i", source,
        "-vf", filter,
        "-frames:v", String(frames),
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart",
        output,
      ],
      {
        signal: ctx.signal,
        totalFrames: frames,
        progressPeriodSec: PROGRESS_PERIOD_SEC,
        onProgress: (f) => {
          const frame = Math.round(f * frames);
          // ffmpeg's first report can say frame 0, which the 0 above already said.
          if (frame <= encoded) return;
          encoded = frame;
          ctx.progress(frame, frames, `encoding: frame ${frame} of ${frames}`);
        },
      },
    );
    ctx.throwIfCancelled();
    const video = await storeVideo(ctx, output, `image-to-video-${input.motion}.mp4`);
    ctx.bill(video.duration);
    return { video };
  });
}

export default defineApp({
  id: "darkroom/image-to-video",
  version: "1.0.0",
  metadata: {
    // Made from this app's own output by scripts/make-thumbnails.ts.
    thumbnail_url: "/thumbnails/image-to-video.webp",
    display_name: "Image to video (Ken Burns)",
    category: "image-to-video",
    description:
      "Animates a still image into an H.264 MP4 with a Ken Burns camera move (zoom in, zoom out, pan left or " +
      "right) rendered by ffmpeg's zoompan filter. Deterministic, CPU only, no generative model: the image is " +
      "scaled to cover the frame and centre-cropped.",
    tags: ["image-to-video", "ken-burns", "ffmpeg", "video", "cpu"],
    license:
      "Uses the system ffmpeg (Debian's build is GPL-2.0-or-later as it links libx264; FFmpeg itself is " +
      "LGPL-2.1-or-later); no model weights",
    weights_origin: "none: no model weights, a filter graph in ffmpeg",
  },
  // Two runners: zoompan is single-threaded and x264 at these sizes leaves a core mostly idle, so
  // two clips at once gave 1.4× the clips per second of one at a time on 2 cores (bench/README.md).
  knobs: { max_runners: 2, keep_alive: 300, request_timeout: 600, startup_timeout: 60 },
  // The same input gives the same output; requests reuse results when they ask (X-Darkroom-Cache).
  cache: { reuse: "deterministic", default: "off" },
  checkAvailability: checkFfmpeg,
  endpoints: [
    endpoint({
      path: "",
      description: "Animate one image into a video with a pan or zoom",
      input: ImageToVideoInput,
      output: ImageToVideoOutput,
      handler: imageToVideo,
    }),
  ],
});
