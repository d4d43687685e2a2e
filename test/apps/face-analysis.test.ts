/**
 * `darkroom/face-analysis` on real photos: the astronaut fixture (Eileen Collins, NASA portrait) must
 * give exactly one well-placed face with plausible attributes, the coffee photo none; the handler
 * must enforce its limits and cancellation; and the app must work end to end through the platform.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import app, { MAX_INPUT_PIXELS } from "../../src/apps/face-analysis/app.js";
import { EMOTIONS } from "../../src/apps/face-analysis/face-model.js";
import type { Handler, HandlerContext } from "../../src/runtime/sdk.js";
import { FIXTURES, REPO_ROOT, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { fakeContext as makeFakeContext, type FakeContext } from "../helpers/handler-context.js";
import { testImageInputRejections } from "../helpers/image-input-cases.js";

const ASTRONAUT = path.join(FIXTURES, "astronaut.png");
const COFFEE = path.join(FIXTURES, "coffee.png");

const dataUri = (bytes: Buffer, type = "image/png"): string => `data:${type};base64,${bytes.toString("base64")}`;

/**
 * Where the face is in astronaut.png (512×512), checked by eye on a crop: cheek to cheek about
 * x 177–272, brows to chin about y 90–180. The bounds below leave a margin around that region.
 */
const FACE_REGION = { x0: 160, y0: 50, x1: 290, y1: 200 };

/** The checks every path (direct handler call and HTTP) must pass on the astronaut photo. */
function assertAstronaut(output: any): void {
  assert.deepEqual(output.image, { width: 512, height: 512 });
  assert.equal(output.faces.length, 1, `expected one face, got ${JSON.stringify(output.faces.map((f: any) => f.box))}`);
  const face = output.faces[0];
  assert.ok(face.confidence > 0.9, `confidence ${face.confidence}`);

  const { x, y, width, height } = face.box;
  assert.ok(x >= FACE_REGION.x0 && y >= FACE_REGION.y0, `box corner ${x},${y} is outside the face region`);
  assert.ok(x + width <= FACE_REGION.x1 && y + height <= FACE_REGION.y1, `box ${JSON.stringify(face.box)} is too large`);
  // A box around just an eye or the mouth would also lie inside the region: it must cover most of the face.
  assert.ok(width >= 60 && height >= 70, `box ${width}×${height} is too small for the face`);

  assert.equal(face.landmarks.length, 68);
  // The detector's box is tight on the cheeks, and the jaw contour (points 0–16) runs along the face's
  // outline, so it pokes out a little: here by 5.7 px (7 % of the width) on the left. The points must lie
  // within the box grown by 10 % on each side.
  const mx = width * 0.1;
  const my = height * 0.1;
  for (const [px, py] of face.landmarks) {
    assert.ok(
      px >= x - mx && px <= x + width + mx && py >= y - my && py <= y + height + my,
      `landmark ${px},${py} outside the box ${JSON.stringify(face.box)} grown by 10 %`,
    );
  }
  // The brows (17–26), eyes, nose and mouth lie strictly inside the box itself.
  for (const [px, py] of face.landmarks.slice(17)) {
    assert.ok(px >= x && px <= x + width && py >= y && py <= y + height, `landmark ${px},${py} outside the box`);
  }
  // Eyes (36–47) lie above the mouth (48–67), and the nose tip (30) between the eye corners.
  const meanY = (from: number, to: number): number =>
    face.landmarks.slice(from, to + 1).reduce((s: number, p: number[]) => s + p[1]!, 0) / (to - from + 1);
  assert.ok(meanY(36, 47) < meanY(48, 67));
  assert.ok(face.landmarks[30][0] > face.landmarks[36][0] && face.landmarks[30][0] < face.landmarks[45][0]);

  assert.equal(face.gender, "female");
  assert.ok(face.gender_confidence >= 0.5 && face.gender_confidence <= 1);
  assert.ok(face.age >= 20 && face.age <= 60, `age ${face.age}`);
  assert.deepEqual(Object.keys(face.emotions).sort(), [...EMOTIONS].sort());
  const sum = Object.values(face.emotions as Record<string, number>).reduce((s, v) => s + v, 0);
  assert.ok(Math.abs(sum - 1) < 0.01, `emotions sum to ${sum}`);
  // She smiles broadly in the portrait.
  assert.equal(face.emotion, "happy");
}

describe("the app's handler", () => {
  type State = Awaited<ReturnType<NonNullable<typeof app.setup>>>;
  let state: State;
  const endpoint = app.endpoints[0]!;
  const handler = endpoint.handler as Handler<unknown, any, State>;

  before(async () => {
    state = await app.setup!(() => {});
  });

  const fakeContext = (controller = new AbortController()): FakeContext<State> => makeFakeContext(state, { controller });

  const run = async (input: Record<string, unknown>, ctx: HandlerContext<State>): Promise<any> =>
    handler(endpoint.input.parse(input), ctx);

  test("finds Eileen Collins' face in the astronaut photo", async () => {
    const { ctx, progress, billed } = fakeContext();
    const output = await run({ image_url: dataUri(readFileSync(ASTRONAUT)) }, ctx);
    assertAstronaut(output);
    // The output must satisfy the schema the platform publishes.
    endpoint.output.parse(output);
    assert.deepEqual(progress, ["0/3 decode", "1/3 detect", "2/3 describe 1 face", "3/3 done"]);
    assert.deepEqual(billed, [1]);
  });

  test("maps coordinates through the EXIF orientation", async () => {
    // Stored rotated back by 90°, tagged with orientation 6: displayed upright again, so the face is where it was.
    const rotated = await sharp(ASTRONAUT).rotate(-90).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const { ctx } = fakeContext();
    const output = await run({ image_url: dataUri(rotated, "image/jpeg") }, ctx);
    assertAstronaut(output);
  });

  test("finds no face in the coffee photo", async () => {
    const { ctx, billed } = fakeContext();
    const output = await run({ image_url: dataUri(readFileSync(COFFEE)) }, ctx);
    assert.deepEqual(output, { faces: [], image: { width: 600, height: 400 } });
    assert.deepEqual(billed, [1]);
  });

  test("min_confidence above the face's score filters it out", async () => {
    const { ctx } = fakeContext();
    const output = await run({ image_url: dataUri(readFileSync(ASTRONAUT)), min_confidence: 0.99 }, ctx);
    assert.equal(output.faces.length, 0);
  });

  testImageInputRejections(MAX_INPUT_PIXELS, (imageUrl) => {
    const { ctx, billed } = fakeContext();
    return { result: run({ image_url: imageUrl }, ctx), billed };
  });

  test("rejects out-of-range knobs at the schema", () => {
    for (const bad of [{ min_confidence: 1.5 }, { max_faces: 0 }, { max_faces: 101 }]) {
      assert.throws(() => endpoint.input.parse({ image_url: "data:image/png;base64,AA==", ...bad }));
    }
  });

  test("a cancelled request stops before detection and bills nothing", async () => {
    const controller = new AbortController();
    const reason = new Error("cancelled by test");
    controller.abort(reason);
    const { ctx, progress, billed } = fakeContext(controller);
    await assert.rejects(run({ image_url: dataUri(readFileSync(ASTRONAUT)) }, ctx), (err) => err === reason);
    assert.deepEqual(progress, ["0/3 decode"]);
    assert.deepEqual(billed, []);
  });
});

describe("darkroom/face-analysis through the platform", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform({ appModules: [path.join(REPO_ROOT, "src/apps/face-analysis/app.ts")] });
  });
  after(async () => {
    await p.close();
  });

  test("POST /run analyses the astronaut photo given as a data: URI", async () => {
    const res = await http(p, "POST", "/run/darkroom/face-analysis", { image_url: dataUri(readFileSync(ASTRONAUT)) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assertAstronaut(res.body);
  });
});
