/**
 * The PostgreSQL driver: the shared store and bus conformance suites (each test in a fresh schema of
 * a database made for this file), plus what only a shared server has to prove: two stores (two
 * gateways) claiming from one queue, concurrent migrations, leases that expire, a bus that survives
 * losing its connection.
 * @module
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, it } from "node:test";
import pg from "pg";
import type { RequestRecord } from "../../src/core/types.js";
import { createPostgresStore, type PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { LATEST_SCHEMA_VERSION } from "../../src/store/postgres/schema.js";
import { EXHAUSTED, newRequest } from "../helpers/store-requests.js";
import { runBusConformance } from "./bus.case.js";
import { createTestDatabase, type TestDatabase, uniqueSchema } from "./pg-database.js";
import { runStoreConformance, STORE_TABLES } from "./store.case.js";

let database: Promise<TestDatabase> | null = null;
function testDatabase(): Promise<TestDatabase> {
  database ??= createTestDatabase();
  return database;
}

after(async () => {
  if (database) await (await database).drop();
});

/** Errors the stores report that no test expects: asserted empty where it matters. */
const unexpectedErrors: { error: unknown; context: string }[] = [];

async function openStore(schema: string, options: { poolSize?: number; onError?: (error: unknown, context: string) => void } = {}): Promise<PostgresStore> {
  return createPostgresStore({
    url: (await testDatabase()).url,
    schema,
    onError: options.onError ?? ((error, context) => unexpectedErrors.push({ error, context })),
    ...(options.poolSize !== undefined ? { poolSize: options.poolSize } : {}),
  });
}

/** A plain client on the test database, for looking behind the store. */
async function withClient<T>(body: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: (await testDatabase()).url });
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.end();
  }
}

runStoreConformance("postgres", async () => openStore(uniqueSchema()));

// Two store instances on one schema are two gateways: store A publishes, subscribers on A and B hear it.
runBusConformance("postgres (two stores)", async (onListenerError) => {
  const schema = uniqueSchema();
  const onError = (error: unknown, context: string): void => {
    if (context.startsWith("bus listener")) onListenerError(error);
    else unexpectedErrors.push({ error, context });
  };
  const a = await openStore(schema, { onError });
  const b = await openStore(schema, { onError });
  await a.migrate();
  return {
    buses: [a.bus, b.bus],
    close: async () => {
      await Promise.all([a.close(), b.close()]);
    },
  };
});

describe("postgres store", () => {
  it("never claims one request twice when two stores claim concurrently", async () => {
    const schema = uniqueSchema();
    const a = await openStore(schema, { poolSize: 4 });
    const b = await openStore(schema, { poolSize: 4 });
    try {
      await Promise.all([a.migrate(), b.migrate()]);
      const appId = `app-${randomUUID()}`;
      const submitted: string[] = [];
      for (let i = 0; i < 200; i += 1) {
        const store = i % 2 === 0 ? a : b;
        const request = newRequest(appId, { priority: i % 5 === 0 ? "low" : "normal" });
        await store.submit(request, null);
        submitted.push(request.id);
      }
      const claims = new Map<string, string[]>();
      // Four claimers, two per store, take batches of 1 to 4 until the queue is empty.
      await Promise.all(
        [a, a, b, b].map(async (store, claimer) => {
          const owner = `claimer-${claimer}`;
          for (let round = 0; ; round += 1) {
            const batch = await store.claimMany(appId, owner, 30_000, 1 + ((round + claimer) % 4));
            if (batch.length === 0) return;
            for (const record of batch) {
              assert.equal(record.leaseOwner, owner);
              claims.set(record.id, [...(claims.get(record.id) ?? []), owner]);
            }
          }
        }),
      );
      assert.equal(claims.size, 200, "every request was claimed");
      assert.deepEqual([...claims.values()].filter((owners) => owners.length > 1), [], "no request was claimed twice");
      assert.deepEqual(new Set(claims.keys()), new Set(submitted));
      const running = await a.running();
      assert.equal(running.length, 200);
      for (const record of running) assert.equal(record.leaseOwner, claims.get(record.id)?.[0], "the stored owner is the claimer");
      assert.equal((await b.queueDepths()).get(appId) ?? 0, 0);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("never hands a request to two owners when submits with claims and claims run at once on two stores", async () => {
    const schema = uniqueSchema();
    const a = await openStore(schema, { poolSize: 4 });
    const b = await openStore(schema, { poolSize: 4 });
    try {
      await a.migrate();
      const appId = `app-${randomUUID()}`;
      const owners = new Map<string, string[]>();
      const note = (records: readonly RequestRecord[], owner: string): void => {
        for (const r of records) owners.set(r.id, [...(owners.get(r.id) ?? []), owner]);
      };
      const submitted: string[] = [];
      await Promise.all(
        [a, b, a, b].map(async (store, worker) => {
          for (let i = 0; i < 40; i += 1) {
            const owner = `submitter-${worker}-${i}`;
            const request = newRequest(appId, { priority: i % 3 === 0 ? "low" : "normal" });
            submitted.push(request.id);
            const result = await store.submit(request, { owner, leaseMs: 30_000, limit: i % 2 });
            note(result.claimed, owner);
            if (i % 4 === 0) note(await store.claimMany(appId, `claimer-${worker}-${i}`, 30_000, 2), `claimer-${worker}-${i}`);
          }
        }),
      );
      note(await a.claimMany(appId, "sweeper", 30_000, 1_000), "sweeper");
      assert.deepEqual([...owners.entries()].filter(([, o]) => o.length > 1), [], "no request has two owners");
      assert.deepEqual(new Set(owners.keys()), new Set(submitted), "every request was claimed once");
      for (const record of await b.running()) assert.equal(record.leaseOwner, owners.get(record.id)?.[0]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("finishes a request once when two stores race to write its outcome", async () => {
    const schema = uniqueSchema();
    const a = await openStore(schema);
    const b = await openStore(schema);
    try {
      await a.migrate();
      const appId = `app-${randomUUID()}`;
      const ids: string[] = [];
      for (let i = 0; i < 20; i += 1) ids.push((await a.submit(newRequest(appId), { owner: "runner", leaseMs: 30_000, limit: 1 })).record.id);
      const results = await Promise.all(
        ids.flatMap((id) => [
          a.finish(id, { state: "SUCCEEDED", output: { by: "a" }, statusCode: 200, error: null, errorType: null, billableUnits: 1 }, { owner: "runner", attempt: 1 }),
          b.finish(id, { state: "FAILED", output: null, statusCode: 500, error: "lost", errorType: "x", billableUnits: null }),
        ]),
      );
      const written = results.filter((r): r is RecordWithId => r !== null);
      assert.equal(written.length, 20, "exactly one outcome per request");
      assert.deepEqual(new Set(written.map((r) => r.id)), new Set(ids));
      const usage = await b.listUsage({ appId });
      assert.equal(usage.length, 20, "one usage record per request");
      for (const u of usage) assert.equal(u.state, written.find((r) => r.id === u.requestId)?.state);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("migrates idempotently, also when two stores migrate at once", async () => {
    const schema = uniqueSchema();
    const a = await openStore(schema);
    const b = await openStore(schema);
    try {
      await Promise.all([a.migrate(), b.migrate(), a.migrate()]);
      await a.enqueue(newRequest("migrate-app", { id: "before-second-migrate" }));
      await Promise.all([a.migrate(), b.migrate()]);
      assert.equal((await b.get("before-second-migrate"))?.state, "QUEUED");
      await withClient(async (client) => {
        const versions = await client.query<{ version: number }>(`SELECT version FROM ${schema}.darkroom_migrations ORDER BY version`);
        assert.deepEqual(
          versions.rows.map((r) => r.version),
          Array.from({ length: LATEST_SCHEMA_VERSION }, (_, i) => i + 1),
          "each migration recorded once",
        );
        const tables = await client.query<{ tablename: string }>(`SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`, [schema]);
        assert.deepEqual(
          tables.rows.map((r) => r.tablename),
          [...STORE_TABLES, "bus_spill", "darkroom_migrations", "request_log_counts"].sort(),
        );
      });
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("refuses a database from a newer schema version", async () => {
    const schema = uniqueSchema();
    const store = await openStore(schema);
    try {
      await store.migrate();
      await withClient((client) => client.query(`INSERT INTO ${schema}.darkroom_migrations VALUES ($1, 0)`, [LATEST_SCHEMA_VERSION + 1]));
      await assert.rejects(store.migrate(), /newer than this build supports/);
    } finally {
      await store.close();
    }
  });

  it("lists a lease that expired in real time, and keeps one that was renewed", async () => {
    const store = await openStore(uniqueSchema());
    try {
      await store.migrate();
      const appId = `app-${randomUUID()}`;
      await store.enqueue(newRequest(appId));
      await store.enqueue(newRequest(appId));
      const lapsing = required(await store.claim(appId, "slow-runner", 100));
      const renewed = required(await store.claim(appId, "live-runner", 100));
      assert.deepEqual(await store.expiredLeases(Date.now()), [], "nothing expired yet");
      await sleep(60);
      assert.equal(await store.heartbeat(renewed.id, "live-runner", 60_000), true);
      await sleep(80);
      const expired = await store.expiredLeases(Date.now());
      assert.deepEqual(expired.map((r) => r.id), [lapsing.id]);
      assert.equal(expired[0]?.leaseOwner, "slow-runner");
      // Recovery requeues it; the late runner's result is then refused.
      assert.equal((await store.requeue(lapsing.id, { owner: "slow-runner", attempt: 1 }, EXHAUSTED))?.state, "QUEUED");
      assert.equal(await store.finish(lapsing.id, { ...EXHAUSTED, state: "SUCCEEDED" }, { owner: "slow-runner", attempt: 1 }), null);
      assert.deepEqual(await store.expiredLeases(Date.now()), []);
    } finally {
      await store.close();
    }
  });

  it("keeps JSON text exact and accepts NUL characters in logs and errors", async () => {
    const store = await openStore(uniqueSchema());
    try {
      await store.migrate();
      const appId = `app-${randomUUID()}`;
      const input = { nul: "a\u0000b", z: 1, a: 2, lone: "\ud800", big: 12345678901234567890 };
      const created = await store.enqueue(newRequest(appId, { input }));
      assert.deepEqual((await store.get(created.id))?.input, JSON.parse(JSON.stringify(input)));
      assert.deepEqual(Object.keys((await store.get(created.id))?.input as object), ["nul", "z", "a", "lone", "big"], "key order kept");
      await store.appendLogs(created.id, [{ message: "bytes\u0000here", level: "STDOUT", source: "USER", timestamp: "2025-01-01T00:00:00.000Z" }]);
      assert.equal((await store.getLogs(created.id))[0]?.message, "bytes\uFFFDhere");
      await store.claim(appId, "runner", 30_000);
      const failed = await store.finish(
        created.id,
        { state: "FAILED", output: { detail: "x\u0000y" }, statusCode: 500, error: "boom\u0000", errorType: "runner_error", billableUnits: null },
        { owner: "runner", attempt: 1 },
      );
      assert.equal(failed?.error, "boom\uFFFD");
      assert.deepEqual(failed?.output, { detail: "x\u0000y" });
    } finally {
      await store.close();
    }
  });

  it("keeps delivering bus messages after its listening connection is killed", async () => {
    const schema = uniqueSchema();
    const errors: string[] = [];
    const a = await openStore(schema, { onError: (_error, context) => errors.push(context) });
    const b = await openStore(schema);
    try {
      await a.migrate();
      const got: string[] = [];
      a.bus.subscribe("queue", (m) => got.push(m));
      await a.bus.listening();
      await b.bus.publish("queue", "before");
      await waitUntil(() => got.includes("before"));

      const killed = await withClient(async (client) => {
        const result = await client.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'darkroom-bus' AND datname = current_database()",
        );
        return result.rowCount;
      });
      assert.equal(killed, 1, "one listening connection (only A subscribed)");
      // The lost connection is noticed, reported, and replaced; the subscription is LISTENed again.
      await waitUntil(() => errors.length > 0);
      await a.bus.listening();
      const deadline = Date.now() + 5_000;
      while (!got.includes("after")) {
        assert.ok(Date.now() < deadline, "a message reached the reconnected listener");
        await b.bus.publish("queue", "after");
        await sleep(50);
      }
      assert.match(errors[0] ?? "", /bus listening connection/);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("retries a bus connection that cannot be made, with backoff, and closes without waiting it out", async () => {
    const url = new URL((await testDatabase()).url);
    url.pathname = "/darkroom_test_no_such_database";
    const errors: { at: number; context: string }[] = [];
    const store = createPostgresStore({ url: url.toString(), onError: (_error, context) => errors.push({ at: Date.now(), context }) });
    store.bus.subscribe("queue", () => undefined);
    await waitUntil(() => errors.length >= 3);
    assert.match(errors[0]!.context, /retrying in 100 ms/);
    assert.match(errors[1]!.context, /retrying in 200 ms/);
    assert.ok(errors[2]!.at - errors[1]!.at >= 190, "the wait doubles");
    const closing = Date.now();
    await store.close();
    assert.ok(Date.now() - closing < 1_000, "close cut the backoff short");
  });

  it("deletes spilled bus messages after a minute", async () => {
    const schema = uniqueSchema();
    const store = await openStore(schema);
    try {
      await store.migrate();
      await withClient((client) => client.query(`INSERT INTO ${schema}.bus_spill (message, created_at) VALUES ('old', $1)`, [Date.now() - 61_000]));
      await store.bus.publish("request", "y".repeat(10_000));
      const left = await withClient((client) => client.query<{ message: string }>(`SELECT message FROM ${schema}.bus_spill`));
      assert.deepEqual(left.rows.map((r) => r.message.length), [10_000]);
    } finally {
      await store.close();
    }
  });

  it("reported no unexpected background errors", () => {
    assert.deepEqual(unexpectedErrors, []);
  });
});

type RecordWithId = RequestRecord;

function required<T>(value: T | null | undefined): T {
  assert.ok(value !== null && value !== undefined);
  return value;
}

async function waitUntil(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    assert.ok(Date.now() < deadline, "timed out");
    await sleep(10);
  }
}
