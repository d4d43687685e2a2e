/**
 * Opening the SQLite database file: owner-only permissions and the pragmas the driver relies on.
 * @module
 */
import { chmodSync, closeSync, constants as fsConstants, openSync, statSync } from "node:fs";
import Database from "better-sqlite3";
import { PRIVATE_FILE_MODE } from "../../auth/private-file.js";

/** How long a statement waits for another process's write lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

/**
 * The database holds every request's input and output, API key hashes and webhook URLs, so it is
 * owner-only (0600) like the secrets beside it in the data folder (src/auth/private-file.ts). SQLite
 * creates a new file with 0644 less the umask, but gives the `-wal` and `-shm` files it creates the
 * mode of the database file itself; so the database is created here first, empty (which SQLite takes
 * as a new database) and 0600, and files left wider by an earlier version are tightened. `:memory:`
 * and `""` (a temporary database) have no file to protect.
 */
function makeDatabaseFilePrivate(path: string): void {
  if (path === ":memory:" || path === "" || process.platform === "win32") return;
  try {
    // O_CREAT without O_TRUNC: an existing database is opened and left as it is.
    closeSync(openSync(path, fsConstants.O_RDWR | fsConstants.O_CREAT, PRIVATE_FILE_MODE));
  } catch {
    // A missing folder or a read-only file: better-sqlite3's own open reports it in its terms.
    return;
  }
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    let mode: number;
    try {
      mode = statSync(file).mode & 0o777;
    } catch {
      continue; // no such file yet
    }
    // Catches files an earlier version created wider. One this user cannot chmod (owned by another
    // user) is left alone rather than failing the start.
    if (mode !== PRIVATE_FILE_MODE) {
      try {
        chmodSync(file, PRIVATE_FILE_MODE);
      } catch {
        // see above
      }
    }
  }
}

/**
 * Durability: WAL with `synchronous = NORMAL`. A commit appends the transaction to the WAL file with
 * write(2) before the call returns, so the data is in the operating system's page cache; a crash of
 * this process (even kill -9) cannot lose it, because the kernel still writes those pages out. Only
 * the fsync is deferred to checkpoints, so what NORMAL can lose is the last commits before a power
 * loss or kernel crash, never a committed enqueue when only the process dies. FULL would fsync every
 * commit, which costs a disk flush per enqueue for protection this server does not promise.
 */
export function openDatabase(path: string): Database.Database {
  makeDatabaseFilePrivate(path);
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  // Checkpoints run in a worker thread (checkpointer.ts); an in-memory database has no WAL.
  if (path !== ":memory:") db.pragma("wal_autocheckpoint = 0");
  // A fully checkpointed WAL is truncated back to this size rather than left at its peak.
  db.pragma("journal_size_limit = 67108864");
  db.pragma("cache_size = -65536");
  db.pragma("mmap_size = 268435456");
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  db.pragma("foreign_keys = ON");
  return db;
}
