/**
 * A token issued for some apps reaches its key's requests of those apps only: every route that
 * touches a request (status, stream, result, cancel, /v1/requests, webhooks, usage) answers 404 for
 * the key's other requests, and a token made from an admin key does not inherit the admin's view.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ECHO_APP, TEST_APPS, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

describe("token scope covers every route that touches a request", { timeout: 60_000 }, () => {
  let p: TestPlatform;
  let key: string;
  let echoRequest: string;
  let warmRequest: string;

  const as = (credential: string) => ({ url: p.url, auth: { authorization: `Bearer ${credential}` } });

  before(async () => {
    p = await startTestPlatform({ appModules: [ECHO_APP, path.join(TEST_APPS, "warm.ts")] });
    const created = await http(p, "POST", "/v1/keys", { name: "team", scope: "api" });
    assert.equal(created.status, 201);
    key = created.body.key;
    // The key's long echo request, which the token for `warm` must not see or cancel.
    const echo = await http(as(key), "POST", "/queue/darkroom/echo", { sleep_ms: 30_000, message: "private" });
    assert.equal(echo.status, 200);
    echoRequest = echo.body.request_id;
    const warm = await http(as(key), "POST", "/run/darkroom-test/warm", {});
    assert.equal(warm.status, 200);
    warmRequest = warm.headers.get("x-fal-request-id") ?? "";
    assert.ok(warmRequest);
  });

  after(async () => {
    await http(p, "PUT", `/queue/darkroom/echo/requests/${echoRequest}/cancel`);
    await p?.close();
  });

  async function tokenFor(credential: string, apps: string[]): Promise<string> {
    const issued = await http(as(credential), "POST", "/rest/tokens/", { allowed_apps: apps, token_expiration: 120 });
    assert.equal(issued.status, 201);
    return issued.body as string;
  }

  it("reads its own app's request, and gets 404 on every route for the key's other apps", async () => {
    const token = as(await tokenFor(key, ["warm"]));
    assert.equal((await http(token, "GET", `/v1/requests/${warmRequest}`)).status, 200);

    const base = `/queue/darkroom/echo/requests/${echoRequest}`;
    for (const [method, route] of [
      ["GET", `${base}/status`],
      ["GET", `${base}/status/stream`],
      ["GET", base],
      ["PUT", `${base}/cancel`],
      ["GET", `/v1/requests/${echoRequest}`],
      ["GET", `/v1/requests/${echoRequest}/webhooks`],
    ] as const) {
      const res = await http(token, method, route);
      assert.equal(res.status, 404, `${method} ${route} answered ${res.status}`);
    }
    // The cancel was refused, not carried out: the request still runs.
    const still = await http(as(key), "GET", `${base}/status`);
    assert.match(still.body.status, /IN_QUEUE|IN_PROGRESS/);

    const listed = await http(token, "GET", "/v1/requests?limit=50");
    assert.deepEqual(listed.body.requests.map((r: { app_id: string }) => r.app_id), ["darkroom-test/warm"]);
    const usage = await http(token, "GET", "/v1/usage");
    assert.ok(usage.body.usage.every((u: { app_id: string }) => u.app_id === "darkroom-test/warm"), JSON.stringify(usage.body));

    // The key itself still sees both.
    const all = await http(as(key), "GET", "/v1/requests?limit=50");
    assert.deepEqual(all.body.requests.map((r: { app_id: string }) => r.app_id).sort(), ["darkroom-test/warm", "darkroom/echo"]);
  });

  it("a token made from an admin key sees its own key's requests of its apps, not everyone's", async () => {
    const adminToken = as(await tokenFor(p.auth.authorization!.slice("Key ".length), ["echo", "warm"]));
    assert.equal((await http(adminToken, "GET", `/v1/requests/${echoRequest}`)).status, 404);
    assert.equal((await http(adminToken, "PUT", `/queue/darkroom/echo/requests/${echoRequest}/cancel`)).status, 404);
    const listed = await http(adminToken, "GET", "/v1/requests?limit=50");
    assert.deepEqual(listed.body.requests, []);
    // The admin key itself sees every key's requests.
    assert.equal((await http(p, "GET", `/v1/requests/${echoRequest}`)).status, 200);
  });
});
