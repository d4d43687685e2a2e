/**
 * Fair share between tenants over HTTP, on a real server with one runner slot (`slow-single`): one
 * request of a quiet tenant goes ahead of another tenant's flood, says so in its `queue_position`, and
 * runs next; the flood's positions move back by one. docs/fair-share.md.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { http, startTestPlatform, TEST_APPS, type TestPlatform } from "../helpers/platform.js";
import { waitCompleted, waitFor } from "../helpers/queue.js";

const SLOW = "darkroom-test/slow-single";

describe("fair share over HTTP", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform({ appModules: [path.join(TEST_APPS, "slow-single.ts")] });
    assert.equal((await http(p, "POST", `/run/${SLOW}`, { ms: 0 })).status, 200);
  });
  after(() => p.close());

  async function keyOf(tenant: string): Promise<{ url: string; auth: Record<string, string> }> {
    const res = await http(p, "POST", "/v1/keys", { name: tenant, tenant });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { url: p.url, auth: { authorization: `Key ${res.body.key as string}` } };
  }

  it("puts a quiet tenant's request ahead of a flood, with a queue position that says so", async () => {
    const flood = await keyOf("flood");
    const quiet = await keyOf("quiet");
    const floodIds: string[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await http(flood, "POST", `/queue/${SLOW}`, { ms: 800, label: `flood-${i}` });
      assert.equal(res.status, 200);
      floodIds.push(res.body.request_id as string);
    }
    await waitFor(p, SLOW, floodIds[0]!, "IN_PROGRESS");
    const positionBefore = (await http(p, "GET", `/queue/${SLOW}/requests/${floodIds[1]!}/status`)).body.queue_position as number;
    assert.equal(positionBefore, 0, "the flood's second request is next");

    const mine = await http(quiet, "POST", `/queue/${SLOW}`, { ms: 0, label: "quiet" });
    assert.equal(mine.status, 200);
    assert.equal(mine.body.queue_position, 0, "ahead of the six flood requests still waiting");
    const moved = (await http(p, "GET", `/queue/${SLOW}/requests/${floodIds[1]!}/status`)).body.queue_position as number;
    assert.equal(moved, 1, "the flood's next request moved back by one");

    const done = await waitCompleted(p, SLOW, mine.body.request_id as string);
    assert.equal(done.status, "COMPLETED");
    const quietRecord = (await http(p, "GET", `/v1/requests/${mine.body.request_id as string}`)).body as { started_at: string };
    const secondRecord = (await http(p, "GET", `/v1/requests/${floodIds[1]!}`)).body as { started_at: string | null };
    assert.ok(secondRecord.started_at === null || Date.parse(secondRecord.started_at) >= Date.parse(quietRecord.started_at), "the quiet request started first");
    for (const id of floodIds) await http(p, "PUT", `/queue/${SLOW}/requests/${id}/cancel`);

    // Prometheus sees both tenants by name: their finished requests, run time and time in the queue.
    const metrics = await (await fetch(`${p.url}/metrics`)).text();
    assert.match(metrics, /darkroom_tenant_requests_total\{tenant="quiet",state="SUCCEEDED"\} 1\n/);
    assert.match(metrics, /darkroom_tenant_requests_total\{tenant="flood",state="CANCELLED"\} [1-7]\n/);
    assert.match(metrics, /darkroom_tenant_run_seconds_total\{tenant="flood"\} \d/);
    assert.match(metrics, /darkroom_tenant_queue_wait_seconds_count\{tenant="quiet"\} 1\n/);
  });
});
