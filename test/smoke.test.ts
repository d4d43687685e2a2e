import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { http, startTestPlatform, type TestPlatform } from "./helpers/platform.js";

describe("smoke", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform();
  });
  after(async () => {
    await p.close();
  });
  it("runs echo synchronously through a runner", async () => {
    const res = await http(p, "POST", "/run/darkroom/echo", { message: { hello: "wörld" } });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { message: { hello: "wörld" }, attempt: 1 });
    assert.match(res.headers.get("x-fal-request-id") ?? "", /^[0-9a-f-]{36}$/);
  });
});
