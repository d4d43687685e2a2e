/**
 * `darkroom models` end to end: the real CLI process pulls from a loopback Hub (HF_ENDPOINT) into
 * a temporary data folder, then lists, shows and removes.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { statSync } from "node:fs";
import { cli, startCli } from "../cli/helpers.js";
import { diffusersFixture, sha256, startHubServer, type HubServer } from "./hub-server.js";

describe("darkroom models (CLI)", () => {
  let hub: HubServer;
  let dataDir: string;
  before(async () => {
    hub = await startHubServer({ "acme/tiny-turbo": diffusersFixture(), "acme/no-vae": diffusersFixture({ omit: ["vae_decoder/model.onnx"] }) });
    dataDir = mkdtempSync(path.join(tmpdir(), "darkroom-models-cli-"));
  });
  after(async () => {
    await hub.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("stops on Ctrl-C with exit 130, and the next pull resumes the partial file", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "darkroom-models-cli-int-"));
    try {
      const env = { HF_ENDPOINT: hub.url, DARKROOM_DATA_DIR: dir };
      const unet = diffusersFixture().find((f) => f.path === "unet/model.onnx")!;
      const partial = path.join(dir, "models/tmp", `${sha256(unet.content)}.partial`);
      hub.stallAfter.set("unet/model.onnx", 250_000);
      const running = startCli(["models", "pull", "acme/tiny-turbo"], { env });
      const size = (): number => statSync(partial, { throwIfNoEntry: false })?.size ?? 0;
      for (let i = 0; i < 200 && size() < 250_000; i++) await delay(50);
      assert.equal(size(), 250_000);
      running.child.kill("SIGINT");
      const stopped = await running.done;
      assert.equal(stopped.code, 130, stopped.stderr);
      assert.match(stopped.stderr, /interrupted; run the same pull again to resume/);

      const before = hub.requests.length;
      const resumed = await cli(["models", "pull", "acme/tiny-turbo"], { env });
      assert.equal(resumed.code, 0, resumed.stderr);
      const again = hub.requests.slice(before).filter((r) => r.file === "unet/model.onnx");
      assert.equal(again[0]?.headers.range, "bytes=250000-");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("pulls, lists, shows and removes a model", async () => {
    hub.requests.length = 0;
    const env = { HF_ENDPOINT: hub.url, DARKROOM_DATA_DIR: dataDir };
    hub.cutAfter.set("unet/model.onnx", 400_000);
    const pulled = await cli(["models", "pull", "acme/tiny-turbo", "--name", "turbo"], { env });
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(pulled.stdout, /Pulled turbo \(8 files/);
    // stderr is a pipe here: plain lines, one per file, no bar.
    assert.match(pulled.stderr, /fetching unet\/model\.onnx \[\d\/8\]/);
    assert.doesNotMatch(pulled.stderr, /\r/);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(hub.downloads("unet/model.onnx")[1]?.headers.range ?? "")?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= 400_000, `resumed at ${resumedAt}`);

    const listed = await cli(["models", "list"], { env });
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^turbo\s+1\.\d+ MiB\s+8\s+hf:acme\/tiny-turbo@main/m);

    const shown = await cli(["models", "show", "turbo", "--json"], { env });
    assert.equal(shown.code, 0, shown.stderr);
    const manifest = JSON.parse(shown.stdout);
    assert.equal(manifest.revision, hub.commit);
    assert.equal(manifest.folder, path.join(dataDir, "models/files/turbo"));

    const missing = await cli(["models", "pull", "acme/no-vae"], { env });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: .*missing vae_decoder\/model\.onnx/m);

    const badName = await cli(["models", "pull", "acme/tiny-turbo", "--name", "../x"], { env });
    assert.equal(badName.code, 2);

    const removed = await cli(["models", "rm", "turbo"], { env });
    assert.equal(removed.code, 0, removed.stderr);
    const empty = await cli(["models", "list", "--json"], { env });
    assert.deepEqual(JSON.parse(empty.stdout), []);
    const gone = await cli(["models", "show", "turbo"], { env });
    assert.equal(gone.code, 1);
  });
});
