/**
 * The text-to-image app's handlers called directly (no server): the models folder it reads, a 422
 * for image-to-image on a model without a VAE encoder, cancellation between steps, the
 * safety-checked path for previews, and the safety checker's log counting previews apart from images.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { createTextToImageApp } from "../../src/apps/text-to-image/create-app.js";
import { modelsDir } from "../../src/apps/text-to-image/pulled-model-apps.js";
import { isPlatformError } from "../../src/core/errors.js";
import { writeTinyDiffusionModel } from "../../src/diffusion/tiny-model.js";
import { createModelManager } from "../../src/models/index.js";
import { SafetyGuard } from "../../src/runtime/safety-checker.js";
import type { DefinedApp } from "../../src/runtime/sdk.js";
import { fakeContext } from "../helpers/handler-context.js";

type AppState = Awaited<ReturnType<NonNullable<ReturnType<typeof createTextToImageApp>["setup"]>>>;

describe("text-to-image app handlers", () => {
  let dir: string;
  let app: DefinedApp<AppState>;
  let state: AppState;
  const saved = process.env["DARKROOM_MODELS_DIR"];

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "darkroom-t2i-unit-"));
    await writeTinyDiffusionModel(path.join(dir, "tiny"), { seed: 1, vaeEncoder: false });
    await createModelManager({ dataDir: path.join(dir, "data"), env: {} }).pull(path.join(dir, "tiny"), { name: "no-encoder" });
    process.env["DARKROOM_MODELS_DIR"] = path.join(dir, "data", "models");
    app = createTextToImageApp({ id: "test/no-encoder", model: "no-encoder", source: "acme/no-encoder" });
    state = await app.setup!(() => {});
  });
  after(async () => {
    await app.teardown?.(state);
    if (saved === undefined) delete process.env["DARKROOM_MODELS_DIR"];
    else process.env["DARKROOM_MODELS_DIR"] = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  const handler = (p: string) => app.endpoints.find((e) => e.path === p)!.handler as (input: unknown, ctx: unknown) => Promise<any>;
  const parse = (p: string, input: unknown) => app.endpoints.find((e) => e.path === p)!.input.parse(input);

  it("finds models under DARKROOM_MODELS_DIR, else under the CLI's default data folder", async () => {
    assert.equal(modelsDir({ DARKROOM_MODELS_DIR: "/srv/dr/models" }), path.resolve("/srv/dr/models"));
    assert.equal(modelsDir({ DARKROOM_DATA_DIR: "/srv/dr" }), path.resolve("/srv/dr/models"));
    assert.equal(modelsDir({}), path.resolve(".darkroom/models"));
    assert.equal(await app.checkAvailability!(), null);
    const other = createTextToImageApp({ model: "absent", source: "acme/absent" });
    const unavailable = await other.checkAvailability!();
    assert.match(unavailable!.remedy, /^darkroom models pull acme\/absent --name absent --data-dir /);
  });

  it("refuses image-to-image with a 422 when the model has no vae_encoder", async () => {
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: "#808080" } }).png().toBuffer();
    const { ctx } = fakeContext(state, { storeFiles: true });
    await assert.rejects(handler("image-to-image")(parse("image-to-image", { prompt: "x", image_url: `data:image/png;base64,${png.toString("base64")}` }), ctx), (err: unknown) => {
      assert.ok(isPlatformError(err));
      assert.equal(err.status, 422);
      assert.deepEqual(err.fieldErrors?.[0]?.loc, ["body", "image_url"]);
      assert.match(err.fieldErrors?.[0]?.msg ?? "", /vae_encoder/);
      return true;
    });
  });

  it("stops between steps when the request is cancelled", async () => {
    const controller = new AbortController();
    const { ctx, progress } = fakeContext(state, {
      storeFiles: true,
      controller,
      onProgress: (step) => {
        if (step === 1) controller.abort();
      },
    });
    const input = parse("", { prompt: "x", image_size: { width: 64, height: 64 }, num_inference_steps: 4, enable_safety_checker: false });
    await assert.rejects(handler("")(input, ctx), (err: unknown) => isPlatformError(err) && err.code === "ERR_CLIENT_CANCELLED");
    assert.deepEqual(progress, ["1/4 image 1/1, step 1/4"]);
  });

  it("stores previews through ctx.files when the safety checker is on, inline otherwise", async () => {
    const input = { prompt: "x", image_size: { width: 64, height: 64 }, num_inference_steps: 4, seed: 1 };
    const checked = fakeContext(state, { storeFiles: true });
    await handler("")(parse("", { ...input, enable_safety_checker: true }), checked.ctx);
    assert.deepEqual(
      checked.stored.map((f) => f.options.fileName),
      ["preview-0-1.png", "preview-0-2.png", "preview-0-3.png", "image-0.jpg"],
    );
    const plain = fakeContext(state, { storeFiles: true });
    const out = await handler("")(parse("", { ...input, enable_safety_checker: false }), plain.ctx);
    assert.deepEqual(
      plain.stored.map((f) => f.options.fileName),
      ["image-0.jpg"],
    );
    assert.equal(out.seed, 1);
    assert.equal(plain.billed.at(-1), (64 * 64) / 1e6);
  });

  it("the safety checker's log counts the one output image as one, and its three previews apart", async () => {
    // What the runner host does for a checked request: the handler's files go through the guard,
    // its output through finish(). Threshold 0 flags everything, so the flag counts are known too.
    const fake = fakeContext(state, { storeFiles: true });
    const logs: string[] = [];
    const guard = new SafetyGuard({ files: fake.ctx.files, config: { mode: "withhold", threshold: 0 }, log: (m) => logs.push(m), signal: new AbortController().signal });
    const input = parse("", { prompt: "x", image_size: { width: 64, height: 64 }, num_inference_steps: 4, seed: 1, enable_safety_checker: true });
    const out = await guard.finish(await handler("")(input, { ...fake.ctx, files: guard.files }));
    assert.equal(fake.stored.filter((f) => f.options.fileName?.startsWith("preview-")).length, 3, "three previews were stored, and so checked");
    assert.deepEqual(out["has_nsfw_concepts"], [true]);
    assert.deepEqual(
      logs.filter((l) => / checked, \d+ flagged/.test(l)),
      ["safety checker: 1 image(s) checked, 1 flagged; 3 preview(s) checked besides, 3 flagged (mode withhold, threshold 0)"],
    );
  });

  it("takes the largest seed and wraps the next image's to 0", async () => {
    const { ctx } = fakeContext(state, { storeFiles: true });
    const input = { prompt: "x", image_size: { width: 64, height: 64 }, seed: Number.MAX_SAFE_INTEGER, num_images: 2, enable_safety_checker: false, output_format: "png" };
    const out = await handler("")(parse("", input), ctx);
    assert.equal(out.seed, Number.MAX_SAFE_INTEGER);
    assert.equal(out.images.length, 2);
  });
});
