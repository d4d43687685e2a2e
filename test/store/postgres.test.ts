/**
 * The PostgreSQL driver: the shared conformance suite (each test in a fresh schema of a database
 * made for this file), plus what only a shared server has to prove: two stores (two gateways)
 * claiming from one queue, concurrent migrations, leases that expire.
 * @module
 */
import { after } from "node:test";
import { createPostgresStore } from "../../src/store/postgres/postgres-store.js";
import { createTestDatabase, type TestDatabase, uniqueSchema } from "./pg-database.js";
import { runStoreConformance } from "./store.case.js";

let database: Promise<TestDatabase> | null = null;
function testDatabase(): Promise<TestDatabase> {
  database ??= createTestDatabase();
  return database;
}

after(async () => {
  if (database) await (await database).drop();
});

runStoreConformance("postgres", async () => createPostgresStore({ url: (await testDatabase()).url, schema: uniqueSchema() }));
