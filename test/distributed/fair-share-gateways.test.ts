/**
 * Fair share between tenants across gateways: two gateways (`darkroom serve` processes) on one
 * PostgreSQL database and one remote runner with one slot. Tenant A floods gateway 1; tenant B's one
 * request, submitted to gateway 2, is told it is next and runs next, ahead of A's waiting requests,
 * because the queue clock and the tenants' finish tags live in the shared database, not in either
 * gateway. docs/fair-share.md.
 * @module
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.js";
import { ADMIN_KEY, http, TEST_APPS } from "../helpers/platform.js";
import { submit, waitCompleted, waitFor } from "../helpers/queue.js";
import { startRunnerProcess, type RunnerProcess } from "../helpers/remote-runner.js";
import { createTestDatabase, type TestDatabase } from "../store/pg-database.js";

const SLOW = "darkroom-test/slow-single";
const SLOW_APP = path.join(TEST_APPS, "slow-single.ts");
/** Runner slots in the whole fleet: one runner, one slot, so the flood queues behind it. */
const SLOTS = 1;
const FLOOD = 16;
const FLOOD_MS = 600;
/**
 * How many of A's requests may start before B: the ones running when B is submitted (SLOTS), plus
 * one more for a slot that frees between "A's first is running" and B's submit on a slow machine.
 */
const STARTED_BEFORE_B = SLOTS + 1;

interface Listed {
  request_id: string;
  state: string;
  tenant: string | null;
  started_at: string | null;
  finished_at: string | null;
}

describe("fair share across gateways on one PostgreSQL database", () => {
  let database: TestDatabase;
  let dataDir: string;
  const gateways: GatewayProcess[] = [];
  let runner: RunnerProcess | undefined;
  const admin = (g: GatewayProcess) => ({ url: g.url, auth: { authorization: `Key ${ADMIN_KEY}` } });

  before(async () => {
    database = await createTestDatabase();
    // Gateways share their secrets through one folder, as in multi-gateway.test.ts.
    dataDir = await mkdtemp(path.join(tmpdir(), "darkroom-fair-fleet-"));
    const env = {
      DARKROOM_ADMIN_KEY: ADMIN_KEY,
      DARKROOM_DATA_DIR: dataDir,
      DARKROOM_DATABASE_URL: database.url,
      // No runners of the gateways' own: the one remote runner below is the only slot in the fleet.
      DARKROOM_LOCAL_RUNNERS: "false",
      DARKROOM_BUILTIN_APPS: "false",
      DARKROOM_APPS: SLOW_APP,
      DARKROOM_LOG_LEVEL: "warn",
    };
    // One after the other: the first start runs the migrations and provisions the admin key.
    gateways.push(await startGatewayProcess({ env }));
    gateways.push(await startGatewayProcess({ env }));
    const [g1] = gateways as [GatewayProcess, GatewayProcess];
    const minted = await http(admin(g1), "POST", "/v1/runner-tokens", { apps: [SLOW] });
    assert.equal(minted.status, 201, JSON.stringify(minted.body));
    // The runner works for gateway 1, where the flood arrives; B's request comes in through gateway 2.
    runner = await startRunnerProcess({ gateways: [g1.url], token: minted.body.token as string, app: SLOW_APP, slots: SLOTS });
  });

  after(async () => {
    await runner?.kill();
    await Promise.all(gateways.map((g) => g.kill()));
    await database?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("one request of tenant B on gateway 2 goes ahead of tenant A's flood on gateway 1", async () => {
    const [g1, g2] = gateways as [GatewayProcess, GatewayProcess];
    async function keyOf(gateway: GatewayProcess, tenant: string): Promise<{ url: string; auth: Record<string, string> }> {
      const res = await http(admin(g1), "POST", "/v1/keys", { name: tenant, tenant });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return { url: gateway.url, auth: { authorization: `Key ${res.body.key as string}` } };
    }
    const tenantA = await keyOf(g1, "tenant-a");
    const tenantB = await keyOf(g2, "tenant-b");

    const floodIds: string[] = [];
    for (let i = 0; i < FLOOD; i++) floodIds.push(await submit(tenantA, SLOW, { ms: FLOOD_MS, label: `a-${i}` }));
    // The runner has taken A's first request (a cold start may come first): the rest wait behind it.
    await waitFor(admin(g1), SLOW, floodIds[0]!, "IN_PROGRESS", 30_000);

    const mine = await http(tenantB, "POST", `/queue/${SLOW}`, { ms: 0, label: "b" });
    assert.equal(mine.status, 200, JSON.stringify(mine.body));
    const bId = mine.body.request_id as string;
    // Gateway 2 counts the position in the shared claim order: only the running slot is ahead of B,
    // none of A's waiting requests (as in test/gateway/fair-share.test.ts).
    assert.equal(mine.body.queue_position, 0, `B's position behind a flood of ${FLOOD}: ${JSON.stringify(mine.body)}`);

    // Long enough for B to come out even behind the whole flood (FIFO), so that ordering fails on the
    // assertions below rather than on this wait.
    const done = await waitCompleted(admin(g2), SLOW, bId, 60_000);
    assert.equal(done.status, "COMPLETED");
    // Everything as gateway 1 sees it at the moment B is seen done: one list call, not one per request.
    const listed = await http(admin(g1), "GET", `/v1/requests?app=${encodeURIComponent(SLOW)}&limit=500`);
    assert.equal(listed.status, 200);
    const all = listed.body.requests as Listed[];
    const b = all.find((r) => r.request_id === bId);
    assert.ok(b?.started_at && b.finished_at, `B has run: ${JSON.stringify(b)}`);
    assert.equal(b.tenant, "tenant-b");
    const flood = all.filter((r) => floodIds.includes(r.request_id));
    assert.equal(flood.length, FLOOD);
    assert.ok(flood.every((r) => r.tenant === "tenant-a"));

    // Order, from the store's own start times (no timing bounds): B started after at most the A
    // requests that held the slot when it arrived.
    const bStarted = Date.parse(b.started_at);
    const startedBeforeB = flood.filter((r) => r.started_at !== null && Date.parse(r.started_at) < bStarted);
    assert.ok(startedBeforeB.length <= STARTED_BEFORE_B, `${startedBeforeB.length} of A's ${FLOOD} requests started before B`);
    // And at most those plus one (the slot B freed) have left the queue by the time B was seen done.
    const stillQueued = flood.filter((r) => r.state === "QUEUED").length;
    assert.ok(stillQueued >= FLOOD - STARTED_BEFORE_B - 2, `only ${stillQueued} of A's ${FLOOD} requests still queued when B completed`);
    // With FIFO order (claims by submission time) both fail: B was submitted after the whole flood,
    // so all FLOOD of A's requests would start before it (startedBeforeB = FLOOD) and none would be
    // queued when it completes. (Checked by making the PostgreSQL claim order by created_at first:
    // "16 of A's 16 requests started before B". B's queue_position above is counted apart from the
    // claim, so these order assertions, not the position, are what catch a FIFO claim.) Only the
    // fair-share tags, computed from the clock and the tenant's tags in the shared database, put B
    // (tag = the clock) ahead of A's queued requests (tags 1, 2, ... FLOOD-1).
    process.stdout.write(`# fair share across gateways: ${startedBeforeB.length} of A's ${FLOOD} started before B, ${stillQueued} still queued when B completed\n`);
  });
});
