/**
 * Weights for runners on other machines: a gateway serves the models in its data folder over the
 * runner API, and `darkroom models pull gateway:<name>` on a runner machine fetches them with its
 * runner token, verified by sha256 and resumable by range.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createModelManager } from "../../src/models/index.js";
import { http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

describe("models pulled from a gateway", () => {
  let p: TestPlatform;
  let token: string;
  let source: string;
  const scratch: string[] = [];
  const files: Record<string, Buffer> = {
    "model_index.json": Buffer.from('{"_class_name": "StableDiffusionPipeline"}'),
    "unet/model.onnx": Buffer.alloc(300_000, 7),
    "tokenizer/vocab.json": Buffer.from('{"a</w>": 0}'),
  };

  before(async () => {
    p = await startTestPlatform();
    source = mkdtempSync(path.join(tmpdir(), "darkroom-gw-model-src-"));
    scratch.push(source);
    for (const [rel, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(source, rel)), { recursive: true });
      writeFileSync(path.join(source, rel), content);
    }
    // The gateway's own data folder holds the model, as `darkroom models pull` there leaves it.
    await createModelManager({ dataDir: p.dataDir }).pull(source, { name: "tiny", layout: "any" });
    const minted = await http(p, "POST", "/v1/runner-tokens", { apps: ["darkroom/echo"] });
    token = minted.body.token as string;
  });

  after(async () => {
    await p.close();
    for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  });

  it("pulls every file with its hash into the runner machine's cache", async () => {
    const runnerData = mkdtempSync(path.join(tmpdir(), "darkroom-gw-model-dst-"));
    scratch.push(runnerData);
    const manager = createModelManager({ dataDir: runnerData, env: { DARKROOM_GATEWAY: p.url, DARKROOM_RUNNER_TOKEN: token }, retryDelayMs: 5 });
    const manifest = await manager.pull("gateway:tiny");
    assert.equal(manifest.name, "tiny");
    assert.equal(manifest.sourceKind, "gateway");
    for (const [rel, content] of Object.entries(files)) assert.deepEqual(readFileSync(path.join(manager.modelDir("tiny"), rel)), content, rel);
  });

  it("serves byte ranges of a blob, and refuses without a runner token or for an unknown model", async () => {
    const listed = await fetch(`${p.url}/runner/v1/models/tiny`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(listed.status, 200);
    const body = (await listed.json()) as { files: { path: string; sha256: string; size: number }[] };
    const unet = body.files.find((f) => f.path === "unet/model.onnx");
    assert.ok(unet);
    const ranged = await fetch(`${p.url}/runner/v1/models/blobs/${unet.sha256}`, { headers: { authorization: `Bearer ${token}`, range: "bytes=1000-1009" } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get("content-range"), `bytes 1000-1009/${unet.size}`);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), Buffer.alloc(10, 7));
    assert.equal((await fetch(`${p.url}/runner/v1/models/tiny`)).status, 401);
    assert.equal((await fetch(`${p.url}/runner/v1/models/nope`, { headers: { authorization: `Bearer ${token}` } })).status, 404);
    assert.equal((await fetch(`${p.url}/runner/v1/models/blobs/${"0".repeat(64)}`, { headers: { authorization: `Bearer ${token}` } })).status, 404);
    const key = await http(p, "POST", "/v1/keys", { name: "api", scope: "api" });
    assert.equal((await fetch(`${p.url}/runner/v1/models/tiny`, { headers: { authorization: `Key ${key.body.key as string}` } })).status, 403);
  });

  it("refuses a gateway source without a gateway URL", async () => {
    const runnerData = mkdtempSync(path.join(tmpdir(), "darkroom-gw-model-none-"));
    scratch.push(runnerData);
    await assert.rejects(createModelManager({ dataDir: runnerData, env: {} }).pull("gateway:tiny"), /DARKROOM_GATEWAY/);
  });
});
