/**
 * An app for every pulled diffusion model: a server started on a data folder with models pulled as
 * `tiny-lcm` (an LCM-shaped tiny model) and `echo` (a name a built-in app already has) serves
 * `darkroom/tiny-lcm` with LCM defaults, keeps `darkroom/echo` the built-in echo app, labels each
 * model with the licence its own files state (or "unknown"), and `darkroom runner --app
 * darkroom/tiny-lcm` finds the same app on a runner machine.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { pulledModelAppModules } from "../../src/apps/text-to-image/pulled-model-apps.js";
import { resolveAppModule } from "../../src/cli/runner.js";
import { writeTinyDiffusionModel } from "../../src/diffusion/tiny-model.js";
import { createModelManager } from "../../src/models/index.js";
import { buildManifest, importApp } from "../../src/runtime/app-loader.js";
import { http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

describe("apps for pulled models", () => {
  let dir: string;
  let dataDir: string;
  let p: TestPlatform;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "darkroom-pulled-"));
    dataDir = path.join(dir, "data");
    const models = createModelManager({ dataDir, env: {} });
    await writeTinyDiffusionModel(path.join(dir, "lcm"), { seed: 3, lcmTimestepCond: 32 });
    await writeTinyDiffusionModel(path.join(dir, "turbo"), { seed: 4 });
    // A Hugging Face model card's front matter for the LCM; the turbo folder states no licence.
    writeFileSync(path.join(dir, "lcm", "README.md"), "---\nlibrary_name: diffusers\nlicense: openrail++\ntags:\n  - lcm\n---\n# A tiny LCM\n");
    await models.pull(path.join(dir, "lcm"), { name: "tiny-lcm" });
    await models.pull(path.join(dir, "turbo"), { name: "sd-turbo" });
    await models.pull(path.join(dir, "turbo"), { name: "echo" });
    // The server's own app list (built-ins + pulled models), narrowed to what this test looks at.
    p = await startTestPlatform({ dataDir, configuredApps: true, env: { DARKROOM_ONLY_APPS: "darkroom/tiny-lcm,darkroom/echo,darkroom/sd-turbo" } });
  });
  after(async () => {
    await p?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lists one module per pulled diffusers model, not the one the built-in serves", async () => {
    const modules = await pulledModelAppModules(path.join(dataDir, "models"));
    assert.deepEqual(
      modules.map((m) => new URL(`file://${m}`).searchParams.get("model")),
      ["echo", "tiny-lcm"],
    );
  });

  it("serves darkroom/tiny-lcm with LCM defaults, and keeps built-in ids for the built-ins", async () => {
    const res = await http(p, "GET", "/v1/models?limit=100");
    const byId = new Map<string, any>(res.body.models.map((m: any) => [m.endpoint_id, m]));
    assert.deepEqual([...byId.keys()].sort(), ["darkroom/echo", "darkroom/sd-turbo", "darkroom/tiny-lcm"]);
    const lcm = byId.get("darkroom/tiny-lcm");
    assert.deepEqual(lcm.availability, { available: true });
    assert.equal(lcm.metadata.category, "text-to-image");
    const props = lcm.endpoints.find((e: { path: string }) => e.path === "").input_schema.properties;
    assert.equal(props.num_inference_steps.default, 4);
    assert.equal(props.guidance_scale.default, 8.5);
    assert.equal(byId.get("darkroom/echo").metadata.category, "utility", "a model pulled as 'echo' does not replace the echo app");
    assert.equal(byId.get("darkroom/sd-turbo").endpoints.find((e: { path: string }) => e.path === "").input_schema.properties.num_inference_steps.default, 1);
  });

  it("labels each pulled model with the licence its own files state, and unknown (with its source) when they state none", async () => {
    const res = await http(p, "GET", "/v1/models?limit=100");
    const license = (id: string): string => res.body.models.find((m: any) => m.endpoint_id === id).metadata.license;
    assert.equal(license("darkroom/tiny-lcm"), "MIT (code); model weights: openrail++ (as stated in README.md of 'tiny-lcm')");
    // The random test model pulled as sd-turbo is not SD-Turbo: no Stability AI licence by assumption.
    assert.equal(
      license("darkroom/sd-turbo"),
      `MIT (code); model weights: unknown (no licence in the files of 'sd-turbo', pulled from ${path.join(dir, "turbo")})`,
    );
    assert.doesNotMatch(license("darkroom/sd-turbo"), /Stability/);
  });

  it("generates with the pulled model: 4 steps by default, same seed same pixels", async () => {
    const input = { prompt: "a red cube", image_size: { width: 64, height: 64 }, seed: 9, enable_safety_checker: false, output_format: "png", sync_mode: true };
    const submitted = await http(p, "POST", "/queue/darkroom/tiny-lcm", input);
    assert.equal(submitted.status, 200);
    const stream = await (await fetch(`${submitted.body.status_url}/stream`, { headers: p.auth })).text();
    const steps = stream
      .split("\n\n")
      .filter((e) => e.startsWith("data: "))
      .map((e) => JSON.parse(e.slice(6)))
      .filter((e) => e.progress)
      .map((e) => e.progress.total as number);
    assert.ok(steps.length > 0 && steps.every((t) => t === 4), `progress counts 4 steps (${steps.join(",")})`);
    const result = await http(p, "GET", new URL(submitted.body.response_url).pathname);
    assert.equal(result.status, 200, JSON.stringify(result.body));
    const again = await http(p, "POST", "/run/darkroom/tiny-lcm", input);
    const pixels = async (url: string): Promise<Buffer> => sharp(Buffer.from(url.split(",")[1]!, "base64")).raw().toBuffer();
    const a = await pixels(result.body.images[0].url);
    assert.deepEqual(a, await pixels(again.body.images[0].url));
    assert.equal(a.length, 64 * 64 * 3);
  });

  it("darkroom runner --app darkroom/<pulled model> resolves to the same app on a runner machine", async () => {
    const saved = process.env["DARKROOM_MODELS_DIR"];
    process.env["DARKROOM_MODELS_DIR"] = path.join(dataDir, "models");
    try {
      const module = resolveAppModule("darkroom/tiny-lcm");
      const manifest = await buildManifest(await importApp(module), module);
      assert.equal(manifest.id, "darkroom/tiny-lcm");
      assert.equal(manifest.unavailable, null);
      assert.equal(resolveAppModule("darkroom/upscale").endsWith(path.join("upscale", "app.ts")), true, "built-ins first");
      assert.throws(() => resolveAppModule("darkroom/not-pulled"), /darkroom\/<pulled model>/);
    } finally {
      if (saved === undefined) delete process.env["DARKROOM_MODELS_DIR"];
      else process.env["DARKROOM_MODELS_DIR"] = saved;
    }
  });
});
