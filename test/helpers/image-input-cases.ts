/**
 * Test cases every image app owes its `image_url` input (the media/image header check): an image
 * over the pixel limit and bytes that are no image are both 422s on the field, answered before any
 * work is billed. An app's test file registers them with {@link testImageInputRejections}.
 * @module
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import sharp from "sharp";
import { toDataUri } from "../../src/storage/data-uri.js";
import { rejects422 } from "./field-error.js";

/** One handler call on an `image_url`, with what it billed. */
export interface ImageCall {
  result: Promise<unknown>;
  billed: number[];
}

/**
 * Registers the two rejection tests in the current suite. `call` runs the app's handler on
 * `{ image_url }` with a fresh context; `maxInputPixels` is the app's limit, which the 422 must name.
 */
export function testImageInputRejections(maxInputPixels: number, call: (imageUrl: string) => ImageCall): void {
  test("rejects an input over the pixel limit with a 422 that names it", async () => {
    const side = Math.ceil(Math.sqrt(maxInputPixels)) + 16;
    const big = await sharp({ create: { width: side, height: side, channels: 3, background: "#808080" } })
      .png()
      .toBuffer();
    const { result, billed } = call(toDataUri(big, "image/png"));
    await assert.rejects(result, rejects422("image_url", new RegExp(`input limit .*${maxInputPixels}`)));
    assert.deepEqual(billed, []);
  });

  test("rejects bytes that are not an image with a 422", async () => {
    await assert.rejects(call(toDataUri(Buffer.from("not an image"), "image/png")).result, rejects422("image_url"));
  });
}
