/**
 * `darkroom/remove-background` on real photos, calling the handler directly: the astronaut fixture
 * must come out with the person opaque and the backdrop transparent, the coffee photo (no person)
 * almost entirely transparent; the cut-out's alpha must be the returned mask; the options must do
 * what they say; the limits must answer 422; and repeated requests must not leak tensors.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { before, describe, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import sharp from "sharp";
import app, { MAX_INPUT_BYTES, MAX_INPUT_PIXELS } from "../../src/apps/remove-background/app.js";
import { autoDownsampleRatio } from "../../src/media/matting/rvm-model.js";
import type { Handler, HandlerContext } from "../../src/runtime/sdk.js";
import { rejects422 } from "../helpers/field-error.js";
import { fakeContext as makeFakeContext, type FakeContext } from "../helpers/handler-context.js";
import { FIXTURES } from "../helpers/platform.js";

const ASTRONAUT = path.join(FIXTURES, "astronaut.png");
const COFFEE = path.join(FIXTURES, "coffee.png");

const dataUri = (bytes: Buffer, type = "image/png"): string => `data:${type};base64,${bytes.toString("base64")}`;

/**
 * Regions of astronaut.png (512×512), checked by eye: her face and hair (x 180–270, y 40–160) and the
 * orange suit below the collar (x 60–250, y 300–500) are person; the flag's top-left corner and the
 * grey backdrop right of the shuttle model are not.
 */
const PERSON_BOXES = [
  { x0: 180, y0: 40, x1: 270, y1: 160 },
  { x0: 60, y0: 300, x1: 250, y1: 500 },
];
const BACKGROUND_BOXES = [
  { x0: 0, y0: 0, x1: 60, y1: 60 },
  { x0: 462, y0: 0, x1: 512, y1: 120 },
];

type Box = { x0: number; y0: number; x1: number; y1: number };

/** Mean of a one-byte-per-pixel plane inside `box`, as 0..1. */
function meanIn(plane: Uint8Array, width: number, box: Box): number {
  let sum = 0;
  for (let y = box.y0; y < box.y1; y++) for (let x = box.x0; x < box.x1; x++) sum += plane[y * width + x]!;
  return sum / ((box.x1 - box.x0) * (box.y1 - box.y0) * 255);
}

/** Decodes an image to raw samples; grayscale stays one channel (sharp would otherwise expand it to sRGB). */
async function raw(bytes: Buffer): Promise<{ data: Uint8Array; width: number; height: number; channels: number }> {
  const grey = (await sharp(bytes).metadata()).space === "b-w";
  const { data, info } = await (grey ? sharp(bytes).toColourspace("b-w") : sharp(bytes)).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, channels: info.channels };
}

function channel(image: { data: Uint8Array; channels: number }, c: number): Uint8Array {
  const out = new Uint8Array(image.data.length / image.channels);
  for (let p = 0; p < out.length; p++) out[p] = image.data[p * image.channels + c]!;
  return out;
}

type State = Awaited<ReturnType<NonNullable<typeof app.setup>>>;

/** The shared stand-in for the runner's context, keeping the files the handler stores. */
const fakeContext = (state: State, controller?: AbortController): FakeContext<State> =>
  makeFakeContext(state, { controller, storeFiles: true });

test("the automatic downsample ratio brings the short side to about 256 px, never above 1", () => {
  assert.equal(autoDownsampleRatio(512, 512), 0.5);
  assert.equal(autoDownsampleRatio(320, 240), 1);
  assert.equal(autoDownsampleRatio(64, 4000), 1);
  // The RVM authors' table: 0.25 at 1920×1080, 0.375 at 1280×720 (portraits).
  assert.ok(Math.abs(autoDownsampleRatio(1920, 1080) - 0.25) < 0.02);
  assert.ok(Math.abs(autoDownsampleRatio(1280, 720) - 0.375) < 0.03);
  assert.equal(autoDownsampleRatio(8000, 8000), 0.1);
});

describe("the app's handler", () => {
  let state: State;
  const endpoint = app.endpoints[0]!;
  const handler = endpoint.handler as Handler<unknown, any, State>;
  const run = (input: Record<string, unknown>, ctx: HandlerContext<State>): Promise<any> => handler(endpoint.input.parse(input), ctx);
  let smallAstronaut: Buffer;

  before(async () => {
    state = await app.setup!(() => {});
    smallAstronaut = await sharp(ASTRONAUT).resize(128, 128).png().toBuffer();
  });

  test("cuts the astronaut out: person opaque, backdrop transparent, and the cut-out's alpha is the mask", async () => {
    const { ctx, stored, progress, billed } = fakeContext(state);
    const output = await run({ image_url: dataUri(await sharp(ASTRONAUT).toBuffer()) }, ctx);

    assert.deepEqual([output.image.width, output.image.height, output.image.content_type], [512, 512, "image/png"]);
    assert.deepEqual([output.mask_image.width, output.mask_image.height, output.mask_image.content_type], [512, 512, "image/png"]);
    assert.equal(stored.length, 2);
    const cut = await raw(stored[0]!.body);
    const mask = await raw(stored[1]!.body);
    assert.deepEqual([cut.width, cut.height, cut.channels], [512, 512, 4]);
    assert.deepEqual([mask.width, mask.height, mask.channels], [512, 512, 1], "the mask is a one-channel grayscale PNG");
    assert.equal((await sharp(stored[1]!.body).metadata()).space, "b-w");
    assert.deepEqual(channel(cut, 3), mask.data, "the cut-out's alpha equals the mask, pixel for pixel");

    console.log(
      `astronaut.png: person boxes ${PERSON_BOXES.map((b) => meanIn(mask.data, 512, b).toFixed(3)).join(", ")}; ` +
        `background boxes ${BACKGROUND_BOXES.map((b) => meanIn(mask.data, 512, b).toFixed(3)).join(", ")} (mean alpha, 0..1)`,
    );
    for (const box of PERSON_BOXES) {
      const coverage = meanIn(mask.data, 512, box);
      assert.ok(coverage > 0.9, `person region ${JSON.stringify(box)} is ${(coverage * 100).toFixed(1)} % opaque`);
    }
    for (const box of BACKGROUND_BOXES) {
      const coverage = meanIn(mask.data, 512, box);
      assert.ok(coverage < 0.05, `background region ${JSON.stringify(box)} is ${(coverage * 100).toFixed(1)} % opaque`);
    }
    const overall = meanIn(mask.data, 512, { x0: 0, y0: 0, x1: 512, y1: 512 });
    assert.ok(overall > 0.3 && overall < 0.6, `the person covers ${(overall * 100).toFixed(1)} % of the photo`);
    assert.deepEqual(progress, ["0/3 decode", "1/3 matting", "2/3 encode", "3/3 done"]);
    assert.deepEqual(billed, [(512 * 512) / 1e6]);
  });

  test("a photo without a person comes out almost entirely transparent", async () => {
    const { ctx, stored } = fakeContext(state);
    const output = await run({ image_url: dataUri(await sharp(COFFEE).toBuffer()) }, ctx);
    assert.deepEqual([output.image.width, output.image.height], [600, 400]);
    const mask = await raw(stored[1]!.body);
    const coverage = meanIn(mask.data, 600, { x0: 0, y0: 0, x1: 600, y1: 400 });
    console.log(`coffee.png: mean alpha ${coverage.toFixed(4)}`);
    assert.ok(coverage < 0.05, `coffee.png is ${(coverage * 100).toFixed(2)} % opaque`);
  });

  test("refine_foreground false keeps the original pixels; WebP keeps alpha; return_mask false stores one file", async () => {
    const { ctx, stored } = fakeContext(state);
    const output = await run({ image_url: dataUri(smallAstronaut), refine_foreground: false }, ctx);
    const cut = await raw(stored[0]!.body);
    const source = await raw(await sharp(smallAstronaut).removeAlpha().toBuffer());
    for (let p = 0; p < 128 * 128; p++) {
      for (let c = 0; c < 3; c++) assert.equal(cut.data[p * 4 + c], source.data[p * 3 + c]);
    }
    assert.equal(output.mask_image.width, 128);

    const webp = fakeContext(state);
    const out2 = await run({ image_url: dataUri(smallAstronaut), output_format: "webp", return_mask: false }, webp.ctx);
    assert.equal(out2.image.content_type, "image/webp");
    assert.equal(out2.mask_image, undefined);
    assert.equal(webp.stored.length, 1);
    const meta = await sharp(webp.stored[0]!.body).metadata();
    assert.deepEqual([meta.format, meta.hasAlpha, meta.width], ["webp", true, 128]);
    // Same matte as the PNG run (alpha is stored losslessly).
    const pngAlpha = channel(cut, 3);
    const webpAlpha = channel(await raw(webp.stored[0]!.body), 3);
    let diff = 0;
    for (let p = 0; p < pngAlpha.length; p++) diff = Math.max(diff, Math.abs(pngAlpha[p]! - webpAlpha[p]!));
    assert.ok(diff <= 2, `WebP alpha differs from PNG alpha by up to ${diff}`);
  });

  test("pixels transparent in the input stay transparent", async () => {
    const source = await raw(await sharp(smallAstronaut).removeAlpha().toBuffer());
    const pixels = new Uint8Array(128 * 128 * 4);
    for (let p = 0; p < 128 * 128; p++) {
      pixels.set(source.data.subarray(p * 3, p * 3 + 3), p * 4);
      pixels[p * 4 + 3] = p % 128 < 64 ? 255 : 0;
    }
    const rgba = await sharp(pixels, { raw: { width: 128, height: 128, channels: 4 } }).png().toBuffer();
    const input = await raw(rgba);
    assert.equal(channel(input, 3)[127], 0, "the fixture's right half is transparent");
    const { ctx, stored } = fakeContext(state);
    await run({ image_url: dataUri(rgba) }, ctx);
    const mask = await raw(stored[1]!.body);
    assert.equal(meanIn(mask.data, 128, { x0: 64, y0: 0, x1: 128, y1: 128 }), 0);
    assert.ok(meanIn(mask.data, 128, { x0: 30, y0: 80, x1: 60, y1: 125 }) > 0.8, "the suit in the left half is still opaque");
  });

  test("repeated requests free their tensors", async () => {
    const image = dataUri(await sharp(ASTRONAUT).resize(96, 72).png().toBuffer());
    await run({ image_url: image }, fakeContext(state).ctx);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await run({ image_url: image }, fakeContext(state).ctx);
    assert.equal(tf.memory().numTensors, before);
  });

  test("refuses an image over the pixel limit from its header, naming the limit", async () => {
    const side = Math.ceil(Math.sqrt(MAX_INPUT_PIXELS)) + 1;
    const big = await sharp({ create: { width: side, height: side, channels: 3, background: "#336699" } }).png().toBuffer();
    const { ctx, stored } = fakeContext(state);
    await assert.rejects(run({ image_url: dataUri(big) }, ctx), rejects422("image_url", new RegExp(`input limit .*${MAX_INPUT_PIXELS} pixels`)));
    assert.equal(stored.length, 0);
  });

  test("refuses a file over the size limit, naming the limit", async () => {
    const { ctx } = fakeContext(state);
    await assert.rejects(
      run({ image_url: dataUri(Buffer.alloc(MAX_INPUT_BYTES + 1)) }, ctx),
      rejects422("image_url", new RegExp(`input limit of 25 MiB \\(${MAX_INPUT_BYTES} bytes\\)`)),
    );
  });

  test("refuses bytes that are not an image", async () => {
    const { ctx } = fakeContext(state);
    await assert.rejects(run({ image_url: dataUri(Buffer.from("not an image")) }, ctx), rejects422("image_url", /could not decode/));
  });

  test("stops before matting when cancelled", async () => {
    const controller = new AbortController();
    const reason = new Error("cancelled by test");
    controller.abort(reason);
    const { ctx, stored } = fakeContext(state, controller);
    await assert.rejects(run({ image_url: dataUri(smallAstronaut) }, ctx), (err) => err === reason);
    assert.equal(stored.length, 0);
  });
});
