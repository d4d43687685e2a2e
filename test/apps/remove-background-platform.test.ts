/**
 * `darkroom/remove-background` end to end through the platform: the astronaut fixture goes in as a
 * data URI through the queue, progress streams over SSE, and the stored cut-out and mask are fetched
 * back over HTTP and checked; the limits answer 422 through the gateway.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { FIXTURES, REPO_ROOT, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { assertProgressForward, result, streamedProgress, submit } from "../helpers/queue.js";

const APP = "darkroom/remove-background";

/** Mean of a one-channel plane inside a box, 0..1. */
function meanIn(plane: Buffer, width: number, box: { x0: number; y0: number; x1: number; y1: number }): number {
  let sum = 0;
  for (let y = box.y0; y < box.y1; y++) for (let x = box.x0; x < box.x1; x++) sum += plane[y * width + x]!;
  return sum / ((box.x1 - box.x0) * (box.y1 - box.y0) * 255);
}

async function fetchBytes(url: string): Promise<Buffer> {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  return Buffer.from(await res.arrayBuffer());
}

describe("darkroom/remove-background through the platform", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform({ appModules: [path.join(REPO_ROOT, "src/apps/remove-background/app.ts")] });
  });
  after(async () => {
    await p.close();
  });

  it("cuts the astronaut out through the queue, with progress over SSE and the mask as the cut-out's alpha", async () => {
    const png = await sharp(path.join(FIXTURES, "astronaut.png")).png().toBuffer();
    const id = await submit(p, APP, { image_url: `data:image/png;base64,${png.toString("base64")}` });
    const fractions = (await streamedProgress(p, APP, id, 60_000)).map((e) => e.fraction as number);
    assert.ok(fractions.length >= 1, "progress events arrive");
    assertProgressForward(fractions);

    const res = await result(p, APP, id);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const { image, mask_image: mask } = res.body;
    assert.deepEqual([image.width, image.height, image.content_type], [512, 512, "image/png"]);
    assert.deepEqual([mask.width, mask.height, mask.content_type], [512, 512, "image/png"]);
    const cutBytes = await fetchBytes(image.url);
    assert.equal(cutBytes.length, image.file_size);
    const maskBytes = await fetchBytes(mask.url);
    assert.equal(maskBytes.length, mask.file_size);

    const alpha = await sharp(cutBytes).extractChannel(3).raw().toBuffer();
    const matte = await sharp(maskBytes).toColourspace("b-w").raw().toBuffer();
    assert.ok(alpha.equals(matte), "the cut-out's alpha is the mask");
    assert.ok(meanIn(matte, 512, { x0: 180, y0: 40, x1: 270, y1: 160 }) > 0.9, "her face is opaque");
    assert.ok(meanIn(matte, 512, { x0: 60, y0: 300, x1: 250, y1: 500 }) > 0.9, "her suit is opaque");
    assert.ok(meanIn(matte, 512, { x0: 0, y0: 0, x1: 60, y1: 60 }) < 0.05, "the flag corner is transparent");
    assert.ok(meanIn(matte, 512, { x0: 462, y0: 0, x1: 512, y1: 120 }) < 0.05, "the backdrop is transparent");

    const usage = await http(p, "GET", `/v1/usage?app=${APP}`);
    const row = usage.body.usage.find((u: { request_id: string }) => u.request_id === id);
    assert.ok(Math.abs(row.billable_units - 0.262144) < 1e-6, "bills megapixels");
  });

  it("answers sync runs too, and refuses an image over its pixel limit or an undecodable one with 422s", async () => {
    const small = await sharp(path.join(FIXTURES, "coffee.png")).resize(96, 64).png().toBuffer();
    const ok = await http(p, "POST", `/run/${APP}`, { image_url: `data:image/png;base64,${small.toString("base64")}`, return_mask: false, sync_mode: true });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.match(ok.body.image.url, /^data:image\/png;base64,/, "sync_mode returns the image inline");
    assert.equal(ok.body.mask_image, undefined);

    const big = await sharp({ create: { width: 2100, height: 2100, channels: 3, background: "#808080" } }).png().toBuffer();
    const tooBig = await http(p, "POST", `/run/${APP}`, { image_url: `data:image/png;base64,${big.toString("base64")}` });
    assert.equal(tooBig.status, 422, JSON.stringify(tooBig.body));
    assert.deepEqual(tooBig.body.detail[0].loc, ["body", "image_url"]);
    assert.match(tooBig.body.detail[0].msg, /input limit is 4\.19 MP \(4194304 pixels\)/);

    const junk = await http(p, "POST", `/run/${APP}`, { image_url: `data:image/png;base64,${Buffer.from("not a png").toString("base64")}` });
    assert.equal(junk.status, 422, JSON.stringify(junk.body));
    assert.match(junk.body.detail[0].msg, /could not decode the image/);
  });
});
