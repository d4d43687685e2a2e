/**
 * Signed storage URLs: a URL that grants one method on one key until an expiry, without an API key.
 * The query carries `expires` (unix seconds) and `sig`, an HMAC-SHA256 over (method, key, expires)
 * with a server secret. Changing any of the three, or the signature, invalidates the URL.
 * @module
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, closeSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import path from "node:path";
import { PlatformError } from "../core/errors.js";

export type SignedMethod = "GET" | "PUT";

/** A parsed query string as Fastify gives it, a URLSearchParams, or the raw `a=b&c=d` text. */
export type SignedQuery = URLSearchParams | string | Record<string, unknown>;

export interface UrlSigner {
  /** The query string (`expires=…&sig=…`, no leading `?`) that authorises `method` on `key` until `expiresAtSec`. */
  sign(method: SignedMethod, key: string, expiresAtSec: number): string;
  /** Throws ERR_SIGNATURE_INVALID unless `query` is a valid, unexpired signature for `method` on `key`. */
  verify(method: string, key: string, query: SignedQuery): void;
}

export interface UrlSignerOptions {
  /** Clock in unix ms; tests inject one. */
  now?: () => number;
}

const SECRET_BYTES = 32;
/** Bumped if the signed string's format ever changes, so old signatures cannot match a new meaning. */
const SCHEME = "darkroom-url-v1";
const SIG_BYTES = 32;

export function createUrlSigner(secret: Buffer, options: UrlSignerOptions = {}): UrlSigner {
  if (secret.length < 16) throw new PlatformError("ERR_INTERNAL", { message: "URL signing secret is too short" });
  const now = options.now ?? Date.now;

  // JSON keeps the three fields unambiguous whatever characters a key holds.
  const mac = (method: string, key: string, expires: string): Buffer =>
    createHmac("sha256", secret).update(JSON.stringify([SCHEME, method, key, expires])).digest();

  return {
    sign(method, key, expiresAtSec) {
      if (method !== "GET" && method !== "PUT") throw new PlatformError("ERR_INTERNAL", { message: `cannot sign method ${String(method)}` });
      if (!Number.isSafeInteger(expiresAtSec) || expiresAtSec < 0) {
        throw new PlatformError("ERR_INTERNAL", { message: `expiry must be whole unix seconds, got ${expiresAtSec}` });
      }
      const expires = String(expiresAtSec);
      return new URLSearchParams({ expires, sig: mac(method, key, expires).toString("base64url") }).toString();
    },

    verify(method, key, query) {
      const invalid = (why: string): PlatformError =>
        new PlatformError("ERR_SIGNATURE_INVALID", { message: `Signed URL is invalid: ${why}` });
      const { expires, sig } = readQuery(query);
      if (expires === undefined || sig === undefined) throw invalid("missing expires or sig");
      if (!/^\d{1,15}$/.test(expires)) throw invalid("malformed expires");
      const given = Buffer.from(sig, "base64url");
      // Checked before comparing: timingSafeEqual requires equal lengths, and a wrong length leaks nothing.
      if (given.length !== SIG_BYTES || given.toString("base64url") !== sig) throw invalid("malformed sig");
      const expected = mac(method.toUpperCase(), key, expires);
      if (!timingSafeEqual(given, expected)) throw invalid("signature mismatch");
      // Expiry after the signature, so a tampered expiry is reported as tampering, not as expired.
      if (Number(expires) * 1000 <= now()) throw new PlatformError("ERR_SIGNATURE_INVALID", { message: "Signed URL has expired" });
    },
  };
}

function readQuery(query: SignedQuery): { expires: string | undefined; sig: string | undefined } {
  if (typeof query === "string" || query instanceof URLSearchParams) {
    const params = typeof query === "string" ? new URLSearchParams(query.startsWith("?") ? query.slice(1) : query) : query;
    // A repeated parameter is ambiguous (which one did the signer mean?), so it counts as missing.
    const one = (name: string): string | undefined => {
      const all = params.getAll(name);
      return all.length === 1 ? all[0] : undefined;
    };
    return { expires: one("expires"), sig: one("sig") };
  }
  const one = (name: string): string | undefined => {
    const value = query[name];
    return typeof value === "string" ? value : undefined;
  };
  return { expires: one("expires"), sig: one("sig") };
}

/**
 * Reads the signing secret from `file`, creating it (32 random bytes, mode 0600) on first use. The
 * new file is fully written under a temporary name and then hard-linked into place, which fails if
 * another process got there first; in that case that process's secret is used.
 */
export function loadOrCreateSecret(file: string): Buffer {
  try {
    return readSecret(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  const fd = openSync(temp, "wx", 0o600);
  try {
    writeSync(fd, randomBytes(SECRET_BYTES));
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(temp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  } finally {
    unlinkSync(temp);
  }
  return readSecret(file);
}

function readSecret(file: string): Buffer {
  const secret = readFileSync(file);
  if (secret.length !== SECRET_BYTES) {
    // Regenerating would silently invalidate every URL already handed out; make the operator decide.
    throw new PlatformError("ERR_INTERNAL", {
      message: `URL signing secret ${file} holds ${secret.length} bytes, expected ${SECRET_BYTES}; delete it to generate a new one`,
    });
  }
  // The secret grants access to every stored file; tighten permissions a copy or restore may have loosened.
  // Best effort: a file owned by someone else (read-only mount, other user) is still usable.
  if (process.platform !== "win32") {
    try {
      chmodSync(file, 0o600);
    } catch {
      /* keep going with the permissions it has */
    }
  }
  return secret;
}
