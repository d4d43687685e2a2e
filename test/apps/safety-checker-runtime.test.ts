/**
 * The platform-wide `enable_safety_checker`, through a real runner host (in this process, with local
 * storage) and the `darkroom-test/image-maker` fixture app, on the safe fixture photos and the real
 * NSFW model. No NSFW fixture may ship, so the flagging path runs with threshold 0, which flags every
 * image; what is then stored must really be blurred (its Laplacian variance collapses) or black.
 *
 * The order of the tests matters: the first ones prove the model is not loaded by requests that do
 * not enable the check, which only holds before any request has loaded it in this process.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { DEFAULT_THRESHOLD } from "../../src/media/safety/model.js";
import { AllowList } from "../../src/net/allow-list.js";
import { buildManifest } from "../../src/runtime/app-loader.js";
import { createFileAccess } from "../../src/runtime/file-access.js";
import { ownFileKey } from "../../src/storage/own-files.js";
import type { FromRunner, ToRunner } from "../../src/runtime/protocol.js";
import { RunnerHost } from "../../src/runtime/runner-host.js";
import {
  DEFAULT_SAFETY_THRESHOLD,
  findImageRecords,
  nsfwModelState,
  safetyCheckerConfigFromEnv,
  type SafetyCheckerConfig,
} from "../../src/runtime/safety-checker.js";
import { defineApp, endpoint, ImageSchema, z, type DefinedApp } from "../../src/runtime/sdk.js";
import { createLocalStorage } from "../../src/storage/local-storage.js";
import app from "../fixtures/apps/image-maker.js";
import { laplacianVariance } from "../helpers/pixels.js";
import { FIXTURES, TEST_APPS } from "../helpers/platform.js";

const BASE_URL = "http://127.0.0.1:1";
const fixture = (name: string): Buffer => readFileSync(path.join(FIXTURES, name));
const dataUri = (bytes: Buffer, type = "image/png"): string => `data:${type};base64,${bytes.toString("base64")}`;

interface Image {
  url: string;
  content_type: string;
  file_name: string;
  file_size: number;
  width: number;
  height: number;
}
interface Output {
  images: Image[];
  count: number;
  has_nsfw_concepts?: boolean[];
}

async function meanAndMax(image: Buffer): Promise<{ mean: number; max: number }> {
  const stats = await sharp(image).removeAlpha().stats();
  return { mean: stats.channels.reduce((a, c) => a + c.mean, 0) / stats.channels.length, max: Math.max(...stats.channels.map((c) => c.max)) };
}

describe("the platform safety checker in a runner host", () => {
  let work: string;
  let storage: ReturnType<typeof createLocalStorage>;
  const hosts: RunnerHost[] = [];
  let counter = 0;

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), "darkroom-safety-"));
    storage = createLocalStorage({ root: work });
  });
  after(async () => {
    for (const host of hosts) host.handle({ t: "drain" });
    await rm(work, { recursive: true, force: true });
  });

  interface Host {
    call(endpointPath: string, input: unknown, syncMode?: boolean): Promise<{ output: Output; logs: string[] }>;
    messages: FromRunner[];
  }

  /** A started runner host for the fixture app (or `hostApp`) with `config` (undefined: from the environment). */
  async function startHost(config?: SafetyCheckerConfig, hostApp: DefinedApp = app): Promise<Host> {
    const messages: FromRunner[] = [];
    const waiting = new Map<string, (m: FromRunner) => void>();
    const host = new RunnerHost({
      app: hostApp,
      send: (m) => {
        messages.push(m);
        if ((m.t === "result" || m.t === "error") && waiting.has(m.requestId)) waiting.get(m.requestId)!(m);
      },
      fileAccess: (run) =>
        createFileAccess({
          storage,
          allow: AllowList.parse(""),
          requestId: run.requestId,
          baseUrl: run.baseUrl,
          ownOrigins: [],
          syncMode: run.syncMode === true,
          maxFileBytes: 64 * 1024 * 1024,
          fetchTimeoutMs: 10_000,
        }),
      onDrained: () => {},
      ...(config ? { safetyChecker: config } : {}),
    });
    hosts.push(host);
    await host.start();
    return {
      messages,
      async call(endpointPath, input, syncMode = false) {
        const requestId = `safety-${++counter}`;
        const done = new Promise<FromRunner>((resolve) => waiting.set(requestId, resolve));
        const run: ToRunner = { t: "run", requestId, endpoint: endpointPath, input, attempt: 1, baseUrl: BASE_URL, ...(syncMode ? { syncMode } : {}) };
        host.handle(run);
        const outcome = await done;
        if (outcome.t !== "result") throw new Error(`request failed: ${JSON.stringify(outcome)}`);
        const logs = messages.filter((m) => m.t === "log" && m.requestId === requestId).map((m) => (m as { message: string }).message);
        return { output: outcome.output as Output, logs };
      },
    };
  }

  async function stored(url: string): Promise<Buffer> {
    if (url.startsWith("data:")) return Buffer.from(url.slice(url.indexOf(",") + 1), "base64");
    const key = ownFileKey(url, [BASE_URL]);
    assert.ok(key, `${url} is one of this server's files`);
    const object = await storage.get(key);
    assert.ok(object, `${key} is stored`);
    const chunks: Buffer[] = [];
    for await (const chunk of object.body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  const astronaut = fixture("astronaut.png");
  const coffee = fixture("coffee.png");

  test("the SDK adds enable_safety_checker (with the endpoint's default) and has_nsfw_concepts to declaring endpoints only", async () => {
    const manifest = await buildManifest(app, path.join(TEST_APPS, "image-maker.ts"));
    const [root, plain] = manifest.endpoints;
    const prop = (schema: unknown, name: string): Record<string, unknown> | undefined =>
      (schema as { properties?: Record<string, Record<string, unknown>> }).properties?.[name];
    assert.deepEqual(
      { type: prop(root?.input, "enable_safety_checker")?.["type"], default: prop(root?.input, "enable_safety_checker")?.["default"] },
      { type: "boolean", default: true },
    );
    assert.deepEqual(prop(root?.output, "has_nsfw_concepts")?.["items"], { type: "boolean" });
    assert.ok(!((root?.output as { required?: string[] }).required ?? []).includes("has_nsfw_concepts"), "absent when the check is off");
    assert.equal(prop(plain?.input, "enable_safety_checker"), undefined);
    assert.equal(prop(plain?.output, "has_nsfw_concepts"), undefined);

    const base = { path: "", output: z.object({}), handler: () => ({}) };
    assert.throws(
      () => defineApp({ id: "t/a", metadata: { display_name: "a", category: "c", description: "d" }, endpoints: [endpoint({ ...base, input: z.string(), safetyChecker: { default: true } })] }),
      /needs z\.object\(\) input and output schemas/,
    );
    assert.throws(
      () =>
        defineApp({
          id: "t/b",
          metadata: { display_name: "b", category: "c", description: "d" },
          endpoints: [endpoint({ ...base, input: z.object({ enable_safety_checker: z.boolean() }), safetyChecker: { default: true } })],
        }),
      /enable_safety_checker is the platform's field/,
    );
  });

  test("disabled, or not declared: no has_nsfw_concepts, nothing checked, the model never loaded", async () => {
    const host = await startHost({ mode: "withhold", threshold: 0 });
    const input = { image_urls: [dataUri(astronaut)] };
    const off = await host.call("", { ...input, enable_safety_checker: false });
    const plain = await host.call("plain", { ...input, enable_safety_checker: true });
    for (const { output, logs } of [off, plain]) {
      assert.equal(output.has_nsfw_concepts, undefined);
      assert.deepEqual(logs.filter((l) => l.includes("safety checker")), []);
      // Threshold 0 would have blacked it out, had it been checked.
      assert.deepEqual(await stored(output.images[0]!.url), astronaut, "the image is stored untouched");
    }
    assert.equal(nsfwModelState(), "unloaded", "no request that skips the check loads the NSFW model");
  });

  test("enabled by default: safe photos get [false, false], stored untouched; the first check loads the model once", async () => {
    const host = await startHost({ mode: "withhold", threshold: DEFAULT_SAFETY_THRESHOLD });
    const { output, logs } = await host.call("", { image_urls: [dataUri(astronaut), dataUri(coffee)] });
    assert.deepEqual(output.has_nsfw_concepts, [false, false]);
    assert.deepEqual(await stored(output.images[0]!.url), astronaut);
    assert.deepEqual(await stored(output.images[1]!.url), coffee);
    assert.equal(nsfwModelState(), "loaded");
    assert.ok(logs.some((l) => /loaded nsfwjs MobileNetV2 in \d+ ms/.test(l)), logs.join("\n"));
    assert.ok(logs.includes("safety checker: 2 image(s) checked, 0 flagged (mode withhold, threshold 0.5)"), logs.join("\n"));

    const again = await host.call("", { image_urls: [dataUri(coffee)] });
    assert.deepEqual(again.output.has_nsfw_concepts, [false], "one entry per output image");
    assert.ok(!again.logs.some((l) => l.includes("loaded nsfwjs")), "the model is loaded once per runner");
  });

  test("the log counts output images only, and previews (images stored but not returned) apart", async () => {
    // A generator's shape: two smaller previews stored and emitted while it works, then one image returned.
    const previewing = defineApp({
      id: "darkroom-test/previewing",
      metadata: { display_name: "Previewing generator (test)", category: "text-to-image", description: "Stores two previews, returns one image." },
      endpoints: [
        endpoint({
          path: "",
          input: z.object({}),
          output: z.object({ images: z.array(ImageSchema) }),
          safetyChecker: { default: true },
          handler: async (_input, ctx) => {
            for (const step of [1, 2]) {
              const preview = await sharp(astronaut).resize(64, 64).png().toBuffer();
              const file = await ctx.files.put(preview, { contentType: "image/png", fileName: `preview-${step}.png`, width: 64, height: 64 });
              ctx.emit({ preview: { ...file, width: 64, height: 64 }, step });
            }
            const file = await ctx.files.put(astronaut, { contentType: "image/png", fileName: "image-0.png", width: 512, height: 512 });
            return { images: [{ ...file, width: 512, height: 512 }] };
          },
        }),
      ],
    });
    const host = await startHost({ mode: "withhold", threshold: DEFAULT_SAFETY_THRESHOLD }, previewing);
    const { output, logs } = await host.call("", {});
    assert.deepEqual(output.has_nsfw_concepts, [false], "one verdict: the one output image");
    assert.deepEqual(
      logs.filter((l) => / checked, \d+ flagged/.test(l)),
      ["safety checker: 1 image(s) checked, 0 flagged; 2 preview(s) checked besides, 0 flagged (mode withhold, threshold 0.5)"],
    );
  });

  test("blur: flagged images are stored strongly blurred, same size and format", async () => {
    const host = await startHost({ mode: "blur", threshold: 0 });
    const { output, logs } = await host.call("", { image_urls: [dataUri(astronaut), dataUri(coffee)] });
    assert.deepEqual(output.has_nsfw_concepts, [true, true]);
    assert.ok(logs.includes("safety checker: 2 image(s) checked, 2 flagged (mode blur, threshold 0)"), logs.join("\n"));
    for (const [i, original] of [astronaut, coffee].entries()) {
      const image = output.images[i]!;
      const bytes = await stored(image.url);
      assert.equal(image.file_size, bytes.length);
      assert.equal(image.content_type, "image/png");
      const meta = await sharp(bytes).metadata();
      const source = await sharp(original).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ["png", source.width, source.height]);
      assert.deepEqual([image.width, image.height], [source.width, source.height]);
      const before = await laplacianVariance(original);
      const afterBlur = await laplacianVariance(bytes);
      assert.ok(afterBlur < before / 100, `Laplacian variance ${afterBlur.toFixed(2)} vs ${before.toFixed(2)} in the original`);
      // Blurred, not blanked: the average colour survives.
      const [a, b] = [await meanAndMax(original), await meanAndMax(bytes)];
      assert.ok(Math.abs(a.mean - b.mean) < 10, `mean ${b.mean.toFixed(1)} vs ${a.mean.toFixed(1)}`);
    }
  });

  test("withhold: flagged images are stored black, in their own format; inline (sync mode) outputs too", async () => {
    const host = await startHost({ mode: "withhold", threshold: 0 });
    const jpeg = await sharp(coffee).jpeg().toBuffer();
    const { output } = await host.call("", { image_urls: [dataUri(astronaut), dataUri(jpeg, "image/jpeg")] });
    assert.deepEqual(output.has_nsfw_concepts, [true, true]);
    const [png, jpg] = [await stored(output.images[0]!.url), await stored(output.images[1]!.url)];
    assert.equal((await sharp(png).metadata()).format, "png");
    assert.equal((await sharp(jpg).metadata()).format, "jpeg");
    assert.equal(output.images[1]!.content_type, "image/jpeg");
    assert.equal((await meanAndMax(png)).max, 0, "black");
    assert.ok((await meanAndMax(jpg)).max <= 2, "black (up to JPEG noise)");
    assert.deepEqual([(await sharp(png).metadata()).width, (await sharp(png).metadata()).height], [512, 512]);

    const inline = await host.call("", { image_urls: [dataUri(astronaut)] }, true);
    assert.match(inline.output.images[0]!.url, /^data:image\/png;base64,/);
    assert.equal((await meanAndMax(await stored(inline.output.images[0]!.url))).max, 0);
  });

  test("images the handler did not store through ctx.files are checked too, and replaced when flagged", async () => {
    const uri = dataUri(astronaut);
    const safe = await (await startHost({ mode: "withhold", threshold: 0.5 })).call("", { image_urls: [uri], mode: "passthrough" });
    assert.deepEqual(safe.output.has_nsfw_concepts, [false]);
    assert.equal(safe.output.images[0]!.url, uri, "a safe image keeps its URL");

    const flagged = await (await startHost({ mode: "withhold", threshold: 0 })).call("", { image_urls: [uri], mode: "passthrough" });
    assert.deepEqual(flagged.output.has_nsfw_concepts, [true]);
    const image = flagged.output.images[0]!;
    assert.ok(image.url.startsWith(`${BASE_URL}/files/`), `replaced by a stored file: ${image.url.slice(0, 60)}`);
    const bytes = await stored(image.url);
    assert.equal(image.file_size, bytes.length);
    assert.equal((await meanAndMax(bytes)).max, 0);
  });

  test("configuration: defaults, the environment, and a bad value stops the runner at setup naming the variable", async () => {
    assert.equal(DEFAULT_SAFETY_THRESHOLD, DEFAULT_THRESHOLD, "the runtime's default is the safety-checker app's");
    assert.deepEqual(safetyCheckerConfigFromEnv({}), { mode: "withhold", threshold: 0.5 });
    assert.deepEqual(safetyCheckerConfigFromEnv({ DARKROOM_SAFETY_CHECKER_MODE: "blur", DARKROOM_SAFETY_CHECKER_THRESHOLD: "0.2" }), { mode: "blur", threshold: 0.2 });
    assert.throws(() => safetyCheckerConfigFromEnv({ DARKROOM_SAFETY_CHECKER_MODE: "remove" }), /DARKROOM_SAFETY_CHECKER_MODE=remove: expected blur or withhold/);
    assert.throws(() => safetyCheckerConfigFromEnv({ DARKROOM_SAFETY_CHECKER_THRESHOLD: "1.5" }), /DARKROOM_SAFETY_CHECKER_THRESHOLD=1.5: expected a number from 0 to 1/);

    const saved = process.env["DARKROOM_SAFETY_CHECKER_MODE"];
    process.env["DARKROOM_SAFETY_CHECKER_MODE"] = "remove";
    try {
      const host = await startHost();
      const failed = host.messages.find((m) => m.t === "setup_failed");
      assert.ok(failed && failed.t === "setup_failed", "setup fails");
      assert.match(failed.error.message, /DARKROOM_SAFETY_CHECKER_MODE=remove/);
      assert.equal(host.messages.some((m) => m.t === "ready"), false);
    } finally {
      if (saved === undefined) delete process.env["DARKROOM_SAFETY_CHECKER_MODE"];
      else process.env["DARKROOM_SAFETY_CHECKER_MODE"] = saved;
    }
  });

  test("has_nsfw_concepts follows the output's image records depth first", () => {
    const img = (url: string) => ({ url, content_type: "image/png" });
    const records = findImageRecords({ image: img("a"), video: { url: "v", content_type: "video/mp4" }, images: [img("b"), { nested: img("c") }], text: "x" });
    assert.deepEqual(records.map((r) => r.url), ["a", "b", "c"]);
  });
});
