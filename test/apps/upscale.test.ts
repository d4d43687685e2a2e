/**
 * The upscale app on a real photo: ESRGAN must restore detail better than Lanczos, tiling must leave
 * no seams, cancellation must stop between tiles, alpha must survive, and the handler glue must
 * store a correctly sized image and enforce the documented limits.
 */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import app, { MAX_INPUT_PIXELS, MAX_OUTPUT_PIXELS } from "../../src/apps/upscale/app.js";
import { preloadModelCache } from "../../src/media/upscale/model-cache.js";
import { loadUpscaleModel, type UpscaleModel } from "../../src/media/upscale/model-loader.js";
import { planTiles, upscaleRaw, type RawImage } from "../../src/media/upscale/tiled-upscale.js";
import type { FileRef, Handler, HandlerContext } from "../../src/runtime/sdk.js";
import { rejects422 } from "../helpers/field-error.js";
import { fakeContext as makeFakeContext, type FakeContext } from "../helpers/handler-context.js";

// sharp takes file paths, not URLs.
const ASTRONAUT = fileURLToPath(new URL("../fixtures/media/astronaut.png", import.meta.url));

/** PSNR in dB over all channels, and the largest per-sample difference. */
function compare(a: Uint8Array, b: Uint8Array): { psnr: number; maxDiff: number } {
  assert.equal(a.length, b.length);
  let se = 0;
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    se += d * d;
    maxDiff = Math.max(maxDiff, Math.abs(d));
  }
  const mse = se / a.length;
  return { psnr: mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse), maxDiff };
}

async function rawRgb(image: sharp.Sharp): Promise<RawImage & { channels: 3 }> {
  const { data, info } = await image.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, channels: 3 };
}

/**
 * A region of the fixture with face, suit texture and hard edges. ESRGAN slim won on every crop and
 * downscaling kernel tried (×4 by 0.2–0.6 dB, ×2 by 1.4–3 dB); this one is typical.
 */
const crop = (size: number): sharp.Sharp =>
  sharp(ASTRONAUT).extract({ left: 192, top: 64, width: size, height: size });

let slim2: UpscaleModel;
let slim4: UpscaleModel;

before(async () => {
  [slim2, slim4] = await Promise.all([loadUpscaleModel("slim", 2), loadUpscaleModel("slim", 4)]);
});

describe("ESRGAN slim restores a downscaled photo better than Lanczos", () => {
  for (const scale of [4, 2] as const) {
    test(`×${scale}`, async () => {
      const original = await rawRgb(crop(128));
      const small = await rawRgb(crop(128).resize(128 / scale, 128 / scale, { kernel: "cubic" }));
      const model = scale === 4 ? slim4 : slim2;

      const esrgan = await upscaleRaw(model, small, { scale });
      const lanczos = await rawRgb(
        sharp(small.data, { raw: { width: small.width, height: small.height, channels: 3 } }).resize(128, 128, {
          kernel: "lanczos3",
        }),
      );
      assert.equal(esrgan.width, 128);
      assert.equal(esrgan.height, 128);
      const e = compare(original.data, esrgan.data).psnr;
      const l = compare(original.data, lanczos.data).psnr;
      console.log(`×${scale}: PSNR ESRGAN slim ${e.toFixed(2)} dB, Lanczos ${l.toFixed(2)} dB`);
      assert.ok(e > l, `ESRGAN ${e.toFixed(2)} dB should beat Lanczos ${l.toFixed(2)} dB`);
    });
  }
});

describe("tiling", () => {
  test("tiles cover the image exactly once", () => {
    const tiles = planTiles(96, 80, 32, 10);
    assert.equal(tiles.length, 9);
    const covered = new Uint8Array(96 * 80);
    for (const t of tiles) for (let y = t.y0; y < t.y1; y++) for (let x = t.x0; x < t.x1; x++) covered[y * 96 + x]!++;
    assert.ok(covered.every((c) => c === 1));
  });

  test("a tiled upscale matches a single-tile one (no seams)", async () => {
    const image = await rawRgb(sharp(ASTRONAUT).extract({ left: 180, top: 60, width: 96, height: 80 }));
    const whole = await upscaleRaw(slim4, image, { tileSize: 1000 });
    let tiles = 0;
    const tiled = await upscaleRaw(slim4, image, { tileSize: 32, onTile: () => void tiles++ });
    assert.equal(tiles, 9);
    const { psnr, maxDiff } = compare(whole.data, tiled.data);
    assert.ok(psnr > 40, `PSNR ${psnr} dB`);
    assert.ok(maxDiff <= 1, `max difference ${maxDiff}`);
    // Control: without context the tile borders show, so the comparison above can see seams.
    const seamed = await upscaleRaw(slim4, image, { tileSize: 32, overlap: 0 });
    assert.ok(compare(whole.data, seamed.data).maxDiff > 10);
  });

  test("an aborted signal stops after the current tile with the abort reason", async () => {
    const image = await rawRgb(crop(96).resize(96, 80, { fit: "fill" }));
    const controller = new AbortController();
    const reason = new Error("cancelled by test");
    const done: number[] = [];
    await assert.rejects(
      upscaleRaw(slim2, image, {
        tileSize: 32,
        signal: controller.signal,
        onTile: (i, n) => {
          done.push(i);
          assert.equal(n, 9);
          controller.abort(reason);
        },
      }),
      (err) => err === reason,
    );
    assert.deepEqual(done, [1]);

    let started = 0;
    await assert.rejects(
      upscaleRaw(slim2, image, { tileSize: 32, signal: AbortSignal.abort(reason), onTile: () => void started++ }),
      (err) => err === reason,
    );
    assert.equal(started, 0);
  });
});

test("RGBA input keeps its alpha, and RGB is upscaled as without alpha", async () => {
  const width = 48;
  const height = 40;
  const rgb = await rawRgb(crop(48).resize(width, height, { fit: "fill" }));
  const rgba = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    rgba.set(rgb.data.subarray(p * 3, p * 3 + 3), p * 4);
    // Opaque left half, transparent right half.
    rgba[p * 4 + 3] = p % width < width / 2 ? 255 : 0;
  }
  const out = await upscaleRaw(slim2, { data: rgba, width, height, channels: 4 });
  assert.equal(out.channels, 4);
  assert.equal(out.width, width * 2);
  assert.equal(out.height, height * 2);

  const alpha = (x: number, y: number): number => out.data[(y * out.width + x) * 4 + 3]!;
  assert.equal(alpha(4, 10), 255);
  assert.equal(alpha(out.width - 5, 10), 0);
  const rgbOnly = await upscaleRaw(slim2, rgb);
  const rgbOfRgba = new Uint8Array(out.width * out.height * 3);
  for (let p = 0; p < out.width * out.height; p++) rgbOfRgba.set(out.data.subarray(p * 4, p * 4 + 3), p * 3);
  assert.equal(compare(rgbOnly.data, rgbOfRgba).maxDiff, 0);
});

describe("the app's handler", () => {
  type State = Awaited<ReturnType<NonNullable<typeof app.setup>>>;
  let state: State;
  const endpoint = app.endpoints[0]!;
  const handler = endpoint.handler as Handler<unknown, { image: FileRef }, State>;

  before(async () => {
    state = await app.setup!(() => {});
  });

  /** The shared stand-in for the runner's context, keeping the files the handler stores. */
  const fakeContext = (): FakeContext<State> => makeFakeContext(state, { storeFiles: true });

  const dataUri = (bytes: Buffer, type: string): string => `data:${type};base64,${bytes.toString("base64")}`;
  const run = async (input: Record<string, unknown>, ctx: HandlerContext<State>): Promise<{ image: FileRef }> =>
    handler(endpoint.input.parse(input), ctx);

  test("upscales ×4 and stores a PNG of that size", async () => {
    const png = await crop(40).resize(40, 24, { fit: "fill" }).png().toBuffer();
    const { ctx, stored, progress, billed } = fakeContext();
    const output = await run({ image_url: dataUri(png, "image/png"), scale: 4 }, ctx);

    assert.equal(output.image.width, 160);
    assert.equal(output.image.height, 96);
    assert.equal(output.image.content_type, "image/png");
    assert.equal(stored.length, 1);
    const meta = await sharp(stored[0]!.body).metadata();
    assert.equal(meta.format, "png");
    assert.equal(meta.width, 160);
    assert.equal(meta.height, 96);
    assert.deepEqual(progress, ["1/1 tile 1/1"]);
    assert.deepEqual(billed, [(160 * 96) / 1e6]);
  });

  test("stores the same PNG whether the model runs on one thread or on two (tiles shared out)", async () => {
    // 200×140: four tiles of the default size, so two threads have work to share.
    const png = await sharp(ASTRONAUT).extract({ left: 150, top: 60, width: 200, height: 140 }).png().toBuffer();
    const outputs: Buffer[] = [];
    const progress: string[][] = [];
    for (const threads of [1, 2]) {
      const models = await preloadModelCache(() => {}, { threads });
      try {
        const fake = makeFakeContext<State>({ models }, { storeFiles: true });
        await run({ image_url: dataUri(png, "image/png"), scale: 2 }, fake.ctx);
        outputs.push(fake.stored[0]!.body);
        progress.push(fake.progress);
      } finally {
        await models.dispose();
      }
    }
    assert.ok(outputs[0]!.equals(outputs[1]!), "the same bytes");
    assert.deepEqual(progress[1], ["1/4 tile 1/4", "2/4 tile 2/4", "3/4 tile 3/4", "4/4 tile 4/4"]);
    assert.deepEqual(progress[1], progress[0]);
  });

  test("applies the EXIF orientation and encodes JPEG", async () => {
    // Stored 40×24 with orientation 6 (rotate 90°): displayed, and so upscaled, as 24×40.
    const jpeg = await crop(40).resize(40, 24, { fit: "fill" }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const { ctx, stored } = fakeContext();
    const output = await run({ image_url: dataUri(jpeg, "image/jpeg"), scale: 2, output_format: "jpeg" }, ctx);
    assert.equal(output.image.width, 48);
    assert.equal(output.image.height, 80);
    assert.equal(output.image.content_type, "image/jpeg");
    const meta = await sharp(stored[0]!.body).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["jpeg", 48, 80]);
  });

  test("rejects an input over the pixel limit with a 422 field error", async () => {
    const side = Math.ceil(Math.sqrt(MAX_INPUT_PIXELS)) + 16;
    const big = await sharp({ create: { width: side, height: side, channels: 3, background: "#336699" } })
      .png()
      .toBuffer();
    const { ctx, stored } = fakeContext();
    await assert.rejects(run({ image_url: dataUri(big, "image/png") }, ctx), rejects422("image_url", new RegExp(`input limit .*${MAX_INPUT_PIXELS}`)));
    assert.equal(stored.length, 0);
  });

  test("rejects an output over the pixel limit", async () => {
    // 1100² is a fine input, but ×4 would be 4400² > 4096².
    const input = await sharp({ create: { width: 1100, height: 1100, channels: 3, background: "#336699" } })
      .png()
      .toBuffer();
    const { ctx } = fakeContext();
    await assert.rejects(
      run({ image_url: dataUri(input, "image/png"), scale: 4 }, ctx),
      rejects422("image_url", new RegExp(`output limit .*${MAX_OUTPUT_PIXELS}`)),
    );
  });

  test("rejects bytes that are not an image", async () => {
    const { ctx } = fakeContext();
    await assert.rejects(run({ image_url: dataUri(Buffer.from("not an image"), "image/png") }, ctx), rejects422("image_url"));
  });
});
