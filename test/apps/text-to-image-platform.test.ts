/**
 * `darkroom/sd-turbo` through a real server, with the tiny model pulled as `sd-turbo` into the
 * server's data folder: fal's output shape, progress on the status stream, previews on /stream,
 * stored images of the asked size, image-to-image, realtime, and the app unavailable (503 with the
 * pull command) while no model is pulled.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { createModelManager } from "../../src/models/index.js";
import { REPO_ROOT, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { pullTinySdTurbo } from "../helpers/tiny-text-to-image.js";

const APP = path.join(REPO_ROOT, "src/apps/text-to-image/app.ts");
const ID = "darkroom/sd-turbo";

/** Server-sent events of a finished stream, parsed. */
async function sse(res: Response): Promise<any[]> {
  return (await res.text())
    .split("\n\n")
    .filter((e) => e.startsWith("data: "))
    .map((e) => JSON.parse(e.slice(6)));
}

describe("darkroom/sd-turbo through the platform", () => {
  let dir: string;
  let p: TestPlatform;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "darkroom-t2i-"));
    const dataDir = await pullTinySdTurbo(dir);
    p = await startTestPlatform({ dataDir, appModules: [APP] });
  });
  after(async () => {
    await p?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("is listed as available with fal's text-to-image inputs", async () => {
    const res = await http(p, "GET", `/v1/models?endpoint_id=${ID}`);
    const app = res.body.models[0];
    assert.deepEqual(app.availability, { available: true });
    assert.deepEqual(app.endpoints.map((e: { path: string; kind: string }) => `${e.path}:${e.kind}`).sort(), [":http", "image-to-image:http", "realtime:realtime"]);
    const props = app.endpoints.find((e: { path: string }) => e.path === "").input_schema.properties;
    for (const field of ["prompt", "negative_prompt", "image_size", "num_inference_steps", "guidance_scale", "seed", "num_images", "enable_safety_checker", "output_format", "sync_mode"]) {
      assert.ok(props[field], `input has ${field}`);
    }
    assert.equal(props.num_inference_steps.default, 1);
    assert.equal(props.guidance_scale.default, 0);
  });

  it("queue: progress on the status stream, fal's output, a stored PNG of the asked size", async () => {
    const input = { prompt: "the cat", image_size: { width: 64, height: 96 }, num_inference_steps: 4, seed: 5, output_format: "png", enable_safety_checker: false };
    const submitted = await http(p, "POST", `/queue/${ID}`, input);
    assert.equal(submitted.status, 200);
    const events = await sse(await fetch(`${submitted.body.status_url}/stream?logs=1`, { headers: p.auth }));
    assert.equal(events.at(-1).status, "COMPLETED");
    const steps = events.filter((e) => e.progress).map((e) => e.progress.step as number);
    assert.ok(steps.length >= 1, "progress reaches the status stream");
    assert.deepEqual(steps, [...steps].sort((a, b) => a - b));
    assert.ok(steps.every((s) => s >= 1 && s <= 4));

    const result = await http(p, "GET", new URL(submitted.body.response_url).pathname);
    assert.equal(result.status, 200);
    const out = result.body;
    assert.deepEqual(Object.keys(out).sort(), ["images", "prompt", "seed", "timings"], "no has_nsfw_concepts when the check is off");
    assert.equal(out.seed, 5);
    assert.equal(out.prompt, "the cat");
    assert.equal(typeof out.timings.inference, "number");
    assert.equal(out.images.length, 1);
    const image = out.images[0];
    assert.deepEqual([image.width, image.height, image.content_type], [64, 96, "image/png"]);
    const file = await fetch(image.url);
    assert.equal(file.status, 200);
    const meta = await sharp(Buffer.from(await file.arrayBuffer())).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["png", 64, 96]);

    // The same seed through the sync route makes the same pixels.
    const again = await http(p, "POST", `/run/${ID}`, { ...input, sync_mode: true });
    assert.equal(again.status, 200);
    const inline = again.body.images[0].url as string;
    assert.match(inline, /^data:image\/png;base64,/);
    const a = await sharp(Buffer.from(inline.split(",")[1]!, "base64")).raw().toBuffer();
    const b = await sharp(new Uint8Array(await (await fetch(image.url)).arrayBuffer())).raw().toBuffer();
    assert.deepEqual(a, b);
  });

  it("defaults: a 512×512 JPEG, one step, checked by the safety checker, one seed per image", async () => {
    const res = await http(p, "POST", `/run/${ID}`, { prompt: "a cat", seed: 11, num_images: 2 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.has_nsfw_concepts, [false, false]);
    assert.equal(res.body.seed, 11);
    assert.equal(res.body.images.length, 2);
    for (const image of res.body.images) {
      assert.deepEqual([image.width, image.height, image.content_type], [512, 512, "image/jpeg"]);
      const meta = await sharp(Buffer.from(await (await fetch(image.url)).arrayBuffer())).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ["jpeg", 512, 512]);
    }
    const [first] = res.body.images;
    const alone = await http(p, "POST", `/run/${ID}`, { prompt: "a cat", seed: 11, enable_safety_checker: false, sync_mode: true });
    const pixels = async (url: string): Promise<Buffer> => sharp(url.startsWith("data:") ? Buffer.from(url.split(",")[1]!, "base64") : Buffer.from(await (await fetch(url)).arrayBuffer())).raw().toBuffer();
    assert.deepEqual(await pixels(alone.body.images[0].url), await pixels(first.url), "image 0 of a batch is the image of the seed alone");
  });

  it("reuses a seeded generation only with its seed, and its manifest names the pulled weights and the seed", async () => {
    const input = { prompt: "a seeded cat", image_size: { width: 64, height: 64 }, num_inference_steps: 1, enable_safety_checker: false };
    const seeded = await http(p, "POST", `/run/${ID}`, { ...input, seed: 21 }, { "x-darkroom-cache": "use" });
    assert.equal(seeded.status, 200, JSON.stringify(seeded.body));
    assert.equal(seeded.headers.get("x-darkroom-cache-status"), "MISS");
    const again = await http(p, "POST", `/run/${ID}`, { ...input, seed: 21 }, { "x-darkroom-cache": "use" });
    assert.equal(again.headers.get("x-darkroom-cache-status"), "HIT");
    assert.deepEqual(again.body, seeded.body, "the same images, the same files");
    const random = await http(p, "POST", `/run/${ID}`, input, { "x-darkroom-cache": "use" });
    assert.equal(random.headers.get("x-darkroom-cache-status"), "BYPASS", "random without a seed");
    assert.match(random.headers.get("x-darkroom-cache-reason") ?? "", /seed/);

    // The manifest of the random one names the seed the app drew, and the weights by content.
    const manifest = await http(p, "GET", `/v1/requests/${random.headers.get("x-fal-request-id")}/manifest`);
    assert.equal(manifest.status, 200, JSON.stringify(manifest.body));
    assert.equal(manifest.body.seed, random.body.seed);
    const pulled = await createModelManager({ dataDir: p.dataDir, env: {} }).get("sd-turbo");
    assert.ok(pulled);
    assert.deepEqual(
      (manifest.body.runner.weights as { name: string; sha256: string }[]).map((w) => [w.name, w.sha256]).sort(),
      pulled.files.map((f) => [`sd-turbo/${f.path}`, f.sha256]).sort(),
    );
  });

  it("streams previews every few steps on /stream, then the output", async () => {
    const res = await fetch(`${p.url}/run/${ID}/stream`, {
      method: "POST",
      headers: { ...p.auth, "content-type": "application/json" },
      body: JSON.stringify({ prompt: "the cat", image_size: { width: 64, height: 64 }, num_inference_steps: 4, seed: 1, enable_safety_checker: false }),
    });
    assert.equal(res.status, 200);
    const events = await sse(res);
    const previews = events.filter((e) => e.preview);
    assert.deepEqual(
      previews.map((e) => e.step),
      [1, 2, 3],
    );
    const preview = previews[0].preview;
    assert.deepEqual([preview.width, preview.height, preview.content_type], [8, 8, "image/png"]);
    const meta = await sharp(Buffer.from((preview.url as string).split(",")[1]!, "base64")).metadata();
    assert.deepEqual([meta.width, meta.height], [8, 8]);
    assert.ok(events.at(-1).images, "the last event is the output");
  });

  it("queue: previews reach the status stream as partial results while the request runs", async () => {
    const input = { prompt: "the cat", image_size: { width: 64, height: 64 }, num_inference_steps: 4, seed: 1, enable_safety_checker: false };
    // The app runs one request at a time: a big request ahead keeps this one queued until its status
    // stream is open, so no preview can go by before the test listens (the stream replays only the latest).
    const ahead = await http(p, "POST", `/queue/${ID}`, { prompt: "ahead", image_size: "square_hd", num_inference_steps: 8, num_images: 4, enable_safety_checker: false });
    assert.equal(ahead.status, 200);
    const submitted = await http(p, "POST", `/queue/${ID}`, input);
    assert.equal(submitted.status, 200);
    const events = await sse(await fetch(`${submitted.body.status_url}/stream`, { headers: p.auth }));
    assert.equal(events[0].status, "IN_QUEUE", "the stream opened while the request waited");
    assert.equal(events.at(-1).status, "COMPLETED");
    const partials = events.filter((e) => e.partial);
    assert.deepEqual(
      partials.map((e) => e.partial.step),
      [1, 2, 3],
      "one preview per step before the last, in order",
    );
    for (const event of partials) {
      assert.equal(event.status, "IN_PROGRESS", "previews come while the request runs");
      const preview = event.partial.preview;
      assert.deepEqual([preview.width, preview.height, preview.content_type], [8, 8, "image/png"]);
      const meta = await sharp(Buffer.from((preview.url as string).split(",")[1]!, "base64")).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ["png", 8, 8]);
    }
    // They are this seed's previews: the same input on /stream gives the same pictures, byte for byte.
    const streamed = await sse(
      await fetch(`${p.url}/run/${ID}/stream`, { method: "POST", headers: { ...p.auth, "content-type": "application/json" }, body: JSON.stringify(input) }),
    );
    assert.deepEqual(
      partials.map((e) => e.partial.preview.url),
      streamed.filter((e) => e.preview).map((e) => e.preview.url),
    );
  });

  it("image-to-image: the image's own size by default, strength × steps steps", async () => {
    const start = await sharp({ create: { width: 80, height: 72, channels: 3, background: "#3060a0" } }).png().toBuffer();
    const res = await http(p, "POST", `/run/${ID}/image-to-image`, {
      prompt: "the cat",
      image_url: `data:image/png;base64,${start.toString("base64")}`,
      strength: 0.5,
      num_inference_steps: 4,
      seed: 2,
      enable_safety_checker: false,
      output_format: "png",
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual([res.body.images[0].width, res.body.images[0].height], [80, 72]);
    const tooFew = await http(p, "POST", `/run/${ID}/image-to-image`, { prompt: "x", image_url: `data:image/png;base64,${start.toString("base64")}`, strength: 0.1, num_inference_steps: 2 });
    assert.equal(tooFew.status, 422);
    assert.deepEqual(tooFew.body.detail[0].loc, ["body", "strength"]);
  });

  it("realtime: one image per message, inline, checked by default", async () => {
    const out = (await p.scheduler.invokeEphemeral(ID, "realtime", { prompt: "the cat", image_size: { width: 64, height: 64 }, seed: 3 }, p.url)) as any;
    assert.equal(out.seed, 3);
    assert.match(out.images[0].url, /^data:image\/jpeg;base64,/);
    assert.deepEqual(out.has_nsfw_concepts, [false]);
  });

  it("refuses sizes that are not multiples of 8 or out of range, and too many steps", async () => {
    for (const body of [{ image_size: { width: 60, height: 64 } }, { image_size: { width: 4096, height: 64 } }, { image_size: "huge" }, { num_inference_steps: 9 }, { num_images: 5 }]) {
      const res = await http(p, "POST", `/run/${ID}`, { prompt: "x", ...body });
      assert.equal(res.status, 422, JSON.stringify(body));
    }
  });
});

describe("darkroom/sd-turbo without its model", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform({ appModules: [APP] });
  });
  after(async () => {
    await p?.close();
  });

  it("is listed unavailable with the pull command, and calls get 503", async () => {
    const res = await http(p, "GET", `/v1/models?endpoint_id=${ID}`);
    const availability = res.body.models[0].availability;
    assert.equal(availability.available, false);
    assert.match(availability.reason, /'sd-turbo' is not pulled/);
    assert.match(availability.remedy, /^darkroom models pull \S+ --name sd-turbo --data-dir \S+/);
    assert.ok(availability.remedy.includes(p.dataDir), "the remedy names this server's data folder");
    for (const route of [`/run/${ID}`, `/queue/${ID}`, `/run/${ID}/image-to-image`]) {
      const call = await http(p, "POST", route, { prompt: "x" });
      assert.equal(call.status, 503);
      assert.equal(call.body.error_type, "app_unavailable");
      assert.match(call.body.detail, /darkroom models pull/);
    }
  });
});
