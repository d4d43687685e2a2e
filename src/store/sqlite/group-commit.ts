/**
 * Group commit for SQLite writes. Writes issued in the same event-loop turn run in one transaction,
 * and every caller's promise settles only after that transaction has committed. One failing write
 * does not undo the others: the batch is then run again with each write in its own savepoint. Durability per write is unchanged —
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
  /** Reused: better-sqlite3 turns a nested call into a savepoint; making one per write is costly. */
  readonly #savepoint: (write: () => unknown) => unknown;
  #pending: PendingWrite[] = [];
  #scheduled = false;

  readonly #batchTransaction: Database.Transaction<(batch: PendingWrite[], isolate: boolean) => void>;

  constructor(db: Database.Database) {
    this.#savepoint = db.transaction((write: () => unknown) => write());
    this.#batchTransaction = db.transaction((batch: PendingWrite[], isolate: boolean) => this.#runBatch(batch, isolate));
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
    try {
      this.#commit(batch, false);
    } catch (err) {
      if (!(err instanceof WriteFailed)) return this.#rejectAll(batch, err);
      // One write failed and took the whole transaction with it. Run the batch again, this time each
      // write in its own savepoint so that only the failing one is undone. Writes are plain database
      // work, so running them again after a rollback is the same as running them once.
      try {
        this.#commit(batch, true);
      } catch (retryErr) {
        return this.#rejectAll(batch, retryErr);
      }
    }
    for (const write of batch) {
      const outcome = write.outcome;
      if (!outcome) write.reject(new Error("write did not run"));
      else if (outcome.ok) write.resolve(outcome.value);
      else write.reject(outcome.error);
    }
  }

  /**
   * Runs the batch in one transaction. Without savepoints (the common case: nothing fails) a failing
   * write aborts the transaction with WriteFailed; with them, it is rolled back alone and recorded.
   * A savepoint costs two statements per write, which is a large part of a cheap write's cost.
   */
  #commit(batch: PendingWrite[], isolate: boolean): void {
    this.#batchTransaction.immediate(batch, isolate);
  }

  #runBatch(batch: PendingWrite[], isolate: boolean): void {
    for (const write of batch) {
      try {
        write.outcome = { ok: true, value: isolate ? this.#savepoint(write.run) : write.run() };
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        if (!isolate) throw new WriteFailed(error);
        write.outcome = { ok: false, error };
      }
    }
  }

  #rejectAll(batch: PendingWrite[], err: unknown): void {
    const error = err instanceof WriteFailed ? err.cause : err instanceof Error ? err : new Error(String(err));
    for (const write of batch) write.reject(error);
  }
}

/** A write's own error, thrown to abort a batch run without savepoints. */
class WriteFailed extends Error {
  override readonly cause: Error;
  constructor(cause: Error) {
    super(cause.message);
    this.cause = cause;
  }
}
