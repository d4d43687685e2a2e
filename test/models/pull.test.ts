/**
 * The model manager's real download code against a loopback Hub: resume, verification, refusals,
 * the shared cache, removal, and the local-folder and single-URL sources.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { createModelManager, isModelError, type ModelManagerOptions } from "../../src/models/index.js";
import { diffusersFixture, sha256, startHubServer, type HubServer } from "./hub-server.js";

describe("models pull from a Hub", () => {
  let hub: HubServer;
  let dataDir: string;
  const fixture = diffusersFixture();
  const unet = fixture.find((f) => f.path === "unet/model.onnx")!;

  before(async () => {
    hub = await startHubServer({
      "acme/tiny-turbo": fixture,
      "acme/tiny-turbo-2": diffusersFixture(), // same files: everything shared
      "acme/other-unet": diffusersFixture({ unetSeed: "other", unetSize: 300_000 }),
      "acme/no-vae": diffusersFixture({ omit: ["vae_decoder/model.onnx"] }),
      "acme/bad-sha": diffusersFixture().map((f) => (f.path === "unet/model.onnx" ? { ...f, fakeSha256: "f".repeat(64) } : f)),
      "acme/evil": [...diffusersFixture(), { path: "../escape.txt", content: Buffer.from("x") }],
    });
  });
  after(async () => {
    await hub.close();
  });
  beforeEach(() => {
    dataDir = mkdtempSync(path.join(tmpdir(), "darkroom-models-"));
    hub.requests.length = 0;
  });
  afterEach(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  const manager = (extra: Partial<ModelManagerOptions> = {}) =>
    createModelManager({ dataDir, env: { HF_ENDPOINT: hub.url, ...(extra.env ?? {}) }, retryDelayMs: 5, ...extra });
  const blobs = (): string[] => readdirSync(path.join(dataDir, "models/blobs/sha256")).sort();

  it("pulls a diffusers ONNX model: pinned commit, verified blobs, a folder ONNX Runtime can open", async () => {
    const m = manager();
    const seen: number[] = [];
    const manifest = await m.pull("acme/tiny-turbo", { onProgress: (p) => seen.push(p.bytesDone) });
    assert.equal(manifest.name, "tiny-turbo");
    assert.equal(manifest.revision, hub.commit);
    assert.equal(manifest.source, "hf:acme/tiny-turbo@main");
    assert.equal(manifest.files.length, fixture.length);
    for (const f of fixture) {
      const entry = manifest.files.find((x) => x.path === f.path);
      assert.equal(entry?.sha256, sha256(f.content), f.path);
      assert.deepEqual(readFileSync(path.join(m.modelDir("tiny-turbo"), f.path)), f.content);
    }
    assert.ok(hub.requests.some((r) => r.url === `/api/models/acme/tiny-turbo/tree/${hub.commit}?recursive=true`));
    assert.equal(seen.at(-1), manifest.totalBytes);
    assert.equal((await m.list()).map((x) => x.name).join(), "tiny-turbo");
    assert.deepEqual(readdirSync(path.join(dataDir, "models/tmp")), []);
  });

  it("follows the tree listing's pages", async () => {
    hub.treePageSize.value = 3;
    try {
      const manifest = await manager().pull("acme/tiny-turbo");
      assert.equal(manifest.files.length, fixture.length);
      assert.ok(hub.requests.filter((r) => r.url.includes("/tree/")).length >= 4);
    } finally {
      hub.treePageSize.value = 1000;
    }
  });

  it("resumes a transfer cut off mid-file with a Range request", async () => {
    const cut = 600_000;
    hub.cutAfter.set("unet/model.onnx", cut);
    const manifest = await manager().pull("acme/tiny-turbo");
    const gets = hub.downloads("unet/model.onnx");
    assert.equal(gets.length, 2);
    assert.equal(gets[0]?.headers.range, undefined);
    // The resume starts where the partial file ends: at the cut, or a little before it when fetch
    // dropped chunks it had received but not yet handed over when the connection failed.
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1]?.headers.range ?? "")?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= cut, `resumed at ${gets[1]?.headers.range}`);
    assert.equal(manifest.files.find((f) => f.path === "unet/model.onnx")?.sha256, sha256(unet.content));
    assert.equal(sha256(readFileSync(path.join(dataDir, "models/files/tiny-turbo/unet/model.onnx"))), sha256(unet.content));
  });

  it("resumes a partial file left by an earlier, interrupted pull", async () => {
    mkdirSync(path.join(dataDir, "models/tmp"), { recursive: true });
    writeFileSync(path.join(dataDir, "models/tmp", `${sha256(unet.content)}.partial`), unet.content.subarray(0, 1000));
    await manager().pull("acme/tiny-turbo");
    assert.equal(hub.downloads("unet/model.onnx")[0]?.headers.range, "bytes=1000-");
  });

  it("retries a 503 with backoff", async () => {
    hub.failTimes.set("vae_decoder/model.onnx", 2);
    await manager().pull("acme/tiny-turbo");
    assert.equal(hub.downloads("vae_decoder/model.onnx").length, 3);
  });

  it("refuses a file whose sha256 differs from the published one and deletes it", async () => {
    await assert.rejects(manager().pull("acme/bad-sha"), (err) => isModelError(err, "ERR_MODEL_CHECKSUM") && /unet\/model\.onnx/.test(err.message));
    assert.deepEqual(readdirSync(path.join(dataDir, "models/tmp")), []);
    assert.deepEqual(readdirSync(path.join(dataDir, "models/manifests")), []);
  });

  it("refuses a repository that lacks a required file, before downloading anything", async () => {
    await assert.rejects(manager().pull("acme/no-vae"), (err) => isModelError(err, "ERR_MODEL_FILE_MISSING") && err.message.includes("vae_decoder/model.onnx"));
    assert.equal(hub.requests.filter((r) => r.url.includes("/resolve/")).length, 0);
    // The same repository is accepted when the caller says any layout will do.
    const manifest = await manager().pull("acme/no-vae", { layout: "any" });
    assert.equal(manifest.files.some((f) => f.path === "vae_decoder/model.onnx"), false);
  });

  it("refuses when the disk has too little room, before downloading anything", async () => {
    await assert.rejects(manager({ freeBytes: async () => 10_000_000 }).pull("acme/tiny-turbo"), (err) => isModelError(err, "ERR_MODEL_DISK_FULL") && /free/.test(err.message));
    assert.equal(hub.requests.filter((r) => r.url.includes("/resolve/")).length, 0);
  });

  it("sends HF_TOKEN as a bearer token to the Hub, and never puts it in messages", async () => {
    const m = manager({ env: { HF_ENDPOINT: hub.url, HF_TOKEN: "hf_secret123" } });
    await m.pull("acme/tiny-turbo");
    assert.ok(hub.requests.length > 5);
    for (const r of hub.requests.filter((x) => x.server === "hub")) assert.equal(r.headers.authorization, "Bearer hf_secret123", r.url);
    // LFS files come from the CDN the Hub redirects to: another origin, so no token.
    const cdn = hub.requests.filter((x) => x.server === "cdn");
    assert.equal(cdn.length, 3);
    for (const r of cdn) assert.equal(r.headers.authorization, undefined, r.url);
    await assert.rejects(m.pull("acme/missing"), (err) => isModelError(err, "ERR_MODEL_NOT_FOUND") && !err.message.includes("hf_secret123"));
  });

  it("does not send HF_TOKEN to a plain URL source", async () => {
    hub.plain.set("weights.bin", unet.content);
    const m = manager({ env: { HF_ENDPOINT: "https://hub.invalid", HF_TOKEN: "hf_secret123" } });
    await m.pull(`${hub.url}/files/weights.bin#sha256=${sha256(unet.content)}`);
    for (const r of hub.requests) assert.equal(r.headers.authorization, undefined);
  });

  it("stores a file shared by two models once, and removes blobs only when no model uses them", async () => {
    const m = manager();
    await m.pull("acme/tiny-turbo");
    const afterFirst = blobs();
    await m.pull("acme/other-unet");
    // Only the other unet was fetched; the rest came from the cache.
    assert.deepEqual(hub.requests.filter((r) => r.url.includes("/acme/other-unet/resolve/")).map((r) => r.url.split("/").slice(5).join("/")), [
      ".gitattributes",
      "model_index.json",
      "scheduler/scheduler_config.json",
      "tokenizer/merges.txt",
      "tokenizer/vocab.json",
      "unet/model.onnx",
    ]);
    assert.equal(blobs().length, afterFirst.length + 1);
    const shared = sha256(fixture.find((f) => f.path === "text_encoder/model.onnx")!.content);
    assert.equal(statSync(path.join(dataDir, "models/blobs/sha256", shared)).nlink, 3, "one blob, linked into both model folders");
    assert.deepEqual((await m.list()).map((x) => x.name), ["other-unet", "tiny-turbo"]);

    const removed = await m.remove("tiny-turbo");
    assert.equal(removed.removedBlobs, 1);
    assert.equal(removed.freedBytes, unet.content.length);
    assert.ok(blobs().includes(shared));
    assert.equal(statSync(path.join(dataDir, "models/files")).isDirectory(), true);
    assert.deepEqual(readdirSync(path.join(dataDir, "models/files")), ["other-unet"]);
    await m.remove("other-unet");
    assert.deepEqual(blobs(), []);
    await assert.rejects(m.remove("other-unet"), (err) => isModelError(err, "ERR_MODEL_NOT_FOUND"));
  });

  it("pulls a second name of the same repository without transferring anything", async () => {
    const m = manager();
    await m.pull("acme/tiny-turbo");
    hub.requests.length = 0;
    await m.pull("acme/tiny-turbo-2", { name: "copy" });
    assert.deepEqual(hub.requests.filter((r) => r.url.includes("/resolve/") && r.url.includes(".onnx")), []);
  });

  it("pulls a local folder, and serves files and byte ranges of blobs to other machines", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "darkroom-local-model-"));
    try {
      for (const f of fixture) {
        mkdirSync(path.dirname(path.join(dir, f.path)), { recursive: true });
        writeFileSync(path.join(dir, f.path), f.content);
      }
      const m = manager();
      const manifest = await m.pull(dir, { name: "local-one" });
      assert.equal(manifest.sourceKind, "local");
      // Dot files are left out of folders (VCS and cache state).
      assert.equal(manifest.files.length, fixture.length - 1);
      const files = await m.files("local-one");
      const entry = files.find((f) => f.path === "unet/model.onnx")!;
      assert.equal(entry.sha256, sha256(unet.content));
      const { stream, size } = await m.openBlob(entry.sha256, { start: 10, end: 19 });
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      assert.equal(size, unet.content.length);
      assert.deepEqual(Buffer.concat(chunks), unet.content.subarray(10, 20));
      await assert.rejects(m.openBlob("0".repeat(64)), (err) => isModelError(err, "ERR_MODEL_NOT_FOUND"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses to run beside another live pull on the same data folder, and takes over a dead one's lock", async () => {
    mkdirSync(path.join(dataDir, "models"), { recursive: true });
    const lock = path.join(dataDir, "models/.lock");
    writeFileSync(lock, String(process.pid));
    await assert.rejects(manager().pull("acme/tiny-turbo"), (err) => isModelError(err, "ERR_MODEL_BUSY") && err.message.includes(String(process.pid)));
    // A pid far above Linux's pid_max is never alive.
    writeFileSync(lock, "99999999");
    await manager().pull("acme/tiny-turbo");
    assert.equal(existsSync(lock), false);
  });

  it("rejects names and listed paths that could leave the models folder", async () => {
    const m = manager();
    for (const name of ["../x", "a/b", ".hidden", "", "x".repeat(200)]) {
      await assert.rejects(m.pull("acme/tiny-turbo", { name }), (err) => isModelError(err, "ERR_MODEL_NAME_INVALID"), name);
    }
    await assert.rejects(m.show("../../etc/passwd"), (err) => isModelError(err, "ERR_MODEL_NAME_INVALID"));
    await assert.rejects(m.pull("acme/evil"), (err) => isModelError(err, "ERR_MODEL_SOURCE_INVALID"));
  });

  it("refuses plain http to anything but loopback, and a checksum mismatch on a URL source", async () => {
    await assert.rejects(manager().pull("http://example.com/model.onnx"), (err) => isModelError(err, "ERR_MODEL_SOURCE_INVALID"));
    hub.plain.set("w.bin", Buffer.from("hello"));
    await assert.rejects(manager().pull(`${hub.url}/files/w.bin#sha256=${"0".repeat(64)}`), (err) => isModelError(err, "ERR_MODEL_CHECKSUM"));
  });
});
