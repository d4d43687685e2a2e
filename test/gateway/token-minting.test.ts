/**
 * Short-lived tokens are minted with an API key only. A token that could mint tokens would widen
 * its own app list and lifetime.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ECHO_APP, TEST_APPS, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

describe("token minting", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform({ appModules: [ECHO_APP, path.join(TEST_APPS, "slow-single.ts")] });
  });
  after(() => p.close());

  it("refuses a token as the caller of /rest/tokens and /rest/storage/auth/token, and the token stays limited", async () => {
    const narrow = await http(p, "POST", "/rest/tokens/", { allowed_apps: ["slow-single"], token_expiration: 30 });
    assert.equal(narrow.status, 201);
    const asToken = { authorization: `Bearer ${narrow.body as string}` };

    const wider = await http({ url: p.url, auth: asToken }, "POST", "/rest/tokens/", { allowed_apps: ["echo"], token_expiration: 3600 });
    assert.equal(wider.status, 403);
    assert.equal(wider.headers.get("x-fal-error-type"), "forbidden");
    const storage = await http({ url: p.url, auth: asToken }, "POST", "/rest/storage/auth/token?storage_type=fal-cdn-v3", {});
    assert.equal(storage.status, 403);

    // What it was issued for still holds: echo is not among its apps.
    const run = await http({ url: p.url, auth: asToken }, "POST", "/run/darkroom/echo", { message: "x" });
    assert.equal(run.status, 403);

    // A key still mints both.
    assert.equal((await http(p, "POST", "/rest/tokens/", { allowed_apps: ["echo"] })).status, 201);
    assert.equal((await http(p, "POST", "/rest/storage/auth/token?storage_type=fal-cdn-v3", {})).status, 200);
  });
});
