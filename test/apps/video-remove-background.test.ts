/**
 * `darkroom/video-remove-background`, calling the handler directly on short clips cut from the
 * astronaut photo: the recurrent state must be carried from frame to frame (and must matter), the
 * background must become the chosen colour where the matte is clear, WebM must carry the matte as
 * its alpha, rotation and audio must survive, cancelling must stop between frames and leave no
 * ffmpeg behind, and the limits must answer 422.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { loadRvm, type Matte, type MattingSession, type RvmModel } from "../../src/media/matting/rvm-model.js";
import app, { MAX_FRAMES, MAX_INPUT_BYTES, MAX_INPUT_SECONDS } from "../../src/apps/video-remove-background/app.js";
import { probe } from "../../src/media/video/ffmpeg.js";
import { PlatformError } from "../../src/core/errors.js";
import type { Handler, HandlerContext } from "../../src/runtime/sdk.js";
import { rejects422 } from "../helpers/field-error.js";
import { fakeContext as makeFakeContext, type FakeContext, type FakeContextOptions } from "../helpers/handler-context.js";
import { FIXTURES } from "../helpers/platform.js";
import { processMatches } from "../helpers/processes.js";
import { syntheticClip } from "../helpers/video.js";

const run = promisify(execFile);
const ASTRONAUT = path.join(FIXTURES, "astronaut.png");
const [W, H, FRAMES] = [160, 120, 8];

type State = Awaited<ReturnType<NonNullable<typeof app.setup>>>;

/** A slow pan across the astronaut photo: a person moving in frame, 12 fps. */
async function personClip(file: string, frames: number, extra: string[] = []): Promise<void> {
  await run("ffmpeg", [
    "-v", "error", "-y", "-loop", "1", "-framerate", "12", "-i", ASTRONAUT, ...extra,
    "-vf", `scale=288:288,crop=240:180:x='n*4':y='n*3',scale=${W}:${H}`,
    "-frames:v", String(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", file,
  ]);
}

/** Every frame of `file` as raw pixels (`rgb24`, or `gray` for a WebM's alpha plane). */
async function decodeFrames(file: string, width: number, height: number, mode: "rgb" | "alpha"): Promise<Uint8Array[]> {
  const args = mode === "alpha"
    ? ["-v", "error", "-c:v", "libvpx-vp9", "-i", file, "-vf", "alphaextract", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"]
    : ["-v", "error", "-i", file, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"];
  const { stdout } = await run("ffmpeg", args, { encoding: "buffer", maxBuffer: 256 << 20 });
  const size = width * height * (mode === "alpha" ? 1 : 3);
  assert.equal(stdout.length % size, 0);
  return Array.from({ length: stdout.length / size }, (_, i) => new Uint8Array(stdout.subarray(i * size, (i + 1) * size)));
}

/** The real model behind a recorder: every session the handler opens, and the matte of every frame. */
function spyOn(model: RvmModel): { model: RvmModel; sessions: { session: MattingSession; mattes: Matte[] }[] } {
  const sessions: { session: MattingSession; mattes: Matte[] }[] = [];
  return {
    sessions,
    model: {
      ...model,
      session(ratio) {
        const session = model.session(ratio);
        const record = { session, mattes: [] as Matte[] };
        sessions.push(record);
        const next = session.next.bind(session);
        session.next = async (frame) => {
          const matte = await next(frame);
          record.mattes.push(matte);
          return matte;
        };
        return session;
      },
    },
  };
}

/** The shared stand-in for the runner's context, keeping the files the handler stores. */
const fakeContext = (state: State, options: Omit<FakeContextOptions, "storeFiles"> = {}): FakeContext<State> =>
  makeFakeContext(state, { ...options, storeFiles: true });

const dataUri = (bytes: Buffer): string => `data:video/mp4;base64,${bytes.toString("base64")}`;

let work: string;
let clip: Buffer;
let model: RvmModel;
let state: State;

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), "darkroom-vrb-test-"));
  await personClip(path.join(work, "person.mp4"), FRAMES);
  clip = await readFile(path.join(work, "person.mp4"));
  model = await loadRvm();
  state = await app.setup!(() => {});
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

test("the recurrent state is carried and matters: only the first frame matches a fresh start", async () => {
  const frames = await decodeFrames(path.join(work, "person.mp4"), W, H, "rgb");
  assert.equal(frames.length, FRAMES);
  const baseline = tf.memory().numTensors;
  const carried = model.session(1);
  const meanDiffs: number[] = [];
  let maxDiff = 0;
  for (const [i, data] of frames.entries()) {
    const withState = await carried.next({ data, width: W, height: H });
    if (i === 0) {
      // After one frame the state holds the ConvGRU outputs at 1/2, 1/4, 1/8 and 1/16 of the frame.
      assert.deepEqual(carried.state.map((t) => t.shape), [[1, 60, 80, 16], [1, 30, 40, 20], [1, 15, 20, 40], [1, 8, 10, 64]]);
    }
    const fresh = model.session(1);
    const fromZero = await fresh.next({ data, width: W, height: H });
    fresh.dispose();
    let sum = 0;
    for (let p = 0; p < W * H; p++) {
      const d = Math.abs(withState.alpha[p]! - fromZero.alpha[p]!);
      sum += d;
      if (i > 0) maxDiff = Math.max(maxDiff, d);
    }
    meanDiffs.push(sum / (W * H));
  }
  carried.dispose();
  console.log(`mean |alpha carried − alpha fresh| per frame: ${meanDiffs.map((d) => d.toFixed(2)).join(" ")}`);
  assert.equal(meanDiffs[0], 0, "the first frame starts from zero state either way");
  const later = meanDiffs.slice(1);
  assert.ok(later.every((d) => d > 0), "every later frame differs from a fresh start");
  assert.ok(later.reduce((a, b) => a + b) / later.length > 0.3 && maxDiff > 50, `the state changes the matte (max ${maxDiff})`);
  assert.equal(tf.memory().numTensors, baseline, "sessions free their state");
});

describe("the app's handler", () => {
  const endpoint = app.endpoints[0]!;
  const handler = endpoint.handler as Handler<unknown, any, State>;
  const call = (input: Record<string, unknown>, ctx: HandlerContext<State>): Promise<any> => handler(endpoint.input.parse(input), ctx);

  test("MP4: one session across all frames; background becomes the chosen colour, the person stays", async () => {
    const spy = spyOn(state.model);
    const { ctx, stored, progress, billed } = fakeContext({ model: spy.model });
    const output = await call({ video_url: dataUri(clip), background_color: "#3366cc" }, ctx);

    assert.equal(spy.sessions.length, 1, "one recurrent session for the whole video");
    assert.equal(spy.sessions[0]!.session.frames, FRAMES, "and it saw every frame in turn");
    const video = output.video;
    assert.deepEqual([video.content_type, video.width, video.height, video.fps, video.num_frames], ["video/mp4", W, H, 12, FRAMES]);
    assert.equal(stored.length, 1);
    const file = path.join(work, "out.mp4");
    await writeFile(file, stored[0]!.body);
    const info = await probe(file);
    assert.deepEqual([info.codec, info.num_frames], ["h264", FRAMES]);
    assert.ok(Math.abs(info.duration - FRAMES / 12) < 0.01, `duration ${info.duration}`);
    assert.equal(progress.length, FRAMES);
    assert.equal(progress.at(-1), `${FRAMES}/${FRAMES} frame ${FRAMES}/${FRAMES}`);
    assert.deepEqual(billed, [video.duration]);

    const decoded = await decodeFrames(file, W, H, "rgb");
    const background = [0x33, 0x66, 0xcc];
    let clear = 0;
    let near = 0;
    let solid = 0;
    let farFromBackground = 0;
    for (const [i, frame] of decoded.entries()) {
      const alpha = spy.sessions[0]!.mattes[i]!.alpha;
      for (let p = 0; p < W * H; p++) {
        const error = Math.max(...background.map((v, c) => Math.abs(frame[p * 3 + c]! - v)));
        if (alpha[p]! < 8) {
          clear++;
          if (error <= 24) near++;
        } else if (alpha[p]! > 247) {
          solid++;
          if (error > 60) farFromBackground++;
        }
      }
    }
    console.log(`MP4: ${((near / clear) * 100).toFixed(1)} % of ${clear} clear pixels within 24 of the colour; ${((farFromBackground / solid) * 100).toFixed(1)} % of ${solid} person pixels far from it`);
    assert.ok(clear > 0.2 * W * H * FRAMES && solid > 0.2 * W * H * FRAMES, "the clip has both background and person");
    assert.ok(near / clear > 0.97, "where the matte is clear the frame shows the background colour");
    assert.ok(farFromBackground / solid > 0.97, "where the matte is solid the person shows");
  });

  test("WebM: VP9 whose alpha plane is the matte", async () => {
    const spy = spyOn(state.model);
    const { ctx, stored } = fakeContext({ model: spy.model });
    const output = await call({ video_url: dataUri(clip), output_format: "webm" }, ctx);
    assert.deepEqual([output.video.content_type, output.video.num_frames, output.video.width], ["video/webm", FRAMES, W]);
    assert.match(output.video.file_name, /\.webm$/);
    const file = path.join(work, "out.webm");
    await writeFile(file, stored[0]!.body);
    assert.equal((await probe(file)).codec, "vp9");
    const alphas = await decodeFrames(file, W, H, "alpha");
    assert.equal(alphas.length, FRAMES);
    let sum = 0;
    for (const [i, plane] of alphas.entries()) {
      const matte = spy.sessions[0]!.mattes[i]!.alpha;
      for (let p = 0; p < W * H; p++) sum += Math.abs(plane[p]! - matte[p]!);
    }
    const mad = sum / (W * H * FRAMES);
    assert.ok(mad < 4, `alpha plane differs from the matte by ${mad.toFixed(2)} on average`);
  });

  test("a rotated phone clip comes out upright and keeps its audio", async () => {
    const rotated = path.join(work, "rotated.mp4");
    const plain = path.join(work, "plain.mp4");
    await personClip(plain, 4);
    // Display rotation in the container plus an AAC track, as phones record.
    await run("ffmpeg", ["-v", "error", "-y", "-i", plain, "-f", "lavfi", "-i", "sine=f=440:d=0.4", "-c:v", "copy", "-c:a", "aac", "-metadata:s:v", "rotate=90", "-shortest", rotated]);
    const { ctx, stored } = fakeContext(state);
    const output = await call({ video_url: dataUri(await readFile(rotated)) }, ctx);
    assert.deepEqual([output.video.width, output.video.height, output.video.num_frames], [H, W, 4]);
    const file = path.join(work, "rotated-out.mp4");
    await writeFile(file, stored[0]!.body);
    const { stdout } = await run("ffprobe", ["-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0", file]);
    assert.deepEqual(stdout.trim().split("\n").sort(), ["aac,audio", "h264,video"]);
  });

  test("cancelling stops between frames, kills both ffmpeg processes and frees the state", async () => {
    const long = path.join(work, "long.mp4");
    await personClip(long, 48);
    const requestId = `vrb-cancel-${process.pid}-${Date.now()}`;
    const controller = new AbortController();
    const reason = new Error("cancelled by test");
    let sawFfmpeg = false;
    const baseline = tf.memory().numTensors;
    const { ctx, stored, progress } = fakeContext(state, {
      requestId,
      controller,
      onProgress: (step) => {
        if (step === 2) {
          void processMatches(requestId).then((alive) => {
            sawFfmpeg = alive;
            controller.abort(reason);
          });
        }
      },
    });
    await assert.rejects(call({ video_url: dataUri(await readFile(long)) }, ctx), (err) => err === reason);
    assert.ok(sawFfmpeg, "ffmpeg was running while frames were matted");
    assert.ok(progress.length >= 2 && progress.length <= 4, `stopped after ${progress.length} of 48 frames`);
    assert.equal(stored.length, 0);
    assert.equal(await processMatches(requestId), false, "no ffmpeg process of this request is left");
    assert.equal(tf.memory().numTensors, baseline);
  });

  /** A tiny synthetic clip, cheap to make and to probe. */
  const synthetic = (name: string, size: string, seconds: number, fps: number): Promise<string> => syntheticClip(work, name, size, seconds, fps, 40);

  test("refuses videos over the duration, frame and size limits with 422s naming the limit", async () => {
    const { ctx } = fakeContext(state);
    await assert.rejects(call({ video_url: await synthetic("long.mp4", "64x48", MAX_INPUT_SECONDS + 1, 5) }, ctx), rejects422("video_url", /input limit is 60 seconds/));
    await assert.rejects(call({ video_url: await synthetic("many.mp4", "64x48", 20.1, 30) }, ctx), rejects422("video_url", new RegExp(`has 603 frames; the input limit is ${MAX_FRAMES} frames`)));
    await assert.rejects(call({ video_url: await synthetic("wide.mp4", "2000x240", 0.2, 5) }, ctx), rejects422("video_url", /input limit is 1920×1080/));
  });

  test("reads the input under its byte limit and answers an oversized file with a 422 naming the limit", async () => {
    const small = fakeContext(state);
    await assert.rejects(call({ video_url: dataUri(Buffer.from("not a video")) }, small.ctx), rejects422("video_url", /could not read the video/));
    assert.deepEqual(small.reads, [MAX_INPUT_BYTES]);

    const big = fakeContext(state);
    big.ctx.files.read = async (_url, options) => {
      throw new PlatformError("ERR_FILE_TOO_LARGE", { message: `File exceeds ${options?.maxBytes} bytes` });
    };
    await assert.rejects(call({ video_url: dataUri(clip) }, big.ctx), rejects422("video_url", new RegExp(`input limit of 100 MiB \\(${MAX_INPUT_BYTES} bytes\\)`)));
  });

  test("refuses a background colour that is not #rrggbb", () => {
    assert.throws(() => endpoint.input.parse({ video_url: dataUri(clip), background_color: "green" }), /#rrggbb/);
    assert.equal((endpoint.input.parse({ video_url: dataUri(clip) }) as { background_color: string }).background_color, "#00ff00");
  });
});
