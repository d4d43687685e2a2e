/**
 * `Idempotency-Key` on queue submits (src/gateway/idempotency.ts), on a real server: a retried
 * submit gets the first one's request and nothing runs twice; the same key with another request is
 * refused; keys are per API key; a refused submit gives its key back.
 * @module
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { waitCompleted } from "../helpers/queue.js";

const APP = "darkroom/echo";

describe("Idempotency-Key on queue submits", () => {
  let p: TestPlatform;

  before(async () => {
    p = await startTestPlatform();
  });

  after(async () => {
    await p.close();
  });

  const submitWith = (key: string, body: unknown, as: { url: string; auth: Record<string, string> } = p) => http(as, "POST", `/queue/${APP}`, body, { "idempotency-key": key });
  const stored = async (): Promise<number> => (await p.store.list({ appId: APP, limit: 500 })).length;

  it("answers a retried submit with the first one's request, whatever the order of the input's fields, and runs it once", async () => {
    const before = await stored();
    const first = await submitWith("order-1001", { message: { a: 1, b: [1, 2] }, sleep_ms: 50 });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.headers.get("idempotent-replayed"), null);
    const retry = await submitWith("order-1001", { sleep_ms: 50, message: { b: [1, 2], a: 1 } });
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.equal(retry.headers.get("idempotent-replayed"), "true");
    assert.equal(retry.body.request_id, first.body.request_id);
    assert.equal(retry.body.status_url, first.body.status_url);
    assert.equal(await stored(), before + 1, "one request");

    await waitCompleted(p, APP, first.body.request_id as string);
    const late = await submitWith("order-1001", { message: { a: 1, b: [1, 2] }, sleep_ms: 50 });
    assert.equal(late.body.request_id, first.body.request_id);
    assert.equal(late.body.status, "COMPLETED", "a replay says where the request stands now");
    const record = await p.store.get(first.body.request_id as string);
    assert.equal(record?.attempt, 1);
  });

  it("refuses the same key with a different request (422), and queues nothing", async () => {
    const first = await submitWith("order-1002", { message: "one" });
    assert.equal(first.status, 200);
    const before = await stored();
    for (const [path, body] of [
      [`/queue/${APP}`, { message: "two" }],
      [`/queue/${APP}?fal_webhook=${encodeURIComponent("https://hooks.example.com/x")}`, { message: "one" }],
    ] as const) {
      const other = await http(p, "POST", path, body, { "idempotency-key": "order-1002" });
      assert.equal(other.status, 422, JSON.stringify(other.body));
      assert.equal(other.body.error_type, "idempotency_key_reused");
      assert.match(other.body.detail, new RegExp(first.body.request_id as string));
    }
    assert.equal(await stored(), before);
  });

  it("keeps one caller's keys apart from another's", async () => {
    const created = await http(p, "POST", "/v1/keys", { name: "second caller", scope: "api" });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const other = { url: p.url, auth: { authorization: `Key ${created.body.key as string}` } };
    const mine = await submitWith("shared-name", { message: "mine" });
    const theirs = await submitWith("shared-name", { message: "theirs" }, other);
    assert.equal(theirs.status, 200, JSON.stringify(theirs.body));
    assert.notEqual(theirs.body.request_id, mine.body.request_id);
  });

  it("gives several retries sent at once the same single request", async () => {
    const before = await stored();
    const answers = await Promise.all(Array.from({ length: 6 }, () => submitWith("burst-7", { message: "burst" })));
    for (const answer of answers) assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(new Set(answers.map((a) => a.body.request_id)).size, 1);
    assert.equal(answers.filter((a) => a.headers.get("idempotent-replayed") === "true").length, 5);
    assert.equal(await stored(), before + 1);
  });

  it("gives the key back when the submit is refused, so that the corrected retry runs", async () => {
    const refused = await submitWith("fix-me", { message: "x", sleep_ms: "not a number" });
    assert.equal(refused.status, 422, JSON.stringify(refused.body));
    const fixed = await submitWith("fix-me", { message: "x", sleep_ms: 1 });
    assert.equal(fixed.status, 200, JSON.stringify(fixed.body));
    assert.equal(fixed.headers.get("idempotent-replayed"), null);
  });

  it("refuses a malformed key with 400 before anything is queued", async () => {
    for (const key of ["has space", "x".repeat(256), "caf\u00e9"]) {
      const res: Response | Error = await fetch(`${p.url}/queue/${APP}`, { method: "POST", headers: { ...p.auth, "content-type": "application/json", "idempotency-key": key }, body: "{}" }).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
      // fetch itself may refuse a header value outside ASCII; the others reach the gateway.
      if (res instanceof Error) continue;
      assert.equal(res.status, 400, key);
      assert.equal(((await res.json()) as { error_type: string }).error_type, "bad_request");
    }
  });
});
