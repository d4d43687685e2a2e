/**
 * A throwaway PostgreSQL database per test file: created on first use, dropped when the file ends,
 * so test files running side by side never share tables or notification channels. The server is
 * `postgres://postgres@127.0.0.1:5432/postgres` unless `DARKROOM_TEST_DATABASE_URL` names another.
 * @module
 */
import { randomBytes } from "node:crypto";
import pg from "pg";

const SERVER_URL = process.env.DARKROOM_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  /** URL of the new database. */
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `darkroom_test_${randomBytes(6).toString("hex")}`;
  await onServer(`CREATE DATABASE ${name}`);
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    // FORCE ends connections a failed test left open, which would otherwise block the drop.
    drop: () => onServer(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

async function onServer(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: SERVER_URL });
  try {
    await client.connect();
  } catch (err) {
    // Say what is missing, not just ECONNREFUSED: these tests need a real PostgreSQL.
    throw new Error(
      `The PostgreSQL tests need a server at ${new URL(SERVER_URL).host} (user postgres, trust auth) or DARKROOM_TEST_DATABASE_URL; .ci/run starts the machine's PostgreSQL. ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A schema name no other test in the file uses. */
export function uniqueSchema(): string {
  return `t_${randomBytes(6).toString("hex")}`;
}
