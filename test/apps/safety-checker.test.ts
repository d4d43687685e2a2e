/**
 * The safety checker on real photos: safe fixtures must not be flagged and must be classed neutral or
 * drawing, a batch must keep its order, the limits must answer 422, and the flagging rule is tested
 * on its own (no NSFW fixture may ship, so the "flagged" side is covered by the pure function).
 * One test goes through a real platform end to end.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import app, { MAX_IMAGES, MAX_PIXELS } from "../../src/apps/safety-checker/app.js";
import { isNsfw, NSFW_CLASSES, type NsfwScores } from "../../src/media/safety/model.js";
import type { Handler, HandlerContext } from "../../src/runtime/sdk.js";
import { FIXTURES, REPO_ROOT, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { rejects422 } from "../helpers/field-error.js";
import { fakeContext as makeFakeContext, type FakeContext } from "../helpers/handler-context.js";

const PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png"];
const dataUri = (bytes: Buffer, type = "image/png"): string => `data:${type};base64,${bytes.toString("base64")}`;
const fixtureUri = (name: string): string => dataUri(readFileSync(path.join(FIXTURES, name)));

const scores = (s: Partial<NsfwScores>): NsfwScores => ({ drawing: 0, hentai: 0, neutral: 0, porn: 0, sexy: 0, ...s });

describe("the flagging rule", () => {
  test("explicit classes flag at the threshold, summed", () => {
    assert.equal(isNsfw(scores({ porn: 0.5, neutral: 0.5 })), true);
    assert.equal(isNsfw(scores({ porn: 0.49, neutral: 0.51 })), false);
    assert.equal(isNsfw(scores({ hentai: 0.9, drawing: 0.1 })), true);
    // Neither class alone reaches 0.5, but together they are clearly explicit.
    assert.equal(isNsfw(scores({ porn: 0.3, hentai: 0.3, neutral: 0.4 })), true);
  });

  test("sexy alone needs (1 + threshold) / 2", () => {
    assert.equal(isNsfw(scores({ sexy: 0.7, neutral: 0.3 })), false);
    assert.equal(isNsfw(scores({ sexy: 0.75, neutral: 0.25 })), true);
    assert.equal(isNsfw(scores({ sexy: 0.85, neutral: 0.15 }), 0.8), false);
    assert.equal(isNsfw(scores({ sexy: 0.9, neutral: 0.1 }), 0.8), true);
  });

  test("neutral and drawing never flag, and the threshold moves the line", () => {
    assert.equal(isNsfw(scores({ neutral: 1 })), false);
    assert.equal(isNsfw(scores({ drawing: 0.8, neutral: 0.2 })), false);
    assert.equal(isNsfw(scores({ porn: 0.2, neutral: 0.8 }), 0.1), true);
    assert.equal(isNsfw(scores({ porn: 0.95, neutral: 0.05 }), 1), false);
    assert.equal(isNsfw(scores({ neutral: 1 }), 0), true, "threshold 0 flags everything");
  });
});

describe("the app's handler", () => {
  type State = Awaited<ReturnType<NonNullable<typeof app.setup>>>;
  type Output = { has_nsfw_concepts: boolean[]; scores: NsfwScores[]; model: string };
  let state: State;
  const endpoint = app.endpoints[0]!;
  const handler = endpoint.handler as Handler<unknown, Output, State>;

  // One model load for every handler test: it dominates the runtime.
  before(async () => {
    state = await app.setup!(() => {});
  });
  after(async () => {
    await app.teardown?.(state);
  });

  const fakeContext = (controller = new AbortController()): FakeContext<State> => makeFakeContext(state, { controller });

  const run = async (input: Record<string, unknown>, ctx: HandlerContext<State>): Promise<Output> =>
    handler(endpoint.input.parse(input), ctx);

  test("safe photos are not flagged, classed neutral or drawing, with scores summing to 1", async () => {
    const { ctx, progress, billed } = fakeContext();
    const out = await run({ image_urls: PHOTOS.map(fixtureUri) }, ctx);
    assert.equal(out.model, "MobileNetV2");
    assert.deepEqual(out.has_nsfw_concepts, [false, false, false]);
    assert.equal(out.scores.length, 3);
    for (const [i, s] of out.scores.entries()) {
      assert.deepEqual(Object.keys(s).sort(), [...NSFW_CLASSES]);
      const sum = Object.values(s).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-3, `${PHOTOS[i]}: scores sum to ${sum}`);
      const top = NSFW_CLASSES.reduce((a, b) => (s[b] > s[a] ? b : a));
      assert.ok(top === "neutral" || top === "drawing", `${PHOTOS[i]}: top class ${top} (${JSON.stringify(s)})`);
    }
    assert.deepEqual(progress, ["1/3 image 1/3", "2/3 image 2/3", "3/3 image 3/3"]);
    assert.deepEqual(billed, [3]);
  });

  test("a batch keeps its order, with image_url first", async () => {
    const singles: NsfwScores[] = [];
    for (const name of PHOTOS) singles.push((await run({ image_url: fixtureUri(name) }, fakeContext().ctx)).scores[0]!);
    // The single runs differ from each other, so a reordered batch could not match them.
    assert.notDeepEqual(singles[0], singles[1]);

    const { ctx, billed } = fakeContext();
    const [a, b, c] = PHOTOS.map(fixtureUri);
    const out = await run({ image_url: c, image_urls: [a, b, c, a] }, ctx);
    const expected = [singles[2], singles[0], singles[1], singles[2], singles[0]];
    assert.equal(out.scores.length, 5);
    for (const [i, s] of out.scores.entries()) {
      for (const k of NSFW_CLASSES) assert.ok(Math.abs(s[k] - expected[i]![k]) < 1e-5, `image ${i} ${k}`);
    }
    assert.deepEqual(billed, [5]);
  });

  test("more than 16 images in all is a 422 naming the limit", async () => {
    const tiny = dataUri(await sharp({ create: { width: 8, height: 8, channels: 3, background: "#808080" } }).png().toBuffer());
    await assert.rejects(
      run({ image_url: tiny, image_urls: Array<string>(MAX_IMAGES).fill(tiny) }, fakeContext().ctx),
      rejects422(["image_urls"], new RegExp(`17 images .*limit is ${MAX_IMAGES} images`)),
    );
    // image_urls alone over the limit fails the schema, also naming the limit.
    const parsed = endpoint.input.safeParse({ image_urls: Array<string>(MAX_IMAGES + 1).fill(tiny) });
    assert.equal(parsed.success, false);
    assert.match(parsed.error?.issues[0]?.message ?? "", /at most 16 images/);
  });

  test("an image over 16 megapixels is a 422 naming the limit, before any work", async () => {
    // 4100×4000 = 16.4 MP; a one-colour PNG keeps the fixture small.
    const big = await sharp({ create: { width: 4100, height: 4000, channels: 3, background: "#808080" } }).png().toBuffer();
    const { ctx, progress, billed } = fakeContext();
    await assert.rejects(
      run({ image_urls: [fixtureUri("coffee.png"), dataUri(big)] }, ctx),
      rejects422(["image_urls", 1], new RegExp(`limit is 16 megapixels \\(${MAX_PIXELS} pixels\\)`)),
    );
    assert.deepEqual(progress, [], "nothing is classified when one image is over the limit");
    assert.deepEqual(billed, []);
  });

  test("a non-image and a missing image are 422s", async () => {
    const text = dataUri(Buffer.from("this is not an image"), "text/plain");
    await assert.rejects(run({ image_url: text }, fakeContext().ctx), rejects422(["image_url"], /not a readable image/));
    await assert.rejects(run({}, fakeContext().ctx), rejects422(["image_url"], /image_url or image_urls/));
  });

  test("cancellation stops between images", async () => {
    const controller = new AbortController();
    const reason = new Error("cancelled by test");
    const { ctx, progress, billed } = fakeContext(controller);
    const cancelling: HandlerContext<State> = {
      ...ctx,
      progress: (step, total, message) => {
        ctx.progress(step, total, message);
        controller.abort(reason);
      },
    };
    await assert.rejects(run({ image_urls: PHOTOS.map(fixtureUri) }, cancelling), (err) => err === reason);
    assert.deepEqual(progress, ["1/3 image 1/3"]);
    assert.deepEqual(billed, []);
  });
});

describe("darkroom/safety-checker through the platform", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform({ appModules: [path.join(REPO_ROOT, "src/apps/safety-checker/app.ts")] });
  });
  after(async () => {
    await p.close();
  });

  test("checks a batch of data URIs and meters one unit per image", async () => {
    const res = await http(p, "POST", "/run/darkroom/safety-checker", {
      image_url: fixtureUri("astronaut.png"),
      image_urls: [fixtureUri("chelsea.png")],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.has_nsfw_concepts, [false, false]);
    assert.equal(res.body.scores.length, 2);
    assert.equal(res.body.model, "MobileNetV2");
    assert.ok(res.body.scores[0].neutral > 0.5, JSON.stringify(res.body.scores[0]));

    const tooMany = await http(p, "POST", "/run/darkroom/safety-checker", {
      image_urls: Array<string>(MAX_IMAGES + 1).fill(dataUri(Buffer.from("x"))),
    });
    assert.equal(tooMany.status, 422);
    assert.deepEqual(tooMany.body.detail[0].loc, ["body", "image_urls"]);
    // The gateway checks the JSON Schema before the runner sees the request: its message names the 16 too.
    assert.match(tooMany.body.detail[0].msg, /\b16\b/);

    const usage = await http(p, "GET", "/v1/usage?app=darkroom/safety-checker");
    assert.equal(usage.status, 200);
    const billed = usage.body.usage.map((u: { billable_units: number }) => u.billable_units);
    assert.ok(billed.includes(2), `usage rows: ${JSON.stringify(usage.body.usage)}`);
  });
});
