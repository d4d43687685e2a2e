/**
 * `darkroom/frame-interpolation` end to end through the platform: the 12 fps fixture becomes 24 fps
 * with new in-between frames (checked against the source frames around them), progress streams over
 * SSE, the limits answer 422, and a cancelled job leaves no ffmpeg behind.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { probe } from "../../src/media/video/ffmpeg.js";
import { mad } from "../helpers/pixels.js";
import { eventually, FIXTURES, http, REPO_ROOT, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { processMatches } from "../helpers/processes.js";
import { assertProgressForward, cancelAndWait, result, streamedProgress, submit, waitFor } from "../helpers/queue.js";
import { downloadVideo, fileDataUri, grabFrame, syntheticClip } from "../helpers/video.js";

const APP = "darkroom/frame-interpolation";
const CLIP = path.join(FIXTURES, "clip-320x240-2s.mp4");

describe("darkroom/frame-interpolation through the platform", () => {
  let p: TestPlatform;
  let work: string;
  let clip: string;
  before(async () => {
    p = await startTestPlatform({ appModules: [path.join(REPO_ROOT, "src/apps/frame-interpolation/app.ts")] });
    work = await mkdtemp(path.join(tmpdir(), "darkroom-fi-test-"));
    clip = await fileDataUri(CLIP);
  });
  after(async () => {
    await p.close();
    await rm(work, { recursive: true, force: true });
  });

  it("doubles the fixture from 12 to 24 fps with new in-between frames, streaming progress", async () => {
    const id = await submit(p, APP, { video_url: clip, target_fps: 24 });
    const fractions = (await streamedProgress(p, APP, id, 30_000)).map((e) => e.fraction as number);
    assert.ok(fractions.length >= 1, "progress events arrive while ffmpeg runs");
    assertProgressForward(fractions);

    const res = await result(p, APP, id);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const video = res.body.video;
    assert.equal(video.content_type, "video/mp4");
    assert.deepEqual([video.width, video.height, video.fps], [320, 240, 24]);
    assert.ok(Math.abs(video.num_frames - 48) <= 1, `frames ${video.num_frames}`);
    assert.ok(Math.abs(video.duration - 2) <= 0.1, `duration ${video.duration}`);

    const file = path.join(work, "out.mp4");
    await downloadVideo(video, file);
    const info = await probe(file);
    assert.equal(info.codec, "h264");
    assert.ok(Math.abs(info.num_frames - 48) <= 1 && Math.abs(info.duration - 2) <= 0.1, JSON.stringify(info));

    // Output frame 2k lands on source frame k, and 2k+1 halfway to source frame k+1.
    const k = 10;
    const [w, h] = [320, 240];
    const prev = await grabFrame(CLIP, k, w, h);
    const next = await grabFrame(CLIP, k + 1, w, h);
    const onSource = await grabFrame(file, 2 * k, w, h);
    const middle = await grabFrame(file, 2 * k + 1, w, h);
    const toBefore = mad(middle, prev);
    const toNext = mad(middle, next);
    const sourceStep = mad(prev, next);
    const reencode = mad(onSource, prev);
    assert.ok(reencode < 2, `even output frames are the source frames (MAD ${reencode.toFixed(2)})`);
    assert.ok(toBefore > 2 * reencode && toNext > 2 * reencode,
      `the middle frame is new: MAD ${toBefore.toFixed(2)} to frame ${k}, ${toNext.toFixed(2)} to frame ${k + 1}`);
    assert.ok(toBefore < sourceStep && toNext < sourceStep,
      `and lies between them (source step MAD ${sourceStep.toFixed(2)})`);

    const usage = await http(p, "GET", `/v1/usage?app=${APP}`);
    const row = usage.body.usage.find((u: { request_id: string }) => u.request_id === id);
    assert.ok(Math.abs(row.billable_units - 2) < 0.1, "bills the seconds of output video");
  });

  it("defaults to twice the source rate in blend mode too", async () => {
    const res = await http(p, "POST", `/run/${APP}`, { video_url: clip, mode: "blend" });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.video.fps, 24);
    assert.ok(Math.abs(res.body.video.num_frames - 48) <= 1);
  });

  it("refuses a video over 60 s or over 1920×1080, and a target over 120 fps, with 422s naming the limit", async () => {
    const long = await syntheticClip(work, "long.mp4", "64x48", 61, 5);
    const tooLong = await http(p, "POST", `/run/${APP}`, { video_url: long });
    assert.equal(tooLong.status, 422, JSON.stringify(tooLong.body));
    assert.deepEqual(tooLong.body.detail[0].loc, ["body", "video_url"]);
    assert.match(tooLong.body.detail[0].msg, /60 seconds/);

    const wide = await syntheticClip(work, "wide.mp4", "2000x240", 0.2, 5);
    const tooWide = await http(p, "POST", `/run/${APP}`, { video_url: wide });
    assert.equal(tooWide.status, 422, JSON.stringify(tooWide.body));
    assert.match(tooWide.body.detail[0].msg, /1920×1080/);

    const fast = await http(p, "POST", `/run/${APP}`, { video_url: clip, target_fps: 240 });
    assert.equal(fast.status, 422);
    assert.match(JSON.stringify(fast.body.detail), /120/);
  });

  it("cancels a long interpolation: it ends cancelled at once and its ffmpeg is gone", async () => {
    const long = await syntheticClip(work, "cancel.mp4", "640x480", 30, 10);
    const id = await submit(p, APP, { video_url: long, target_fps: 120 });
    await waitFor(p, APP, id, "IN_PROGRESS");
    await eventually(() => processMatches(id), 15_000, 50);

    const took = await cancelAndWait(p, APP, id);
    assert.ok(took < 1400, `ffmpeg is killed within the grace period (${took} ms)`);
    assert.equal(await processMatches(id), false, "no ffmpeg process of this request is left");
  });
});
