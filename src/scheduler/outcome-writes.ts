/**
 * Writes of runner outcomes that outlive a store outage. A runner that finishes while the database
 * is unreachable (or its disk full) has done the work; dropping its result would fail a request
 * that succeeded, or run it again. So the write is kept and tried again, with backoff, until the
 * store takes it, and meanwhile the request counts as held by this process: the lease reaper does
 * not retry work whose result is only waiting to be written. The write's guard (owner, attempt)
 * still decides when it lands: if another process took the request back in the meantime, the late
 * result is dropped, as any late result is.
 * @module
 */
import { setTimeout as sleep } from "node:timers/promises";
import { outageError } from "../core/outage-errors.js";

export interface OutcomeWritesOptions {
  /** First wait before writing again; doubles up to `maxDelayMs`. */
  firstDelayMs?: number;
  maxDelayMs?: number;
  /** Told once per request when its outcome is kept, and when the store took it. */
  onKept?: (requestId: string, error: unknown) => void;
  onWritten?: (requestId: string, keptMs: number) => void;
}

export class OutcomeWrites {
  readonly #pending = new Set<string>();
  readonly #stop = new AbortController();
  readonly #firstDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #options: OutcomeWritesOptions;

  constructor(options: OutcomeWritesOptions = {}) {
    this.#options = options;
    this.#firstDelayMs = options.firstDelayMs ?? 250;
    this.#maxDelayMs = options.maxDelayMs ?? 5_000;
  }

  /** Whether the outcome of `requestId` is waiting for the store. */
  has(requestId: string): boolean {
    return this.#pending.has(requestId);
  }

  get size(): number {
    return this.#pending.size;
  }

  /**
   * Runs `write` until it returns. An outage (outage-errors.ts) keeps it and tries again; any other
   * error is thrown at once, as is the outage that outlasts `stop()`.
   */
  async write<T>(requestId: string, write: () => Promise<T>): Promise<T> {
    let delay = this.#firstDelayMs;
    let keptAt: number | null = null;
    try {
      for (;;) {
        try {
          const result = await write();
          if (keptAt !== null) this.#options.onWritten?.(requestId, Date.now() - keptAt);
          return result;
        } catch (err) {
          if (this.#stop.signal.aborted || !outageError(err)) throw err;
          if (keptAt === null) {
            keptAt = Date.now();
            this.#pending.add(requestId);
            this.#options.onKept?.(requestId, err);
          }
        }
        // stop() cuts the wait short: one last try, then the error.
        await sleep(delay, undefined, { signal: this.#stop.signal }).catch(() => undefined);
        delay = Math.min(delay * 2, this.#maxDelayMs);
      }
    } finally {
      this.#pending.delete(requestId);
    }
  }

  /**
   * Ends the waiting: each kept write is tried once more and then fails. A request whose result is
   * lost this way is still RUNNING in the store and is retried from its lease, like the work of any
   * process that stopped.
   */
  stop(): void {
    this.#stop.abort();
  }
}
