/**
 * Group commit for SQLite writes. Writes issued in the same event-loop turn run in one transaction,
 * and every caller's promise settles only after that transaction has committed. One failing write
 * does not undo the others: the batch is then run again with each write in its own savepoint. Durability per write is unchanged —
 * nothing resolves before it is committed — while a burst of N writes costs one commit instead of N.
 *
 * A write that also changes state kept in memory beside the database (live-counts.ts) registers how
 * to undo it with {@link GroupCommit.onRollback}: whatever the database rolls back, the memory follows.
 * @module
 */
import type Database from "better-sqlite3";

interface PendingWrite {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (reason: Error) => void;
  outcome?: { ok: true; value: unknown } | { ok: false; error: Error };
  /** How to undo its in-memory effects, in the order they were made. */
  undo: (() => void)[];
}

export class GroupCommit {
  /** Reused: better-sqlite3 turns a nested call into a savepoint; making one per write is costly. */
  readonly #savepoint: (write: () => unknown) => unknown;
  #pending: PendingWrite[] = [];
  #scheduled = false;
  /** The write running now, whose in-memory effects onRollback() records. */
  #current: PendingWrite | null = null;

  readonly #batchTransaction: Database.Transaction<(batch: PendingWrite[], isolate: boolean) => void>;

  constructor(db: Database.Database) {
    this.#savepoint = db.transaction((write: () => unknown) => write());
    this.#batchTransaction = db.transaction((batch: PendingWrite[], isolate: boolean) => this.#runBatch(batch, isolate));
  }

  /** Runs `write` in the next group transaction; resolves with its result once committed. */
  run<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ run: write, resolve: resolve as (value: unknown) => void, reject, undo: [] });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /**
   * Records how to undo an in-memory effect of the write running now, should its transaction be
   * rolled back. Outside a write (nothing to roll back) it does nothing.
   */
  onRollback(undo: () => void): void {
    this.#current?.undo.push(undo);
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
      this.#undoAll(batch);
      if (!(err instanceof WriteFailed)) return this.#rejectAll(batch, err);
      // One write failed and took the whole transaction with it. Run the batch again, this time each
      // write in its own savepoint so that only the failing one is undone. Writes are plain database
      // work, so running them again after a rollback is the same as running them once.
      try {
        this.#commit(batch, true);
      } catch (retryErr) {
        this.#undoAll(batch);
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
      write.undo = [];
      this.#current = write;
      try {
        write.outcome = { ok: true, value: isolate ? this.#savepoint(write.run) : write.run() };
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        if (!isolate) throw new WriteFailed(error);
        // Its savepoint was rolled back: so are its effects in memory.
        undo(write);
        write.outcome = { ok: false, error };
      } finally {
        this.#current = null;
      }
    }
  }

  /** The whole transaction was rolled back: every write's effects in memory go with it, latest first. */
  #undoAll(batch: PendingWrite[]): void {
    for (let i = batch.length - 1; i >= 0; i--) undo(batch[i] as PendingWrite);
  }

  #rejectAll(batch: PendingWrite[], err: unknown): void {
    const error = err instanceof WriteFailed ? err.cause : err instanceof Error ? err : new Error(String(err));
    for (const write of batch) write.reject(error);
  }
}

function undo(write: PendingWrite): void {
  const steps = write.undo;
  write.undo = [];
  for (let i = steps.length - 1; i >= 0; i--) steps[i]?.();
}

/** A write's own error, thrown to abort a batch run without savepoints. */
class WriteFailed extends Error {
  override readonly cause: Error;
  constructor(cause: Error) {
    super(cause.message);
    this.cause = cause;
  }
}
