/**
 * `darkroom/ocr` on text rendered in the test: two lines of DejaVu Sans must be read back exactly,
 * in order and with boxes inside the image; a blank page gives no text; the handler must enforce its
 * limits and cancellation; and the app must work end to end through the platform.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import app, { MAX_INPUT_PIXELS } from "../../src/apps/ocr/app.js";
import type { Handler, HandlerContext } from "../../src/runtime/sdk.js";
import { REPO_ROOT, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { fakeContext as makeFakeContext, type FakeContext } from "../helpers/handler-context.js";
import { testImageInputRejections } from "../helpers/image-input-cases.js";

const dataUri = (bytes: Buffer, type = "image/png"): string => `data:${type};base64,${bytes.toString("base64")}`;

/** The rendered lines, top to bottom; the exact text the app must return. */
const LINES = ["Darkroom 2026", "Invoice total $1,234.56"];
const PAGE = { width: 700, height: 220 };

/** Black 40 px DejaVu Sans on white, one baseline every 80 px. Rendered by librsvg through sharp. */
async function renderPage(): Promise<Buffer> {
  const texts = LINES.map(
    (line, i) =>
      `<text x="30" y="${80 + i * 80}" font-family="DejaVu Sans" font-size="40" fill="black">${line}</text>`,
  ).join("\n");
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${PAGE.width}" height="${PAGE.height}">` +
    `<rect width="100%" height="100%" fill="white"/>${texts}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** The checks every path (direct handler call and HTTP) must pass on the rendered page. */
function assertPage(output: any): void {
  assert.equal(output.text, LINES.join("\n"));
  assert.deepEqual(
    output.lines.map((l: any) => l.text),
    LINES,
  );
  let previousBottom = -1;
  for (const line of output.lines) {
    assert.ok(line.confidence > 0.8 && line.confidence <= 1, `confidence ${line.confidence}`);
    assert.equal(line.box.length, 4);
    for (const [x, y] of line.box) {
      assert.ok(x >= 0 && x <= PAGE.width && y >= 0 && y <= PAGE.height, `corner ${x},${y} outside the image`);
    }
    const ys = line.box.map((p: number[]) => p[1]!);
    const top = Math.min(...ys);
    // Each line's box starts below the previous one's: ordered top to bottom, not overlapping.
    assert.ok(top > previousBottom, `line "${line.text}" starts at y ${top}, above ${previousBottom}`);
    previousBottom = Math.max(...ys);
  }
  // The text is drawn from x 30 with 40 px glyphs around baselines 80 and 160: the boxes must hug it.
  const [first, second] = output.lines;
  assert.ok(first.box[0][0] >= 20 && first.box[0][0] <= 45 && first.box[0][1] >= 35 && first.box[2][1] <= 95);
  assert.ok(second.box[0][1] >= 110 && second.box[2][1] <= 175);
}

describe("the app's handler", () => {
  type State = Awaited<ReturnType<NonNullable<typeof app.setup>>>;
  let state: State;
  let page: Buffer;
  const endpoint = app.endpoints[0]!;
  const handler = endpoint.handler as Handler<unknown, any, State>;

  before(async () => {
    [state, page] = await Promise.all([app.setup!(() => {}), renderPage()]);
  });

  const fakeContext = (controller = new AbortController()): FakeContext<State> => makeFakeContext(state, { controller });

  const run = async (input: Record<string, unknown>, ctx: HandlerContext<State>): Promise<any> =>
    handler(endpoint.input.parse(input), ctx);

  test("reads the rendered lines exactly, in order, with boxes inside the image", async () => {
    const { ctx, progress, billed } = fakeContext();
    const output = await run({ image_url: dataUri(page) }, ctx);
    assertPage(output);
    // The output must satisfy the schema the platform publishes.
    endpoint.output.parse(output);
    assert.deepEqual(progress, ["0/2 decode", "1/2 detect and recognise", "2/2 done"]);
    assert.deepEqual(billed, [1]);
  });

  test("maps boxes through the EXIF orientation", async () => {
    // Stored rotated back by 90°, tagged with orientation 6: displayed upright again, so the text reads as before.
    const rotated = await sharp(page).rotate(-90).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const { ctx } = fakeContext();
    assertPage(await run({ image_url: dataUri(rotated, "image/jpeg") }, ctx));
  });

  test("a blank page gives no text and no lines", async () => {
    const blank = await sharp({ create: { width: 400, height: 300, channels: 3, background: "#ffffff" } })
      .png()
      .toBuffer();
    const { ctx, billed } = fakeContext();
    assert.deepEqual(await run({ image_url: dataUri(blank) }, ctx), { text: "", lines: [] });
    assert.deepEqual(billed, [1]);
  });

  testImageInputRejections(MAX_INPUT_PIXELS, (imageUrl) => {
    const { ctx, billed } = fakeContext();
    return { result: run({ image_url: imageUrl }, ctx), billed };
  });

  test("a cancelled request stops before recognition and bills nothing", async () => {
    const controller = new AbortController();
    const reason = new Error("cancelled by test");
    controller.abort(reason);
    const { ctx, progress, billed } = fakeContext(controller);
    await assert.rejects(run({ image_url: dataUri(page) }, ctx), (err) => err === reason);
    assert.deepEqual(progress, ["0/2 decode"]);
    assert.deepEqual(billed, []);
  });
});

describe("darkroom/ocr through the platform", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform({ appModules: [path.join(REPO_ROOT, "src/apps/ocr/app.ts")] });
  });
  after(async () => {
    await p.close();
  });

  test("POST /run reads the rendered page given as a data: URI", async () => {
    const res = await http(p, "POST", "/run/darkroom/ocr", { image_url: dataUri(await renderPage()) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assertPage(res.body);
  });
});
