/**
 * The runner channel copies messages with structured clone: an output it cannot copy must end its
 * request with an error instead of leaving it running until its lease runs out, and the runner
 * stays up for the next request.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { TEST_APPS, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

describe("runner channel", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform({ appModules: [path.join(TEST_APPS, "uncloneable.ts")] });
  });
  after(() => p.close());

  it("fails a request whose output cannot be sent, and keeps the runner", async () => {
    const bad = await http(p, "POST", "/run/test/uncloneable", { bad: true });
    assert.equal(bad.status, 502);
    assert.equal(bad.headers.get("x-fal-error-type"), "runner_incomplete_response");
    assert.match(String(bad.body.detail), /cannot be sent/);
    const pidsBefore = (await http(p, "GET", "/v1/ops")).body.apps[0].runners.map((r: { pid: number }) => r.pid);
    const good = await http(p, "POST", "/run/test/uncloneable", { bad: false });
    assert.equal(good.status, 200);
    assert.deepEqual(good.body, { ok: true });
    const pidsAfter = (await http(p, "GET", "/v1/ops")).body.apps[0].runners.map((r: { pid: number }) => r.pid);
    assert.deepEqual(pidsAfter, pidsBefore, "the same runner served both");
  });
});
