/**
 * `darkroom/image-to-video` and the shared ffmpeg helpers: the availability check, progress and
 * failure reporting of `runFfmpeg` (by output time, or by frame about ten times a second), a real Ken
 * Burns render through the platform (checked with ffprobe and by comparing extracted frames), its
 * progress climbing frame by frame, and cancellation that leaves no ffmpeg behind.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { checkFfmpeg, probe, runFfmpeg } from "../../src/media/video/ffmpeg.js";
import { mad } from "../helpers/pixels.js";
import { eventually, FIXTURES, http, REPO_ROOT, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { processMatches } from "../helpers/processes.js";
import { cancelAndWait, streamedProgress, submit, waitFor } from "../helpers/queue.js";
import { downloadVideo, fileDataUri, grabFrame } from "../helpers/video.js";

const APP = "darkroom/image-to-video";

describe("media/video ffmpeg helpers", () => {
  it("reports ffmpeg as available here, and unavailable with a reason and remedy when FFMPEG_PATH is wrong", async () => {
    assert.equal(await checkFfmpeg(), null);
    const saved = process.env["FFMPEG_PATH"];
    process.env["FFMPEG_PATH"] = "/nonexistent";
    try {
      const missing = await checkFfmpeg();
      assert.ok(missing, "a missing ffmpeg is reported");
      assert.match(missing.reason, /ffmpeg/);
      assert.match(missing.reason, /\/nonexistent/);
      assert.match(missing.remedy, /apt-get install ffmpeg/);
    } finally {
      if (saved === undefined) delete process.env["FFMPEG_PATH"];
      else process.env["FFMPEG_PATH"] = saved;
    }
    assert.equal(await checkFfmpeg(), null, "restoring the variable restores the app");
  });

  it("runFfmpeg reports rising progress, probe measures the file, and a failure carries ffmpeg's message", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "darkroom-i2v-unit-"));
    try {
      const out = path.join(dir, "t.mp4");
      const fractions: number[] = [];
      await runFfmpeg(["-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=3", "-c:v", "libx264", "-preset", "ultrafast", out], {
        durationSec: 3,
        onProgress: (f) => fractions.push(f),
      });
      assert.ok(fractions.length >= 1 && fractions.at(-1)! > 0.9, `progress reaches the end: ${fractions.join(",")}`);
      assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b));
      const info = await probe(out);
      assert.deepEqual([info.width, info.height, info.fps, info.num_frames, info.codec], [160, 120, 10, 30, "h264"]);
      assert.ok(Math.abs(info.duration - 3) < 0.05);

      await writeFile(path.join(dir, "bad.png"), "not an image");
      await assert.rejects(runFfmpeg(["-i", path.join(dir, "bad.png"), path.join(dir, "x.mp4")]), /ffmpeg failed.*\n?.*(Invalid|error|bad\.png)/is);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("runFfmpeg counts frames, reported about ten times a second, when given the frame count and a period", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "darkroom-i2v-frames-"));
    try {
      // -re reads the 2 s source in real time: 40 frames over 2 s whatever the machine's speed.
      const reports: number[] = [];
      await runFfmpeg(["-re", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=20:d=2", "-c:v", "libx264", "-preset", "ultrafast", "-frames:v", "40", path.join(dir, "f.mp4")], {
        totalFrames: 40,
        progressPeriodSec: 0.1,
        onProgress: (f) => reports.push(f),
      });
      const frames = reports.map((f) => f * 40);
      assert.ok(frames.every((n) => Math.abs(n - Math.round(n)) < 1e-9), `fractions of whole frames: ${frames.join(",")}`);
      assert.deepEqual(frames, [...new Set(frames)].sort((a, b) => a - b), "strictly increasing");
      assert.equal(frames.at(-1), 40, "ends at the last frame");
      // ffmpeg's default period (0.5 s) would give about 5 reports; 0.1 s gives about 20, and never much more.
      assert.ok(frames.length >= 12 && frames.length <= 26, `${frames.length} reports in 2 s: ${frames.join(",")}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("darkroom/image-to-video through the platform", () => {
  let p: TestPlatform;
  let work: string;
  let astronaut: string;
  before(async () => {
    p = await startTestPlatform({ appModules: [path.join(REPO_ROOT, "src/apps/image-to-video/app.ts")] });
    work = await mkdtemp(path.join(tmpdir(), "darkroom-i2v-test-"));
    astronaut = await fileDataUri(path.join(FIXTURES, "astronaut.png"), "image/png");
  });
  after(async () => {
    await p.close();
    await rm(work, { recursive: true, force: true });
  });

  it("renders a 2 s, 12 fps, 480p zoom that starts on the input and moves", async () => {
    const res = await http(p, "POST", `/run/${APP}`, { image_url: astronaut, duration: 2, fps: 12, resolution: "480p" });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const video = res.body.video;
    assert.equal(video.content_type, "video/mp4");
    assert.deepEqual([video.width, video.height, video.fps, video.num_frames], [854, 480, 12, 24]);
    assert.ok(Math.abs(video.duration - 2) <= 0.1, `duration ${video.duration}`);

    const file = path.join(work, "out.mp4");
    const bytes = await downloadVideo(video, file);
    const info = await probe(file);
    assert.equal(info.codec, "h264");
    assert.deepEqual([info.width, info.height], [854, 480]);
    assert.ok(Math.abs(info.duration - 2) <= 0.1, `ffprobe duration ${info.duration}`);
    assert.ok(Math.abs(info.num_frames - 24) <= 1, `ffprobe frames ${info.num_frames}`);
    // faststart: the moov atom precedes the media data, so players can start before the download ends.
    assert.ok(bytes.indexOf("moov") < bytes.indexOf("mdat"), "moov before mdat");

    const [w, h] = [64, 36];
    const first = await grabFrame(file, 0, w, h, { resize: true });
    const last = await grabFrame(file, 23, w, h, { resize: true });
    // The input as the app frames it: covered and centre-cropped to 16:9.
    // Two pipelines: sharp keeps only the last resize of one pipeline.
    const framed = await sharp(path.join(FIXTURES, "astronaut.png")).resize(854, 480, { fit: "cover" }).png().toBuffer();
    const input = await sharp(framed)
      .resize(w, h, { fit: "fill" })
      .grayscale()
      .raw()
      .toBuffer();
    const startDiff = mad(first, input);
    const motion = mad(first, last);
    assert.ok(startDiff < 8, `the first frame resembles the input (MAD ${startDiff.toFixed(2)})`);
    assert.ok(motion > 10, `the last frame differs from the first: the camera moved (MAD ${motion.toFixed(2)})`);
    assert.ok(motion > 2 * startDiff, "the move is larger than the encoding error");

    const usage = await http(p, "GET", `/v1/usage?app=${APP}`);
    assert.ok(usage.body.usage.some((u: { billable_units: number }) => Math.abs(u.billable_units - 2) < 0.1), "bills the seconds of video");
  });

  it("reports progress frame by frame: a 6 s 1080p clip climbs in many small steps, not 0 % then done", async () => {
    const frames = 6 * 24;
    const id = await submit(p, APP, { image_url: astronaut, duration: 6, fps: 24, resolution: "1080p", motion: "zoom_out" });
    const progress = await streamedProgress(p, APP, id, 60_000);
    const fractions = progress.map((e) => e.fraction as number);
    assert.deepEqual(fractions, [...new Set(fractions)].sort((a, b) => a - b), `strictly increasing: ${fractions.join(",")}`);
    assert.ok(progress.every((e) => e.total === frames), `counted in frames of ${frames}: ${progress.map((e) => e.step).join(",")}`);
    assert.match(progress.at(-1).message, new RegExp(`^encoding: frame ${frames} of ${frames}$`));
    assert.equal(fractions.at(-1), 1, "the last report is the last frame");
    const between = fractions.filter((f) => f > 0.05 && f < 0.95);
    assert.ok(between.length >= 4, `at least 4 steps between 5 % and 95 %: ${fractions.map((f) => Math.round(f * 100)).join(" → ")}`);
    // The climb is steady: no report leaps over more than a third of the clip.
    const leaps = fractions.slice(1).map((f, i) => f - fractions[i]!);
    assert.ok(Math.max(...leaps) <= 1 / 3, `largest step ${Math.round(Math.max(...leaps) * 100)} %: ${fractions.map((f) => Math.round(f * 100)).join(" → ")}`);
  });

  it("refuses a resolution over 1920×1080 and an input over 16 MP with 422s naming the limit", async () => {
    const tooWide = await http(p, "POST", `/run/${APP}`, { image_url: astronaut, resolution: { width: 2560, height: 1080 } });
    assert.equal(tooWide.status, 422);
    assert.match(JSON.stringify(tooWide.body.detail), /1920/);

    // 4100×4100 = 16.8 MP: a flat PNG is small to send, the limit is checked from its header.
    const big = await sharp({ create: { width: 4100, height: 4100, channels: 3, background: "#336699" } }).png().toBuffer();
    const res = await http(p, "POST", `/run/${APP}`, { image_url: `data:image/png;base64,${big.toString("base64")}`, duration: 1, fps: 6 });
    assert.equal(res.status, 422, JSON.stringify(res.body));
    assert.deepEqual(res.body.detail[0].loc, ["body", "image_url"]);
    assert.match(res.body.detail[0].msg, /16 megapixels/);
  });

  it("cancels a long render: the request ends cancelled at once and its ffmpeg and temp folder are gone", async () => {
    // 20 s at 60 fps in 1080p takes far longer than this test waits.
    const id = await submit(p, APP, { image_url: astronaut, duration: 20, fps: 60, resolution: "1080p", motion: "pan_left" });
    await waitFor(p, APP, id, "IN_PROGRESS");
    // The per-request temp folder carries the request id, and so does ffmpeg's command line.
    await eventually(() => processMatches(id), 15_000, 50);

    const took = await cancelAndWait(p, APP, id);
    assert.ok(took < 1400, `ffmpeg stops within the grace period rather than the runner being killed (${took} ms)`);

    assert.equal(await processMatches(id), false, "no ffmpeg process of this request is left");
    await eventually(() => !readdirSync(tmpdir()).some((d) => d.includes(id)), 5000);
  });
});
