/**
 * `darkroom models` end to end: the real CLI process pulls from a loopback Hub (HF_ENDPOINT) into
 * a temporary data folder, then lists, shows and removes.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { cli } from "../cli/helpers.js";
import { diffusersFixture, startHubServer, type HubServer } from "./hub-server.js";

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

  it("pulls, lists, shows and removes a model", async () => {
    const env = { HF_ENDPOINT: hub.url, DARKROOM_DATA_DIR: dataDir };
    hub.cutAfter.set("unet/model.onnx", 400_000);
    const pulled = await cli(["models", "pull", "acme/tiny-turbo", "--name", "turbo"], { env });
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(pulled.stdout, /Pulled turbo \(8 files/);
    // stderr is a pipe here: plain lines, one per file, no bar.
    assert.match(pulled.stderr, /fetching unet\/model\.onnx \[\d\/8\]/);
    assert.doesNotMatch(pulled.stderr, /\r/);
    assert.equal(hub.downloads("unet/model.onnx")[1]?.headers.range, "bytes=400000-");

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
