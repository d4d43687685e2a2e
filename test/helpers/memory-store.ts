/**
 * A migrated SQLite store in memory: a fresh one per test, for tests of what sits on the store.
 * @module
 */
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { Store } from "../../src/store/store.js";

export async function memoryStore(): Promise<Store> {
  const store = createSqliteStore({ path: ":memory:" });
  await store.migrate();
  return store;
}
