/**
 * The example workflows in `workflows/` over the built-in CPU apps, run end to end on real media
 * with the official fal client: speech → transcript, photo → cut-out → upscaled cut-out, and photo →
 * upscaled photo → video of a camera move over it.
 * @module
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createFalClient, type FalClient } from "@fal-ai/client";
import sharp from "sharp";
import { nodeRequestId } from "../../src/scheduler/workflow-executor.js";
import { ADMIN_KEY, FIXTURES, http, REPO_ROOT, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { wordErrorRate } from "../helpers/word-error-rate.js";
import { downloadVideo, ffprobeStreams, grabFrame } from "../helpers/video.js";

const SENTENCE = "The quick brown fox jumps over the lazy dog";
const app = (name: string): string => path.join(REPO_ROOT, `src/apps/${name}/app.ts`);

async function fetchBytes(url: string): Promise<Buffer> {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  return Buffer.from(await res.arrayBuffer());
}

describe("the example workflows", () => {
  let p: TestPlatform;
  let fal: FalClient;

  before(async () => {
    p = await startTestPlatform({ appModules: [app("text-to-speech"), app("speech-to-text"), app("remove-background"), app("upscale"), app("image-to-video")] });
    fal = createFalClient({ credentials: ADMIN_KEY, proxyUrl: { url: `${p.url}/api/fal/proxy`, when: "always" } });
  });

  after(async () => {
    await p.close();
  });

  it("are registered at start when their apps are loaded", async () => {
    const listed = await http(p, "GET", "/v1/workflows");
    assert.deepEqual((listed.body.workflows as { id: string }[]).map((w) => w.id), ["darkroom/cutout-and-upscale", "darkroom/speech-round-trip", "darkroom/upscale-to-video"]);
  });

  it("speech round trip: the transcript of the spoken text is the text", async () => {
    const result = await fal.subscribe("workflows/darkroom/speech-round-trip", { input: { text: SENTENCE } });
    const output = result.data as { transcript: string; audio: { url: string; content_type: string } };
    const wer = wordErrorRate(SENTENCE, output.transcript);
    assert.ok(wer <= 0.5, `WER ${wer} for ${JSON.stringify(output.transcript)}`);
    assert.equal(output.audio.content_type, "audio/wav");
    const wav = await fetchBytes(output.audio.url);
    assert.equal(wav.subarray(0, 4).toString("ascii"), "RIFF");
    const listen = await p.store.get(nodeRequestId(result.requestId, "listen"));
    assert.deepEqual(listen?.input, { audio_url: output.audio.url }, "the transcriber was given the spoken file");
  });

  it("cut out, then upscale: a transparent background at twice the size", async () => {
    const png = await sharp(path.join(FIXTURES, "astronaut.png")).png().toBuffer();
    const result = await fal.subscribe("workflows/darkroom/cutout-and-upscale", { input: { image_url: `data:image/png;base64,${png.toString("base64")}` } });
    const output = result.data as { image: { url: string; width: number; height: number }; cutout: { url: string; width: number; height: number } };
    assert.deepEqual([output.cutout.width, output.cutout.height], [512, 512]);
    assert.deepEqual([output.image.width, output.image.height], [1024, 1024]);
    const upscaled = await sharp(await fetchBytes(output.image.url)).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([upscaled.info.width, upscaled.info.height], [1024, 1024]);
    // The top-left corner is backdrop: transparent in the cut-out, and still so after upscaling.
    const corner = upscaled.data[3] ?? 255;
    assert.ok(corner < 20, `the corner's alpha is ${corner}`);
  });

  it("upscale, then animate: a 480p video whose frames show the upscaled photo", async () => {
    const small = await sharp(path.join(FIXTURES, "coffee.png")).resize(160, 160).png().toBuffer();
    const result = await fal.subscribe("workflows/darkroom/upscale-to-video", { input: { image_url: `data:image/png;base64,${small.toString("base64")}`, motion: "zoom_out" } });
    const output = result.data as { video: { url: string; width: number; height: number; fps: number; duration: number; num_frames: number; file_size: number }; image: { width: number; height: number } };
    assert.deepEqual([output.image.width, output.image.height], [320, 320], "the upscale node doubled the photo");
    assert.deepEqual([output.video.width, output.video.height, output.video.fps, output.video.num_frames], [854, 480, 12, 24]);
    const dir = mkdtempSync(path.join(tmpdir(), "darkroom-wf-video-"));
    try {
      const file = path.join(dir, "out.mp4");
      await downloadVideo(output.video, file);
      const [stream] = await ffprobeStreams(file);
      assert.deepEqual([stream?.codec_name, stream?.width, stream?.height], ["h264", 854, 480]);
      // zoom_out ends on the whole frame: the upscaled photo scaled to cover 854×480 and centre-cropped.
      const last = await grabFrame(file, 23, 854, 480);
      const upscaled = await fetchBytes((output.image as unknown as { url: string }).url);
      const expected = await sharp(upscaled).resize(854, 480, { fit: "cover" }).grayscale().raw().toBuffer();
      const mirrored = await sharp(upscaled).flip().resize(854, 480, { fit: "cover" }).grayscale().raw().toBuffer();
      const meanDiff = (a: Buffer, b: Buffer): number => a.reduce((sum, v, i) => sum + Math.abs(v - (b[i] ?? 0)), 0) / a.length;
      const toPhoto = meanDiff(last, expected);
      const toMirror = meanDiff(last, mirrored);
      assert.ok(toPhoto < 12, `the last frame differs from the photo by ${toPhoto.toFixed(1)} on average`);
      assert.ok(toPhoto * 2 < toMirror, `closer to the photo (${toPhoto.toFixed(1)}) than to it upside down (${toMirror.toFixed(1)})`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
