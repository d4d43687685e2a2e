/**
 * Driver selection: SQLite in the data folder without a database URL, PostgreSQL for its URLs, and a
 * clear refusal of anything else that does not leak the URL's password.
 * @module
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { openStore } from "../../src/store/open-store.js";
import { createTestDatabase, type TestDatabase } from "./pg-database.js";

let database: TestDatabase | null = null;
after(async () => {
  await database?.drop();
});

describe("openStore", () => {
  it("opens the SQLite store in the data folder when no database URL is set", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), "darkroom-open-store-"));
    try {
      const store = await openStore({ databaseUrl: null, dataDir });
      try {
        assert.equal(store.name, "sqlite");
        assert.equal(store.bus.distributed, false);
        await store.migrate();
        assert.ok(existsSync(path.join(dataDir, "darkroom.db")));
      } finally {
        await store.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("opens the PostgreSQL store for postgres:// and postgresql:// URLs", async () => {
    database = await createTestDatabase();
    for (const url of [database.url, database.url.replace(/^postgres:/, "postgresql:")]) {
      const store = await openStore({ databaseUrl: url, dataDir: "unused" });
      try {
        assert.equal(store.name, "postgres");
        assert.equal(store.bus.distributed, true);
        await store.migrate();
        assert.deepEqual(await store.listKeys(), []);
      } finally {
        await store.close();
      }
    }
  });

  it("refuses other URLs without repeating them", async () => {
    await assert.rejects(openStore({ databaseUrl: "mysql://root:hunter2@db/darkroom", dataDir: "unused" }), (error: Error) => {
      assert.match(error.message, /Unsupported database URL scheme "mysql"/);
      assert.doesNotMatch(error.message, /hunter2/);
      return true;
    });
    await assert.rejects(openStore({ databaseUrl: "darkroom.db", dataDir: "unused" }), /Unsupported database URL scheme/);
  });
});
