/**
 * The SQLite driver: the shared conformance suite on a real file, plus what only a file-backed
 * embedded database has to prove: committed enqueues survive kill -9, migrations are idempotent and
 * data survives reopening.
 * @module
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { LATEST_SCHEMA_VERSION, readSchemaVersion } from "../../src/store/sqlite/schema.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { NewRequest, Store } from "../../src/store/store.js";
import { EXHAUSTED, newRequest as newStoreRequest } from "../helpers/store-requests.js";
import { runStoreConformance, STORE_TABLES } from "./store.case.js";

const PROJECT_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ENQUEUE_CHILD = fileURLToPath(new URL("./fixtures/enqueue-until-killed.ts", import.meta.url));

const tempDirs: string[] = [];

after(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function freshDbPath(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "darkroom-sqlite-"));
  tempDirs.push(dir);
  return path.join(dir, "darkroom.db");
}

runStoreConformance("sqlite", async () => createSqliteStore({ path: await freshDbPath() }));

describe("sqlite store", () => {
  it("works in memory", async () => {
    const store = createSqliteStore({ path: ":memory:" });
    try {
      const created = await store.enqueue(newRequest("memory-app", "in-memory"));
      assert.deepEqual(await store.get("in-memory"), created);
    } finally {
      await store.close();
    }
  });

  it("keeps every reported enqueue when the process is killed with SIGKILL", async () => {
    const dbPath = await freshDbPath();
    const child = spawn(process.execPath, ["--import", "tsx", ENQUEUE_CHILD, dbPath, "durable-app", "1000000"], {
      cwd: PROJECT_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      stderr += chunk;
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("close", (_code, signal) => resolve(signal)));

    const reported: string[] = [];
    // Every line is read, also those still in the pipe when the kill lands: the child printed them
    // after their enqueue resolved, so they count as acknowledged.
    for await (const line of createInterface({ input: child.stdout })) {
      const match = /^enqueued (\S+)$/.exec(line);
      if (!match?.[1]) continue;
      reported.push(match[1]);
      if (reported.length === 500) child.kill("SIGKILL");
    }
    const signal = await exited;
    assert.equal(signal, "SIGKILL", `the child was killed mid-run (stderr: ${stderr})`);
    assert.ok(reported.length >= 500, `the child reported ${reported.length} enqueues (stderr: ${stderr})`);

    const store = createSqliteStore({ path: dbPath });
    try {
      const missing: string[] = [];
      for (const id of reported) {
        const record = await store.get(id);
        if (record?.state !== "QUEUED" || record.appId !== "durable-app") missing.push(id);
      }
      assert.deepEqual(missing, [], "every acknowledged enqueue is in the database");
      assert.ok(((await store.queueDepths()).get("durable-app") ?? 0) >= reported.length);
    } finally {
      await store.close();
    }
  });

  it("migrates idempotently and records the schema version", async () => {
    const dbPath = await freshDbPath();
    const store = createSqliteStore({ path: dbPath });
    try {
      await store.migrate();
      await store.enqueue(newRequest("migrate-app", "before-second-migrate"));
      await store.migrate();
      assert.equal((await store.get("before-second-migrate"))?.state, "QUEUED");
    } finally {
      await store.close();
    }

    const db = new Database(dbPath, { readonly: true });
    try {
      assert.equal(readSchemaVersion(db), LATEST_SCHEMA_VERSION);
      assert.ok(LATEST_SCHEMA_VERSION >= 1);
      const tables = db
        .prepare<[], { name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
        .all()
        .map((row) => row.name);
      assert.deepEqual(tables, [...STORE_TABLES, "queue_counts"].sort());
      assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    } finally {
      db.close();
    }

    // A third open of an up-to-date file must not fail on "table already exists".
    const reopened = createSqliteStore({ path: dbPath });
    await reopened.migrate();
    await reopened.close();
  });

  it("upgrades a version 1 file to the latest schema, keeping its data", async () => {
    const dbPath = await freshDbPath();
    const first = createSqliteStore({ path: dbPath });
    await first.migrate();
    await first.enqueue(newRequest("upgrade-app", "from-v1"));
    await first.close();
    // Turn the file back into what version 1 left: no remote_apps table (2), no tenants and fair share
    // (4), no result reuse (9), the claim index over every row and no stored clock (10), user_version 1. (Versions 3 and 5 create their tables only if they are missing; version 6
    // drops indexes that version 4 made.)
    const db = new Database(dbPath);
    db.exec(`
      DROP TABLE remote_apps;
      DROP TABLE tenants;
      DROP INDEX requests_queue_order;
      DROP TRIGGER queue_counts_leave;
      CREATE TRIGGER queue_counts_leave AFTER UPDATE OF state ON requests
        WHEN OLD.state = 'QUEUED' AND NEW.state <> 'QUEUED' BEGIN
        UPDATE queue_counts SET queued = queued - 1 WHERE app_id = OLD.app_id AND priority_rank = OLD.priority_rank;
      END;
      ALTER TABLE queue_counts DROP COLUMN clock;
      ALTER TABLE requests DROP COLUMN tenant;
      ALTER TABLE requests DROP COLUMN fair_tag;
      CREATE INDEX requests_claim_order ON requests (app_id, state, priority_rank, created_at, seq);
      DROP INDEX api_keys_max_concurrency;
      ALTER TABLE api_keys DROP COLUMN max_concurrency;
      ALTER TABLE api_keys DROP COLUMN tenant;
      ALTER TABLE api_keys DROP COLUMN limits;
      DROP INDEX usage_tenant_finished;
      ALTER TABLE usage DROP COLUMN tenant;
      ALTER TABLE usage DROP COLUMN cache;
      ALTER TABLE requests DROP COLUMN cache;
      ALTER TABLE requests DROP COLUMN reused_from;
      DROP TABLE result_cache;
      DROP TABLE runners;
      DROP TABLE prediction_webhooks;
      ALTER TABLE webhooks DROP COLUMN scheme;
    `);
    db.pragma("user_version = 1");
    db.close();
    const upgraded = createSqliteStore({ path: dbPath });
    try {
      await upgraded.migrate();
      const kept = await upgraded.get("from-v1");
      assert.equal(kept?.state, "QUEUED");
      assert.equal(kept?.tenant, "", "a request from before tenants belongs to none");
      assert.equal(await upgraded.countLive({ tenant: "" }, "QUEUED", 10), 1, "the live counts are read from the file");
      assert.deepEqual((await upgraded.claimMany("upgrade-app", "runner", 1_000, 5)).map((r) => r.id), ["from-v1"]);
      await upgraded.saveRemoteApp({ id: "acme/app", manifest: "{}", updatedAt: 1 });
      assert.equal((await upgraded.listRemoteApps()).length, 1);
    } finally {
      await upgraded.close();
    }
  });

  it("refuses a database from a newer schema version", async () => {
    const dbPath = await freshDbPath();
    const db = new Database(dbPath);
    db.pragma(`user_version = ${LATEST_SCHEMA_VERSION + 1}`);
    db.close();
    assert.throws(() => createSqliteStore({ path: dbPath }), /newer than this build supports/);
  });

  it("keeps all data across closing and reopening the file", async () => {
    const dbPath = await freshDbPath();
    let store: Store = createSqliteStore({ path: dbPath });
    await store.enqueue(newRequest("reopen-app", "running-one"));
    await store.enqueue(newRequest("reopen-app", "queued-one"));
    await store.claim("reopen-app", "runner", 60_000, 1_000);
    await store.appendLogs("queued-one", [{ message: "hello", level: "INFO", source: "USER", timestamp: "2025-01-01T00:00:00.000Z" }]);
    await store.createKey({ id: "key_1", secretHash: "scrypt$x", name: "k", scope: "admin", createdAt: 1, revokedAt: null, lastUsedAt: null, tenant: null, limits: {} });
    await store.recordUsage({
      requestId: "done",
      keyId: "key_1",
      tenant: "team",
      appId: "reopen-app",
      endpoint: "",
      state: "SUCCEEDED",
      queueMs: 1,
      runMs: 2,
      billableUnits: 3,
      finishedAt: 4,
    });
    const webhook = await store.enqueueWebhook({ requestId: "queued-one", url: "https://h.example", body: "{}", now: 5 });
    const before = {
      queued: await store.get("queued-one"),
      running: await store.get("running-one"),
    };
    await store.close();

    store = createSqliteStore({ path: dbPath });
    try {
      assert.deepEqual(await store.get("queued-one"), before.queued);
      assert.deepEqual(await store.get("running-one"), before.running);
      assert.deepEqual(ids(await store.running()), ["running-one"]);
      assert.equal(await store.queuePosition("queued-one"), 0);
      assert.equal((await store.getLogs("queued-one"))[0]?.message, "hello");
      assert.equal((await store.getKey("key_1"))?.scope, "admin");
      assert.equal((await store.listUsage({}))[0]?.billableUnits, 3);
      assert.deepEqual(await store.listWebhooks("queued-one"), [{ job: webhook, attempts: [] }]);
      // The live counts (kept in memory while the store is open) are read back from the file.
      assert.equal(await store.countLive({ tenant: "" }, "QUEUED", 10), 1);
      assert.equal(await store.countLive({ tenant: "" }, "RUNNING", 10), 1);
      // The sequence continues after reopening, so new requests still queue behind old ones.
      await store.enqueue(newRequest("reopen-app", "after-reopen"));
      assert.equal(await store.queuePosition("after-reopen"), 1);
    } finally {
      await store.close();
    }
  });
});

describe("sqlite store: live counts in memory", () => {
  it("takes back the counts of a write the database rolled back, and keeps those it committed", async () => {
    const store = createSqliteStore({ path: await freshDbPath() });
    try {
      const tenant = "rolled-back";
      await store.submit(newStoreRequest("live-app", { id: "existing", tenant }), null);
      // One turn: a new request, then one whose id is taken. The duplicate fails the batch's
      // transaction, which the group commit runs again write by write: the good one is counted once.
      const outcomes = await Promise.allSettled([
        store.submit(newStoreRequest("live-app", { id: "fresh", tenant }), null),
        store.submit(newStoreRequest("live-app", { id: "existing", tenant }), null),
      ]);
      assert.equal(outcomes[0]?.status, "fulfilled");
      assert.equal(outcomes[1]?.status, "rejected");
      assert.equal(await store.countLive({ tenant }, "QUEUED", 100), 2);
      const [claimed] = await store.claimMany("live-app", "runner", 60_000, 1);
      assert.ok(claimed);
      assert.equal(await store.countLive({ tenant }, "RUNNING", 100), 1);
      assert.equal(await store.countLive({ tenant }, "QUEUED", 100), 1);
    } finally {
      await store.close();
    }
  });

  it("counts on a file with many finished requests and a few live ones, after reopening", async () => {
    const dbPath = await freshDbPath();
    let store: Store = createSqliteStore({ path: dbPath });
    const tenant = "busy";
    for (let i = 0; i < 50; i++) await store.enqueue(newStoreRequest("history-app", { tenant, keyId: "key_busy" }));
    for (const [i, r] of (await store.claimMany("history-app", "runner", 60_000, 45)).entries()) {
      if (i % 3 !== 0) await store.finish(r.id, { state: "SUCCEEDED", output: {}, statusCode: 200, error: null, errorType: null, billableUnits: null }, { owner: "runner", attempt: 1 });
    }
    const before = [await store.countLive({ tenant }, "QUEUED", 100), await store.countLive({ tenant }, "RUNNING", 100), await store.countLive({ keyId: "key_busy" }, "RUNNING", 100)];
    assert.equal(before[0], 5);
    await store.close();
    store = createSqliteStore({ path: dbPath });
    try {
      const after = [await store.countLive({ tenant }, "QUEUED", 100), await store.countLive({ tenant }, "RUNNING", 100), await store.countLive({ keyId: "key_busy" }, "RUNNING", 100)];
      assert.deepEqual(after, before);
      assert.equal(after[1], (await store.running()).length);
    } finally {
      await store.close();
    }
  });

  it("carries each queue's fair-share clock across reopening the file", async () => {
    const dbPath = await freshDbPath();
    let store: Store = createSqliteStore({ path: dbPath });
    const flood: string[] = [];
    for (let i = 0; i < 8; i++) flood.push((await store.enqueue(newStoreRequest("clock-app", { tenant: "flood" }))).id);
    const running = await store.claimMany("clock-app", "runner", 60_000, 8);
    assert.deepEqual(ids(running), flood);
    await store.close();
    store = createSqliteStore({ path: dbPath });
    try {
      // The clock stands at the last flood request's tag. A newcomer is tagged there, so the flood's
      // last request, put back in the queue with its tag, is still ahead of it; a clock read as 0
      // would put the newcomer first.
      const newcomer = await store.enqueue(newStoreRequest("clock-app", { tenant: "newcomer" }));
      const last = flood.at(-1) as string;
      assert.equal((await store.requeue(last, { owner: "runner", attempt: 1 }, EXHAUSTED))?.state, "QUEUED");
      assert.deepEqual(ids(await store.claimMany("clock-app", "runner", 60_000, 2)), [last, newcomer.id]);
    } finally {
      await store.close();
    }
  });
});

function newRequest(appId: string, id: string): NewRequest {
  return newStoreRequest(appId, { id, input: { hello: "world" }, maxAttempts: 1 });
}

function ids(records: readonly { id: string }[]): string[] {
  return records.map((r) => r.id);
}
