/**
 * `models pull` when the Hub cannot be reached: a name that does not resolve fails at once (no
 * retries), a refused connection is still retried, and both failures name the sources that work
 * without the Hub: a local folder, a mirror through HF_ENDPOINT, another gateway (`gateway:`).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { createModelManager, isModelError, type ModelManagerOptions } from "../../src/models/index.js";
import { cli } from "../cli/helpers.js";

/** A host under `.invalid`, a name reserved never to resolve (RFC 2606). */
const NO_SUCH_HUB = "https://darkroom-no-such-host.invalid";

/** A fetch that fails as Node's does when getaddrinfo or connect fails, counting its calls. */
function failingFetch(code: string): { fetch: typeof fetch; calls: string[] } {
  const calls: string[] = [];
  const failing: typeof fetch = async (input) => {
    const url = String(input instanceof Request ? input.url : input);
    calls.push(url);
    const hostname = new URL(url).hostname;
    throw new TypeError("fetch failed", { cause: Object.assign(new Error(`getaddrinfo ${code} ${hostname}`), { code, hostname }) });
  };
  return { fetch: failing, calls };
}

/** The three ways round an unreachable Hub, each with its command. */
function assertNamesAlternatives(message: string, name: string): void {
  assert.match(message, new RegExp(`darkroom models pull \\./path/to/tiny-turbo --name ${name}`), message);
  assert.match(message, new RegExp(`HF_ENDPOINT=https://<mirror> darkroom models pull acme/tiny-turbo --name ${name}`), message);
  assert.match(message, /DARKROOM_GATEWAY=\S+ DARKROOM_RUNNER_TOKEN=\S+ darkroom models pull gateway:/, message);
}

describe("models pull without the Hub", () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(path.join(tmpdir(), "darkroom-models-offline-"));
  });
  afterEach(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  const manager = (extra: Partial<ModelManagerOptions>) => createModelManager({ dataDir, env: { HF_ENDPOINT: NO_SUCH_HUB }, attempts: 3, retryDelayMs: 5, ...extra });

  for (const code of ["ENOTFOUND", "EAI_AGAIN"]) {
    it(`gives up at the first ${code}, naming the host and the alternatives`, async () => {
      const failing = failingFetch(code);
      await assert.rejects(manager({ fetch: failing.fetch }).pull("acme/tiny-turbo", { name: "turbo" }), (err) => {
        assert.ok(isModelError(err, "ERR_MODEL_UNREACHABLE"), String(err));
        assert.match(err.message, new RegExp(`^cannot reach ${NO_SUCH_HUB}/api/models/acme/tiny-turbo/revision/main: darkroom-no-such-host\\.invalid does not resolve \\(${code};`));
        // HF_ENDPOINT was already a mirror: the message says so rather than suggesting the variable as news.
        assert.match(err.message, /another Hub mirror \(HF_ENDPOINT is https:\/\/darkroom-no-such-host\.invalid\)/);
        assertNamesAlternatives(err.message, "turbo");
        return true;
      });
      assert.equal(failing.calls.length, 1, "no retries for a name that does not resolve");
    });
  }

  it("still retries a refused connection, then names the alternatives", async () => {
    const failing = failingFetch("ECONNREFUSED");
    await assert.rejects(manager({ fetch: failing.fetch }).pull("acme/tiny-turbo"), (err) => {
      assert.ok(isModelError(err, "ERR_MODEL_UNREACHABLE"), String(err));
      assert.match(err.message, /after 3 attempts \(ECONNREFUSED\)/);
      assertNamesAlternatives(err.message, "tiny-turbo");
      return true;
    });
    assert.equal(failing.calls.length, 3);
  });

  it("fails at once for a single-file URL whose host does not resolve, without the Hub's alternatives", async () => {
    const failing = failingFetch("ENOTFOUND");
    await assert.rejects(manager({ fetch: failing.fetch }).pull(`${NO_SUCH_HUB}/model.onnx`), (err) => {
      assert.ok(isModelError(err, "ERR_MODEL_UNREACHABLE"), String(err));
      assert.doesNotMatch(err.message, /HF_ENDPOINT/);
      return true;
    });
    assert.equal(failing.calls.length, 1);
  });

  it("the real CLI, pointed at a Hub whose name does not resolve, fails within seconds and says what else works", async () => {
    const started = Date.now();
    const r = await cli(["models", "pull", "acme/tiny-turbo", "--name", "turbo"], { env: { HF_ENDPOINT: NO_SUCH_HUB, DARKROOM_DATA_DIR: dataDir } });
    const elapsed = Date.now() - started;
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^error: cannot reach https:\/\/darkroom-no-such-host\.invalid\/\S+: darkroom-no-such-host\.invalid does not resolve/);
    assertNamesAlternatives(r.stderr, "turbo");
    // Retrying would sleep 1 + 2 + 4 + 8 s; the bound leaves room for the CLI's own start on a busy machine.
    assert.ok(elapsed < 8000, `took ${elapsed} ms`);
  });
});
