/**
 * Picks the store driver from the configuration: the embedded SQLite file unless a PostgreSQL URL is
 * given. Each driver is imported only when chosen, so a SQLite deployment never loads `pg`.
 * @module
 */
import path from "node:path";
import type { Store } from "./store.js";

export interface OpenStoreOptions {
  /** `postgres://` or `postgresql://` URL; null for the embedded SQLite store. */
  databaseUrl: string | null;
  /** Holds `darkroom.db` when the store is SQLite. */
  dataDir: string;
  /**
   * PostgreSQL only: errors no caller is waiting for (lost connections, throwing bus listeners).
   * @default a process warning
   */
  onError?: (error: unknown, context: string) => void;
}

/** Opens the store; the caller still runs `migrate()` before using it. */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const { databaseUrl } = options;
  if (databaseUrl === null) {
    const { createSqliteStore } = await import("./sqlite/sqlite-store.js");
    return createSqliteStore({ path: path.join(options.dataDir, "darkroom.db") });
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(databaseUrl)?.[1]?.toLowerCase();
  if (scheme === "postgres" || scheme === "postgresql") {
    const { createPostgresStore } = await import("./postgres/postgres-store.js");
    return createPostgresStore({ url: databaseUrl, ...(options.onError ? { onError: options.onError } : {}) });
  }
  // The URL may carry a password: only its scheme goes into the message.
  throw new Error(
    `Unsupported database URL scheme "${scheme ?? "(none)"}": use postgres:// or postgresql://, or leave the database URL unset for the embedded SQLite store`,
  );
}
