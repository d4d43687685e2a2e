/**
 * `enable_safety_checker` on `darkroom/remove-background` through the real platform. The server runs
 * with `DARKROOM_SAFETY_CHECKER_THRESHOLD=0` (every image flagged) in the default `withhold` mode, so
 * the flagging path runs on a safe fixture: both outputs, the cut-out and the mask, come back black.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { FIXTURES, REPO_ROOT, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

const APP = "darkroom/remove-background";

async function maxChannelValue(url: string): Promise<number> {
  const bytes = Buffer.from(await (await fetch(url)).arrayBuffer());
  const stats = await sharp(bytes).removeAlpha().stats();
  return Math.max(...stats.channels.map((c) => c.max));
}

describe("enable_safety_checker on darkroom/remove-background through the platform", () => {
  let p: TestPlatform;
  const saved = process.env["DARKROOM_SAFETY_CHECKER_THRESHOLD"];
  const imageUrl = `data:image/png;base64,${readFileSync(path.join(FIXTURES, "astronaut.png")).toString("base64")}`;

  before(async () => {
    process.env["DARKROOM_SAFETY_CHECKER_THRESHOLD"] = "0";
    p = await startTestPlatform({ appModules: [path.join(REPO_ROOT, "src/apps/remove-background/app.ts")] });
  });
  after(async () => {
    await p.close();
    if (saved === undefined) delete process.env["DARKROOM_SAFETY_CHECKER_THRESHOLD"];
    else process.env["DARKROOM_SAFETY_CHECKER_THRESHOLD"] = saved;
  });

  test("off by default: the cut-out comes back as made, with no has_nsfw_concepts", async () => {
    const res = await http(p, "POST", `/run/${APP}`, { image_url: imageUrl });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.has_nsfw_concepts, undefined);
    assert.ok((await maxChannelValue(res.body.image.url)) > 200, "the cut-out has its colours");
  });

  test("on: one verdict per output image, and flagged images are withheld (black)", async () => {
    const res = await http(p, "POST", `/run/${APP}`, { image_url: imageUrl, enable_safety_checker: true });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.has_nsfw_concepts, [true, true], "cut-out and mask, in output order");
    assert.equal(await maxChannelValue(res.body.image.url), 0, "the cut-out is withheld");
    assert.equal(await maxChannelValue(res.body.mask_image.url), 0, "the mask is withheld");
    assert.equal(res.body.image.width, 512, "the replacement keeps the size");
  });
});
