/**
 * fal's `x-fal-object-lifecycle-preference`: a request's output files expire when it asks, and are
 * kept when it does not.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

const PNG_1PX = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

describe("output lifecycle", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform();
  });
  after(async () => {
    await p.close();
  });

  async function storedExpiry(headers: Record<string, string>, route: string): Promise<number | null> {
    const res = await http(p, "POST", route, { file_url: PNG_1PX }, headers);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const url = new URL(res.body.file.url);
    const meta = await p.storage.head(decodeURIComponent(url.pathname.slice("/files/".length)));
    assert.ok(meta, "the output file is stored");
    return meta.expiresAt;
  }

  it("expires outputs after the requested time, on sync runs and through the queue", async () => {
    const before = Date.now();
    const expiry = await storedExpiry({ "x-fal-object-lifecycle-preference": JSON.stringify({ expiration_duration_seconds: 60 }) }, "/run/darkroom/echo");
    assert.ok(expiry !== null && expiry >= before + 60_000 && expiry <= Date.now() + 60_000, `expires in 60 s, got ${expiry}`);

    const submitted = await http(p, "POST", "/queue/darkroom/echo", { file_url: PNG_1PX }, { "x-fal-object-lifecycle-preference": '{"expiration_duration_seconds": 3600}' });
    const result = await (async () => {
      for (;;) {
        const r = await http(p, "GET", new URL(submitted.body.response_url).pathname);
        if (r.status === 200) return r;
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    const meta = await p.storage.head(decodeURIComponent(new URL(result.body.file.url).pathname.slice("/files/".length)));
    assert.ok(meta?.expiresAt && Math.abs(meta.expiresAt - (Date.now() + 3_600_000)) < 10_000);
  });

  it("keeps outputs without the header, and refuses a malformed one", async () => {
    assert.equal(await storedExpiry({}, "/run/darkroom/echo"), null);
    const bad = await http(p, "POST", "/run/darkroom/echo", {}, { "x-fal-object-lifecycle-preference": "soon" });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error_type, "bad_request");
  });
});
