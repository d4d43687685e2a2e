/**
 * `darkroom/video-remove-background` end to end through the platform: the fixture clip goes through
 * the queue with per-frame progress over SSE and comes back with the same duration and frame count;
 * with no person in it, every frame becomes the background colour. A cancelled job ends at once and
 * leaves no ffmpeg behind, and the limits answer 422 through the gateway.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { probe } from "../../src/media/video/ffmpeg.js";
import { eventually, FIXTURES, http, REPO_ROOT, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { processMatches } from "../helpers/processes.js";
import { assertProgressForward, cancelAndWait, opsOf, result, status, streamedProgress, submit } from "../helpers/queue.js";
import { downloadVideo, fileDataUri, syntheticClip as synthetic } from "../helpers/video.js";

const run = promisify(execFile);
const APP = "darkroom/video-remove-background";
const CLIP = path.join(FIXTURES, "clip-320x240-2s.mp4");

describe("darkroom/video-remove-background through the platform", () => {
  let p: TestPlatform;
  let work: string;
  before(async () => {
    // The production grace period: a cancel must be honoured by the handler, not by killing the runner.
    p = await startTestPlatform({
      appModules: [path.join(REPO_ROOT, "src/apps/video-remove-background/app.ts")],
      scheduler: { cancelGraceMs: 5000 },
    });
    work = await mkdtemp(path.join(tmpdir(), "darkroom-vrb-platform-"));
  });
  after(async () => {
    await p.close();
    await rm(work, { recursive: true, force: true });
  });

  it("keeps the fixture's duration and frame count, reports progress per frame, and fills a person-free clip with the colour", async () => {
    const clip = await fileDataUri(CLIP);
    // A ratio of 0.5 halves the model's work on this 320×240 clip; the default would be 1.
    const id = await submit(p, APP, { video_url: clip, downsample_ratio: 0.5 });
    const progress = await streamedProgress(p, APP, id, 120_000);
    const steps = progress.map((e) => e.step as number);
    assert.ok(steps.length >= 5, `progress arrives frame by frame (${steps.length} events)`);
    assertProgressForward(steps);
    assert.ok(progress.every((e) => e.total === 24), "out of the clip's 24 frames");

    const res = await result(p, APP, id);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const video = res.body.video;
    assert.deepEqual([video.content_type, video.width, video.height, video.fps, video.num_frames, video.duration], ["video/mp4", 320, 240, 12, 24, 2]);
    const file = path.join(work, "out.mp4");
    await downloadVideo(video, file);
    const [input, output] = await Promise.all([probe(CLIP), probe(file)]);
    assert.equal(output.codec, "h264");
    assert.equal(output.num_frames, input.num_frames, "as many frames as the input");
    assert.ok(Math.abs(output.duration - input.duration) < 0.01, `duration ${output.duration} s vs ${input.duration} s`);

    // testsrc2 has no person: the whole middle frame is the default green.
    const { stdout } = await run("ffmpeg", ["-v", "error", "-i", file, "-vf", "select=eq(n\\,12)", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], { encoding: "buffer", maxBuffer: 16 << 20 });
    assert.equal(stdout.length, 320 * 240 * 3);
    let green = 0;
    for (let i = 0; i < stdout.length; i += 3) if (stdout[i]! < 40 && stdout[i + 1]! > 215 && stdout[i + 2]! < 40) green++;
    assert.ok(green / (320 * 240) > 0.97, `${((green / (320 * 240)) * 100).toFixed(1)} % of the frame is green`);

    const usage = await http(p, "GET", `/v1/usage?app=${APP}`);
    const row = usage.body.usage.find((u: { request_id: string }) => u.request_id === id);
    assert.ok(Math.abs(row.billable_units - 2) < 0.01, "bills seconds of video");
  });

  it("cancels a long job between frames: it ends cancelled, its ffmpeg processes are gone, the runner lives on", async () => {
    // Small frames keep each model step short; the cancel lands when the current frame is done.
    const long = await synthetic(work, "long.mp4", "160x120", 10, 12);
    const id = await submit(p, APP, { video_url: long });
    await eventually(async () => (await status(p, APP, id)).body.progress?.step >= 1, 60_000, 50);
    assert.ok(await processMatches(id), "ffmpeg runs for the request");
    const before = await opsOf(p, APP);
    assert.equal(before.runners.length, 1);

    const took = await cancelAndWait(p, APP, id);
    assert.ok(took < 5000, `the handler stopped itself, before the grace period ran out (${took} ms)`);
    assert.equal(await processMatches(id), false, "no ffmpeg process of this request is left");
    const afterCancel = await opsOf(p, APP);
    assert.equal(afterCancel.cold_starts, before.cold_starts, "no new runner was needed");
    assert.deepEqual(afterCancel.runners.map((r: { id: string }) => r.id), before.runners.map((r: { id: string }) => r.id), "the runner was not killed");
    console.log(`cancel → CANCELLED in ${took} ms`);
  });

  it("refuses a video over 60 s and undecodable bytes with 422s", async () => {
    const tooLong = await http(p, "POST", `/run/${APP}`, { video_url: await synthetic(work, "61s.mp4", "64x48", 61, 5) });
    assert.equal(tooLong.status, 422, JSON.stringify(tooLong.body));
    assert.deepEqual(tooLong.body.detail[0].loc, ["body", "video_url"]);
    assert.match(tooLong.body.detail[0].msg, /input limit is 60 seconds/);

    const junk = await http(p, "POST", `/run/${APP}`, { video_url: `data:video/mp4;base64,${Buffer.from("not a video").toString("base64")}` });
    assert.equal(junk.status, 422, JSON.stringify(junk.body));
    assert.match(junk.body.detail[0].msg, /could not read the video/);
  });
});
