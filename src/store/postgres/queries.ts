/**
 * Running statements for the PostgreSQL driver: how values are parsed and written, queries that
 * return rows, and transactions on a pooled connection.
 * @module
 */
import pg from "pg";

/**
 * Per-pool type parsing (the global `pg.types` belongs to every user of pg in the process): `bigint`
 * columns hold unix milliseconds, counts and ids, all far below 2^53, so they are read as numbers.
 */
const INT8_OID = 20;
export const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    if (oid === INT8_OID && format !== "binary") return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format) as unknown;
  }) as pg.CustomTypesConfig["getTypeParser"],
};

/**
 * PostgreSQL text cannot hold U+0000, which SQLite stores and runner output can contain. Free text
 * from runners (log lines, error messages) has it replaced rather than failing the whole write: a
 * refused terminal write would leave the request running. JSON columns need nothing: JSON.stringify
 * escapes it.
 */
export function pgText<T extends string | null>(value: T): T {
  return (value !== null && value.includes("\u0000") ? value.replaceAll("\u0000", "\uFFFD") : value) as T;
}

/** The rows of one statement on `on`; a `name` makes it a prepared statement on each connection. */
export async function selectRows<R extends pg.QueryResultRow>(on: pg.Pool, text: string, values: unknown[], name?: string): Promise<R[]> {
  const result = await on.query<R>(name ? { name, text, values } : { text, values });
  return result.rows;
}

/** Runs `body` in a transaction on a connection of `pool`: committed when it resolves, rolled back when it throws. */
export async function transaction<T>(pool: pg.Pool, body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    const result = await body(client);
    await client.query("COMMIT");
    return result;
  } catch (error) {
    try {
      await client.query("ROLLBACK");
    } catch (rollbackError) {
      // The connection is unusable: have the pool discard it rather than hand it out again.
      broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
    }
    throw error;
  } finally {
    client.release(broken);
  }
}
