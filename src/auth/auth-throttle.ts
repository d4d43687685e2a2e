/**
 * Keeps wrong secrets from being an attack on everyone else. Key ids are not secret (tokens carry
 * them, the admin id is the operator's choice), and each check of a secret costs a scrypt hash on
 * libuv's thread pool, the same four threads that serve file reads: 64 wrong secrets at once used
 * to push honest file reads to 11 s. So:
 *
 * - at most `hashSlots` hashes run at once (the pool keeps threads for disk I/O) and at most
 *   `maxWaiting` wait; past that the attempt is refused with 429 at once;
 * - a failed (id, secret) pair is remembered for `failureMemoryMs` and answered without hashing;
 * - failed hashes are counted per key id and per client address over a one-minute window; past the
 *   budget, further checks that would need a hash are refused with 429 and `Retry-After` until the
 *   window turns. Refusals that cost no hash (an unknown id, a pair that failed a moment ago) count
 *   nowhere. A secret that verified recently skips all of this (the verifier remembers successes
 *   while they are used), so the key's owner keeps working while someone else hammers the same id.
 * @module
 */
import { createHash } from "node:crypto";
import { PlatformError } from "../core/errors.js";

export interface AuthThrottleOptions {
  /** Failed checks allowed per key id per window. Default 30. */
  failuresPerKey?: number;
  /** Failed checks allowed per client address per window. Default 20. */
  failuresPerClient?: number;
  windowMs?: number;
  /** Hashes computed at once. Default 2 of libuv's 4 threads. */
  hashSlots?: number;
  /** Checks waiting for a slot before new ones are refused. Default 64. */
  maxWaiting?: number;
  failureMemoryMs?: number;
  now?: () => number;
}

/** A counter per name for the current window; bounded, since names come from callers. */
class WindowCounter {
  #counts = new Map<string, number>();
  #windowStart: number;

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {
    this.#windowStart = now();
  }

  #roll(): void {
    const now = this.now();
    if (now - this.#windowStart >= this.windowMs) {
      this.#counts.clear();
      this.#windowStart = now;
    }
  }

  count(name: string): number {
    this.#roll();
    return this.#counts.get(name) ?? 0;
  }

  add(name: string): void {
    this.#roll();
    // Past this many names in one window the caller population is itself an attack; the counts
    // restart rather than grow without bound.
    if (this.#counts.size >= 100_000) this.#counts.clear();
    this.#counts.set(name, (this.#counts.get(name) ?? 0) + 1);
  }

  /** Seconds until the window turns. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil((this.#windowStart + this.windowMs - this.now()) / 1000));
  }
}

export class AuthThrottle {
  readonly #perKey: WindowCounter;
  readonly #perClient: WindowCounter;
  readonly #failuresPerKey: number;
  readonly #failuresPerClient: number;
  readonly #hashSlots: number;
  readonly #maxWaiting: number;
  readonly #failureMemoryMs: number;
  readonly #now: () => number;
  readonly #failed = new Map<string, number>();
  readonly #waiting: (() => void)[] = [];
  #running = 0;

  constructor(options: AuthThrottleOptions = {}) {
    this.#now = options.now ?? Date.now;
    const windowMs = options.windowMs ?? 60_000;
    this.#perKey = new WindowCounter(windowMs, this.#now);
    this.#perClient = new WindowCounter(windowMs, this.#now);
    this.#failuresPerKey = options.failuresPerKey ?? 30;
    this.#failuresPerClient = options.failuresPerClient ?? 20;
    this.#hashSlots = options.hashSlots ?? 2;
    this.#maxWaiting = options.maxWaiting ?? 64;
    this.#failureMemoryMs = options.failureMemoryMs ?? 60_000;
  }

  static #pair(keyId: string, secret: string): string {
    return createHash("sha256").update(`${keyId}:${secret}`).digest("base64");
  }

  /** Whether this exact pair failed a moment ago: answered as wrong without another hash. */
  failedRecently(keyId: string, secret: string): boolean {
    const pair = AuthThrottle.#pair(keyId, secret);
    const until = this.#failed.get(pair);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#failed.delete(pair);
    return false;
  }

  /** Throws 429 when the key id or the client is past its failure budget. */
  admit(keyId: string, client: string | undefined): void {
    if (this.#perKey.count(keyId) >= this.#failuresPerKey) throw throttled(this.#perKey.retryAfterSeconds(), "this key id");
    if (client !== undefined && this.#perClient.count(client) >= this.#failuresPerClient) {
      throw throttled(this.#perClient.retryAfterSeconds(), "this address");
    }
  }

  /** A secret that was hashed and did not match. */
  recordFailure(keyId: string, client: string | undefined, secret: string): void {
    this.#perKey.add(keyId);
    if (client !== undefined) this.#perClient.add(client);
    if (this.#failed.size >= 10_000) this.#failed.clear();
    this.#failed.set(AuthThrottle.#pair(keyId, secret), this.#now() + this.#failureMemoryMs);
  }

  /** Runs one hash when a slot is free; refuses at once when too many already wait. */
  async hash<T>(work: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#hashSlots) {
      if (this.#waiting.length >= this.#maxWaiting) throw throttled(1, "the server (too many key checks at once)");
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#running++;
    }
    try {
      return await work();
    } finally {
      // The slot passes straight to the next waiter, so `running` stays counted.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}

function throttled(retryAfterSeconds: number, who: string): PlatformError {
  return new PlatformError("ERR_AUTH_THROTTLED", {
    message: `Too many failed key checks for ${who}; try again in ${retryAfterSeconds} s`,
    headers: { "retry-after": String(retryAfterSeconds) },
  });
}
