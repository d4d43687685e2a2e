/**
 * `darkroom/upscale` end to end through the platform: a real fixture goes in as a data URI through
 * the queue, progress streams over SSE, and the stored output restores detail better than Lanczos.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { psnr } from "../helpers/pixels.js";
import { FIXTURES, REPO_ROOT, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

describe("darkroom/upscale through the platform", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform({ appModules: [path.join(REPO_ROOT, "src/apps/upscale/app.ts")] });
  });
  after(async () => {
    await p.close();
  });

  it("restores a downscaled fixture better than Lanczos, with progress over SSE", async () => {
    const original = await sharp(path.join(FIXTURES, "astronaut.png")).extract({ left: 192, top: 64, width: 192, height: 192 }).removeAlpha().raw().toBuffer();
    const small = await sharp(original, { raw: { width: 192, height: 192, channels: 3 } }).resize(96, 96, { kernel: "cubic" }).png().toBuffer();

    const submitted = await http(p, "POST", "/queue/darkroom/upscale", { image_url: `data:image/png;base64,${small.toString("base64")}`, scale: 2 });
    assert.equal(submitted.status, 200);
    const stream = await fetch(`${submitted.body.status_url}/stream?logs=1`, { headers: p.auth });
    assert.match(stream.headers.get("content-type") ?? "", /text\/event-stream/);
    const events = (await stream.text())
      .split("\n\n")
      .filter((e) => e.startsWith("data: "))
      .map((e) => JSON.parse(e.slice(6)));
    assert.equal(events.at(-1).status, "COMPLETED");
    assert.equal(events.at(-1).error, undefined);
    const fractions = events.filter((e) => e.progress).map((e) => e.progress.fraction as number);
    assert.ok(fractions.length >= 1, "progress events arrive while tiles are processed");
    assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b), "progress only moves forward");

    const result = await http(p, "GET", new URL(submitted.body.response_url).pathname);
    assert.equal(result.status, 200);
    const image = result.body.image;
    assert.deepEqual([image.width, image.height, image.content_type], [192, 192, "image/png"]);
    const file = await fetch(image.url);
    assert.equal(file.status, 200);
    const bytes = Buffer.from(await file.arrayBuffer());
    assert.equal(bytes.length, image.file_size);
    const restored = await sharp(bytes).removeAlpha().raw().toBuffer();
    const lanczos = await sharp(small).resize(192, 192, { kernel: "lanczos3" }).removeAlpha().raw().toBuffer();
    const esrgan = psnr(restored, original);
    const baseline = psnr(lanczos, original);
    assert.ok(esrgan > baseline, `ESRGAN ${esrgan.toFixed(2)} dB should beat Lanczos ${baseline.toFixed(2)} dB`);

    const usage = await http(p, "GET", "/v1/usage?app=darkroom/upscale");
    const row = usage.body.usage.find((u: { request_id: string }) => u.request_id === submitted.body.request_id);
    assert.ok(row.billable_units > 0, "the app reports megapixels as billable units");
  });

  it("refuses an input over its pixel limit with a 422 that names the limit", async () => {
    const big = await sharp({ create: { width: 2100, height: 2100, channels: 3, background: "#808080" } }).png().toBuffer();
    const res = await http(p, "POST", "/run/darkroom/upscale", { image_url: `data:image/png;base64,${big.toString("base64")}`, scale: 2 });
    assert.equal(res.status, 422);
    assert.deepEqual(res.body.detail[0].loc, ["body", "image_url"]);
    assert.match(res.body.detail[0].msg, /pixel|megapixel|2048/i);
  });
});
