/**
 * The example workflows in `workflows/` over the built-in CPU apps, run end to end on real media
 * with the official fal client: speech → transcript, and photo → cut-out → upscaled cut-out.
 * @module
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createFalClient, type FalClient } from "@fal-ai/client";
import sharp from "sharp";
import { nodeRequestId } from "../../src/scheduler/workflow-executor.js";
import { ADMIN_KEY, FIXTURES, http, REPO_ROOT, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { wordErrorRate } from "../helpers/word-error-rate.js";

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
    p = await startTestPlatform({ appModules: [app("text-to-speech"), app("speech-to-text"), app("remove-background"), app("upscale")] });
    fal = createFalClient({ credentials: ADMIN_KEY, proxyUrl: { url: `${p.url}/api/fal/proxy`, when: "always" } });
  });

  after(async () => {
    await p.close();
  });

  it("are registered at start when their apps are loaded", async () => {
    const listed = await http(p, "GET", "/v1/workflows");
    assert.deepEqual((listed.body.workflows as { id: string }[]).map((w) => w.id), ["darkroom/cutout-and-upscale", "darkroom/speech-round-trip"]);
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
});
