/**
 * Group commit for SQLite writes. Writes issued in the same event-loop turn run in one transaction,
 * each inside its own savepoint (so one failing write does not undo the others), and every caller's
 * promise settles only after that transaction has committed. Durability per write is unchanged —
 * nothing resolves before it is committed — while a burst of N writes costs one commit instead of N.
 * @module
 */
import type Database from "better-sqlite3";

interface PendingWrite {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (reason: Error) => void;
  outcome?: { ok: true; value: unknown } | { ok: false; error: Error };
}

export class GroupCommit {
  readonly #db: Database.Database;
  /** Reused: better-sqlite3 turns a nested call into a savepoint; making one per write is costly. */
  readonly #savepoint: (write: () => unknown) => unknown;
  #pending: PendingWrite[] = [];
  #scheduled = false;

  constructor(db: Database.Database) {
    this.#db = db;
    this.#savepoint = db.transaction((write: () => unknown) => write());
  }

  /** Runs `write` in the next group transaction; resolves with its result once committed. */
  run<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ run: write, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /** Commits pending writes now (before closing the database). */
  flush(): void {
    if (this.#pending.length > 0) this.#flush();
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    const db = this.#db;
    try {
      db.transaction(() => {
        for (const write of batch) {
          try {
            // A nested transaction is a savepoint: a failed write rolls back alone.
            write.outcome = { ok: true, value: this.#savepoint(write.run) };
          } catch (err) {
            write.outcome = { ok: false, error: err instanceof Error ? err : new Error(String(err)) };
          }
        }
      }).immediate();
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      for (const write of batch) write.reject(error);
      return;
    }
    for (const write of batch) {
      const outcome = write.outcome;
      if (!outcome) write.reject(new Error("write did not run"));
      else if (outcome.ok) write.resolve(outcome.value);
      else write.reject(outcome.error);
    }
  }
}
