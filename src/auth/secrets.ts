/**
 * Hashing of API key secrets at rest, and a short-lived cache of successful checks.
 *
 * Secrets are stored as scrypt hashes, `scrypt$N$r$p$saltB64$hashB64`, so that a leaked database does
 * not hand out working keys. Generated secrets are 256 random bits and would be safe behind any hash,
 * but an operator-chosen `DARKROOM_ADMIN_KEY` may be weak, and scrypt makes guessing it expensive.
 * N = 2^14 (r 8, p 1, 16 MiB, tens of ms) is the classic interactive-login setting: costly for a guesser,
 * tolerable once per key.
 *
 * Paying that on every API call would not be tolerable, hence {@link SecretVerifier}: it remembers a
 * successful check for a minute, keyed by sha256(id:secret). A plain sha256 is fine there because the
 * cache lives only in memory, only ever holds secrets that were just proven right, and the raw secret
 * never becomes a map key. Each entry also remembers the stored hash it matched, so replacing a key's hash
 * (a new `DARKROOM_ADMIN_KEY`) makes the old secret miss at once; revocation is checked by the caller on
 * the key record before the cache is consulted. Failures are never cached, so guessing can not fill it.
 * @module
 */
import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";

const N = 2 ** 14;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;

function scryptAsync(secret: string, salt: Buffer, keyLength: number, options: ScryptOptions): Promise<Buffer> {
  // The callback form runs on libuv's thread pool, so hashing never stalls the event loop.
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** scrypt needs 128·N·r bytes; Node refuses above `maxmem` (32 MiB by default), so ask for what is due. */
function maxmemFor(n: number, r: number): number {
  return 128 * n * r * 2;
}

export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(SALT_LENGTH);
  const hash = await scryptAsync(secret, salt, KEY_LENGTH, { N, r: R, p: P, maxmem: maxmemFor(N, R) });
  return `scrypt$${N}$${R}$${P}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

/**
 * Checks `secret` against an encoded hash. Parameters come from the encoding (so raising N later keeps
 * old hashes working) but are bounded, so a corrupted row can not make a check allocate gigabytes.
 */
export async function verifySecret(secret: string, encoded: string): Promise<boolean> {
  const parts = encoded.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const n = Number(parts[1]);
  const r = Number(parts[2]);
  const p = Number(parts[3]);
  const salt = Buffer.from(parts[4] ?? "", "base64");
  const expected = Buffer.from(parts[5] ?? "", "base64");
  const powerOfTwo = Number.isInteger(n) && n >= 2 && n <= 2 ** 20 && (n & (n - 1)) === 0;
  if (!powerOfTwo || !Number.isInteger(r) || r < 1 || r > 32 || !Number.isInteger(p) || p < 1 || p > 16) return false;
  if (salt.length === 0 || expected.length < 16 || expected.length > 64) return false;
  const actual = await scryptAsync(secret, salt, expected.length, { N: n, r, p, maxmem: maxmemFor(n, r) });
  return timingSafeEqual(actual, expected);
}

export interface SecretVerifierOptions {
  /** How long a successful check is remembered, ms. Default 60 s. */
  ttlMs?: number;
  /** Most remembered checks; the least recently used goes first. Default 1024. */
  maxEntries?: number;
  now?: () => number;
}

/** {@link verifySecret} with an in-memory LRU of recent successes (see the module comment). */
export class SecretVerifier {
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  /** A Map iterates in insertion order; re-inserting on each hit makes the first entry the least recent. */
  private readonly cache = new Map<string, { encoded: string; expiresAt: number; id: string }>();

  constructor(options: SecretVerifierOptions = {}) {
    this.ttlMs = options.ttlMs ?? 60_000;
    this.maxEntries = options.maxEntries ?? 1024;
    this.now = options.now ?? Date.now;
  }

  /**
   * Whether this secret verified against `encoded` within the TTL: true without hashing, else false.
   * A hit starts the TTL again: a key in steady use is never hashed again (a throttled address must
   * not lock out a busy client once a minute), while a replaced hash or a revocation (checked on the
   * key record first) still ends it at once.
   */
  remembers(id: string, secret: string, encoded: string): boolean {
    const cacheKey = createHash("sha256").update(`${id}:${secret}`).digest("base64");
    const hit = this.cache.get(cacheKey);
    if (hit === undefined || hit.encoded !== encoded || hit.expiresAt <= this.now()) return false;
    hit.expiresAt = this.now() + this.ttlMs;
    return true;
  }

  async verify(id: string, secret: string, encoded: string): Promise<boolean> {
    const cacheKey = createHash("sha256").update(`${id}:${secret}`).digest("base64");
    const hit = this.cache.get(cacheKey);
    if (hit) {
      this.cache.delete(cacheKey);
      if (hit.encoded === encoded && hit.expiresAt > this.now()) {
        this.cache.set(cacheKey, hit);
        return true;
      }
    }
    if (!(await verifySecret(secret, encoded))) return false;
    this.cache.set(cacheKey, { encoded, expiresAt: this.now() + this.ttlMs, id });
    while (this.cache.size > this.maxEntries) {
      const oldest = this.cache.keys().next();
      if (oldest.done) break;
      this.cache.delete(oldest.value);
    }
    return true;
  }

  /** Drops every remembered check of key `id` (on revocation or a secret change). */
  forget(id: string): void {
    for (const [k, v] of this.cache) if (v.id === id) this.cache.delete(k);
  }

  get size(): number {
    return this.cache.size;
  }
}
