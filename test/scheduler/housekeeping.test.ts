/**
 * The scheduler's tick on its own, with no server: a real (in-memory SQLite) store, pools whose
 * runners are stand-ins that record what the tick asked of them.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { DEFAULT_KNOBS, type AppManifest, type RequestRecord } from "../../src/core/types.js";
import { Housekeeping } from "../../src/scheduler/housekeeping.js";
import { createPool, type Pool } from "../../src/scheduler/pool.js";
import type { RunnerProcess } from "../../src/scheduler/runner-process.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { NewRequest, Store } from "../../src/store/store.js";

const APP = "test/housekeeping";

function manifest(knobs: Partial<AppManifest["knobs"]> = {}): AppManifest {
  return { id: APP, version: "1", metadata: {}, knobs: { ...DEFAULT_KNOBS, ...knobs }, endpoints: [], modulePath: "" } as unknown as AppManifest;
}

/** A runner stand-in: the fields the tick reads, and what it was asked to do. */
function runner(fields: { id: string; state: string; idleSince?: number; spawnedAt?: number }): RunnerProcess & { drained: number; killed: number } {
  const stand = { alive: true, assignments: new Map(), idleSince: 0, spawnedAt: 0, drained: 0, killed: 0, ...fields };
  return Object.assign(stand, {
    drain: () => void (stand.drained += 1),
    kill: () => void (stand.killed += 1),
  }) as unknown as RunnerProcess & { drained: number; killed: number };
}

function request(overrides: Partial<NewRequest> = {}): NewRequest {
  return { id: randomUUID(), appId: APP, endpoint: "", input: {}, priority: "normal", mode: "queue", startDeadline: null, maxAttempts: 3, webhookUrl: null, keyId: null, baseUrl: "http://127.0.0.1:8787", ...overrides };
}

describe("Housekeeping", () => {
  let store: Store;

  before(async () => {
    store = createSqliteStore({ path: ":memory:" });
    await store.migrate();
  });

  after(async () => {
    await store.close();
  });

  function housekeeping(pools: Pool[], holds: (id: string) => boolean = () => false) {
    const seen = { finished: [] as RequestRecord[], pumped: [] as string[], queued: [] as string[] };
    const hk = new Housekeeping({
      store,
      leaseMs: 1000,
      pools: () => pools,
      pool: (id) => pools.find((p) => p.app.id === id),
      holds,
      pump: (appId) => seen.pumped.push(appId),
      finished: (record) => seen.finished.push(record),
      announceQueued: (appId) => seen.queued.push(appId),
    });
    return { hk, seen };
  }

  it("ends queued requests whose start deadline passed, with 504", async () => {
    const late = request({ startDeadline: Date.now() - 1 });
    await store.enqueue(late);
    const { hk, seen } = housekeeping([]);
    await hk.tick();
    const record = await store.get(late.id);
    assert.equal(record?.state, "FAILED");
    assert.equal(record?.statusCode, 504);
    assert.deepEqual(seen.finished.map((r) => r.id), [late.id]);
  });

  it("takes back a lease whose holder vanished, unless this process still holds its outcome", async () => {
    const kept = request();
    const lost = request();
    for (const r of [kept, lost]) {
      await store.enqueue(r);
      await store.claimMany(APP, "vanished-runner", 1, 1, Date.now() - 10_000, { only: [r.id] });
    }
    const { hk, seen } = housekeeping([createPool(manifest())], (id) => id === kept.id);
    await hk.tick();
    assert.equal((await store.get(kept.id))?.state, "RUNNING", "an outcome kept through an outage holds its request");
    const back = await store.get(lost.id);
    assert.equal(back?.state, "QUEUED");
    assert.equal(back?.attempt, 2);
    assert.ok(seen.queued.includes(APP));
  });

  it("drains runners idle past keep_alive down to min_runners, and kills one stuck in setup", async () => {
    const now = Date.now();
    const idle = [runner({ id: "r1", state: "ready", idleSince: now - 60_000 }), runner({ id: "r2", state: "ready", idleSince: now - 60_000 }), runner({ id: "r3", state: "ready", idleSince: now })];
    const stuck = runner({ id: "r4", state: "starting", spawnedAt: now - 120_000 });
    const p = createPool(manifest({ keep_alive: 30, min_runners: 1, concurrency_buffer: 0, startup_timeout: 60 }), [...idle, stuck]);
    const { hk } = housekeeping([p]);
    await hk.tick(now);
    // Four alive (stuck counts until it exits), floor 1: both runners idle past keep_alive drain, the
    // one used a moment ago stays.
    assert.deepEqual(idle.map((r) => r.drained), [1, 1, 0]);
    assert.equal(stuck.killed, 1);
    assert.match(p.lastSetupError ?? "", /startup_timeout/);
  });
});
