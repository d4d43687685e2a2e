/**
 * API keys: creation, the check behind every authenticated call, revocation, and the admin key the
 * server needs before anyone can create keys.
 *
 * A key is `id:secret`, fal's `FAL_KEY` form (docs/api.md, Authentication). Only the id and a scrypt hash of the
 * secret are stored; the secret is shown once, at creation. The clients send it as `Key id:secret`, and
 * `fal auth login`-style clients as `Bearer …`, so both schemes are accepted, and `Bearer <token>` also
 * carries the short-lived tokens of `tokens.ts`.
 *
 * The service also holds what a caller is held to beyond its key's scope, since every check starts
 * from the key: the tenant directory (a key's tenant, its weight and limits) and the per-minute
 * request counts.
 * @module
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import type { UsageLimits } from "../core/tenants.js";
import type { ApiKeyRecord, KeyPatch, Store } from "../store/store.js";
import { AuthThrottle } from "./auth-throttle.js";
import { writePrivateFile } from "./private-file.js";
import { RequestRateLimiter } from "./request-rate-limiter.js";
import { hashSecret, SecretVerifier, verifySecret } from "./secrets.js";
import { TenantDirectory } from "./tenants.js";
import type { TokenClaims, TokenService } from "./tokens.js";

export const ADMIN_KEY_FILE = "admin-key";

export type KeyScope = ApiKeyRecord["scope"];

/** What an authenticated caller may do: a key's scope, or `runner` for runner tokens. */
export type PrincipalScope = KeyScope | "runner";

/** A key record as seen by an authenticated request. */
export interface AuthenticatedKey extends Omit<ApiKeyRecord, "scope"> {
  scope: PrincipalScope;
  /** "token" when the caller showed a short-lived token instead of the key. */
  via: "key" | "token";
  /** The token's claims (with `allowed_apps` the gateway must honour) when `via` is "token". */
  token: TokenClaims | null;
}

/** A new key's settings; without a tenant it is a tenant of its own, without limits it has none. */
export interface NewKey {
  name: string;
  scope: KeyScope;
  tenant?: string | null;
  limits?: UsageLimits;
}

/** What an admin may change on a key (`PATCH /v1/keys/{id}`). */
export type KeySettingsPatch = Pick<KeyPatch, "name" | "tenant" | "limits">;

export interface CreatedKey {
  id: string;
  /** Shown once; only its hash is kept. */
  secret: string;
  record: ApiKeyRecord;
}

export interface AdminKeyResult {
  id: string;
  /** "env": provisioned from DARKROOM_ADMIN_KEY; "generated": created now; "existing": one was there. */
  source: "env" | "generated" | "existing";
  /** `id:secret` when it was generated now, for the server to print this once; null otherwise. */
  credentials: string | null;
  /** Where the generated credentials were saved. */
  file: string | null;
}

/** What an Authorization header carries. */
export type Credentials = { kind: "key"; id: string; secret: string } | { kind: "token"; token: string };

const KEY_ID = /^[A-Za-z0-9._-]{1,128}$/;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Splits `id:secret` at the first colon; null when either side is empty or the id has odd characters. */
export function parseKeyPair(value: string): { id: string; secret: string } | null {
  const colon = value.indexOf(":");
  if (colon <= 0 || colon === value.length - 1) return null;
  const id = value.slice(0, colon);
  const secret = value.slice(colon + 1);
  if (!KEY_ID.test(id) || /\s/.test(secret)) return null;
  return { id, secret };
}

/**
 * Reads `Key id:secret`, `Bearer id:secret` or `Bearer <jwt>` (schemes case-insensitive, as HTTP
 * defines them). A bearer value is a key pair when it has a colon (JWTs never do) and a token otherwise.
 */
export function parseAuthorization(header: string | null | undefined): Credentials | null {
  if (!header) return null;
  const match = /^\s*(\S+)\s+(\S+)\s*$/.exec(header);
  if (!match) return null;
  const scheme = (match[1] ?? "").toLowerCase();
  const value = match[2] ?? "";
  if (scheme !== "key" && scheme !== "bearer") return null;
  if (value.includes(":")) {
    const pair = parseKeyPair(value);
    return pair ? { kind: "key", ...pair } : null;
  }
  if (scheme === "bearer" && JWT_SHAPE.test(value)) return { kind: "token", token: value };
  return null;
}


export interface KeyServiceOptions {
  store: Store;
  /** Enables `Bearer <token>`; without it such headers are refused. */
  tokens?: TokenService;
  verifier?: SecretVerifier;
  now?: () => number;
  /** `lastUsedAt` is written at most this often per key, ms, so auth is not a write per call. Default 60 s. */
  touchIntervalMs?: number;
  /**
   * How long a key record read for authentication is reused, ms (default 1 s), so that auth is not a
   * database read per call. Revoking through this service takes effect at once; a revocation made by
   * another server sharing the database takes effect within this time.
   */
  recordCacheMs?: number;
  /** Failure budgets and the bound on concurrent hashing (see auth-throttle.ts). */
  throttle?: AuthThrottle;
  /** Tenants' weights and limits; by default one over `store`. */
  tenants?: TenantDirectory;
  /** Requests-per-minute counts; by default a fresh one (one per process: see request-rate-limiter.ts). */
  requestRates?: RequestRateLimiter;
}

export class KeyService {
  private readonly store: Store;
  private readonly tokens: TokenService | null;
  private readonly verifier: SecretVerifier;
  private readonly now: () => number;
  private readonly touchIntervalMs: number;
  private readonly recordCacheMs: number;
  private readonly records = new Map<string, { record: ApiKeyRecord | null; at: number }>();
  private readonly throttle: AuthThrottle;
  /** A key's tenant, its weight and limits, cached for the authentication of every call. */
  readonly tenants: TenantDirectory;
  /** The per-minute request counts behind `requests_per_minute`, per key and per tenant. */
  readonly requestRates: RequestRateLimiter;

  constructor(options: KeyServiceOptions) {
    this.store = options.store;
    this.tokens = options.tokens ?? null;
    this.now = options.now ?? Date.now;
    this.verifier = options.verifier ?? new SecretVerifier({ now: this.now });
    this.touchIntervalMs = options.touchIntervalMs ?? 60_000;
    this.recordCacheMs = options.recordCacheMs ?? 1000;
    this.throttle = options.throttle ?? new AuthThrottle({ now: this.now });
    this.tenants = options.tenants ?? new TenantDirectory({ store: this.store, now: this.now });
    this.requestRates = options.requestRates ?? new RequestRateLimiter({ now: this.now });
  }

  /** The key record, from a short-lived cache (see `recordCacheMs`). */
  private async keyRecord(id: string): Promise<ApiKeyRecord | null> {
    const now = this.now();
    const cached = this.records.get(id);
    if (cached && now - cached.at < this.recordCacheMs) return cached.record;
    const record = await this.store.getKey(id);
    // Unknown ids are cached too, so a flood of made-up ids cannot turn into a flood of reads;
    // the map is bounded for the same reason.
    if (this.records.size >= 10_000) this.records.clear();
    this.records.set(id, { record, at: now });
    return record;
  }

  async create(input: NewKey): Promise<CreatedKey> {
    // Hex keeps the id free of ':' (the separator) and readable in logs; 96 bits make it unguessable
    // enough that ids can be shown around without hinting at others.
    const id = `dk_${randomBytes(12).toString("hex")}`;
    const secret = randomBytes(32).toString("base64url");
    const record: ApiKeyRecord = {
      id,
      secretHash: await hashSecret(secret),
      name: input.name,
      scope: input.scope,
      createdAt: this.now(),
      revokedAt: null,
      lastUsedAt: null,
      // A tenant named here need not exist: one nobody configured has the default weight and no limits.
      tenant: input.tenant ?? null,
      limits: input.limits ?? {},
    };
    await this.store.createKey(record);
    this.records.delete(id);
    return { id, secret, record };
  }

  /**
   * The key behind an Authorization header, or null when it is missing, malformed, unknown, revoked or
   * wrong. With `app`, a token must also allow that app (alias or full id); a key pair allows every app.
   */
  async verify(authorization: string | null | undefined, options: { app?: string; client?: string } = {}): Promise<AuthenticatedKey | null> {
    const credentials = parseAuthorization(authorization);
    if (!credentials) return null;

    if (credentials.kind === "token") {
      const claims = this.tokens?.verify(credentials.token, options) ?? null;
      if (!claims) return null;
      // Revoking a key also kills the tokens issued for it: they are checked against the live record.
      const record = await this.keyRecord(claims.sub);
      if (!record || record.revokedAt !== null) return null;
      // A token never carries more than its key has now, even if the key was narrowed after issue.
      // Runner tokens come only from admin keys; one whose key lost admin is refused outright.
      if (claims.scope === "runner" && record.scope !== "admin") return null;
      const scope: PrincipalScope = claims.scope === "runner" ? "runner" : claims.scope === "admin" && record.scope === "admin" ? "admin" : "api";
      this.touch(record);
      return { ...record, scope, via: "token", token: claims };
    }

    const record = await this.keyRecord(credentials.id);
    // Only failures that cost a hash count against budgets: an unknown id or a wrong secret repeated
    // costs nothing, and counting them would let anyone sharing an address (a NAT, a proxy) lock out
    // the keys of everyone behind it by sending made-up ids.
    if (!record || record.revokedAt !== null) return null;
    // A secret that verified a moment ago needs no hash and passes no throttle: the key's owner keeps
    // working while someone else guesses at the same (public) id.
    if (!this.verifier.remembers(record.id, credentials.secret, record.secretHash)) {
      if (this.throttle.failedRecently(record.id, credentials.secret)) return null;
      this.throttle.admit(record.id, options.client);
      if (!(await this.throttle.hash(() => this.verifier.verify(record.id, credentials.secret, record.secretHash)))) {
        this.throttle.recordFailure(record.id, options.client, credentials.secret);
        return null;
      }
    }
    this.touch(record);
    return { ...record, via: "key", token: null };
  }

  list(): Promise<ApiKeyRecord[]> {
    return this.store.listKeys();
  }

  /** The key record as stored now (not the authentication cache's). */
  get(id: string): Promise<ApiKeyRecord | null> {
    return this.store.getKey(id);
  }

  /** Changes a key's name, tenant (null: its own again) or limits (replaced whole); false when there is no such key. */
  async update(id: string, patch: KeySettingsPatch): Promise<boolean> {
    const updated = await this.store.updateKey(id, patch);
    // The next call with the key sees the change in this process; other gateways within recordCacheMs.
    this.records.delete(id);
    return updated;
  }

  /** Returns false when there is no such key. */
  async revoke(id: string): Promise<boolean> {
    const revoked = await this.store.revokeKey(id, this.now());
    this.verifier.forget(id);
    this.records.delete(id);
    return revoked;
  }

  /**
   * Makes sure an admin key exists before the server takes requests.
   *
   * - `adminKeyEnv` ("id:secret", from DARKROOM_ADMIN_KEY) set: that key is provisioned as an active admin
   *   key. Idempotent; if the key exists with another secret, another scope or revoked, it is brought in
   *   line (the environment is the operator's word). Nothing is printed: the operator already knows it.
   * - not set, and no active admin key: one is generated, saved as `id:secret` to `<dataDir>/admin-key`
   *   (mode 0600) and returned in `credentials` so the server prints it this once.
   * - not set, and an active admin key exists: nothing happens.
   */
  async ensureAdminKey(input: { dataDir: string; adminKeyEnv?: string | null }): Promise<AdminKeyResult> {
    const env = input.adminKeyEnv?.trim();
    if (env) return this.provisionAdminKey(env);

    const existing = (await this.store.listKeys()).find((k) => k.scope === "admin" && k.revokedAt === null);
    if (existing) return { id: existing.id, source: "existing", credentials: null, file: null };

    const created = await this.create({ name: "admin", scope: "admin" });
    const credentials = `${created.id}:${created.secret}`;
    const file = path.join(input.dataDir, ADMIN_KEY_FILE);
    await writePrivateFile(file, `${credentials}\n`);
    return { id: created.id, source: "generated", credentials, file };
  }

  private async provisionAdminKey(env: string): Promise<AdminKeyResult> {
    const pair = parseKeyPair(env);
    if (!pair) throw new Error('DARKROOM_ADMIN_KEY must be "id:secret" (id of letters, digits, ".", "_" or "-")');
    const result: AdminKeyResult = { id: pair.id, source: "env", credentials: null, file: null };

    let existing = await this.store.getKey(pair.id);
    if (!existing) {
      try {
        await this.store.createKey({
          id: pair.id,
          secretHash: await hashSecret(pair.secret),
          name: "admin (DARKROOM_ADMIN_KEY)",
          scope: "admin",
          createdAt: this.now(),
          revokedAt: null,
          lastUsedAt: null,
          tenant: null,
          limits: {},
        });
        return result;
      } catch (err) {
        // Gateways of a fleet start together on one database: another one may have created it
        // between the read and the write. Then bring that record in line like any existing one.
        existing = await this.store.getKey(pair.id);
        if (!existing) throw err;
      }
    }

    const patch: KeyPatch = {};
    if (!(await verifySecret(pair.secret, existing.secretHash))) patch.secretHash = await hashSecret(pair.secret);
    if (existing.scope !== "admin") patch.scope = "admin";
    if (existing.revokedAt !== null) patch.revokedAt = null;
    if (Object.keys(patch).length === 0) return result;

    await this.store.updateKey(pair.id, patch);
    this.records.delete(pair.id);
    this.verifier.forget(pair.id);
    return result;
  }

  /** Records use at most once per interval, off the request's path: a lost touch only costs accuracy. */
  private touch(record: ApiKeyRecord): void {
    const now = this.now();
    if (record.lastUsedAt !== null && now - record.lastUsedAt < this.touchIntervalMs) return;
    // The record may be the cached one: mark it, or every call until the cache refreshes writes again.
    record.lastUsedAt = now;
    this.store.touchKey(record.id, now).catch(() => undefined);
  }
}
