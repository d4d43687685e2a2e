/**
 * Short-lived tokens for browsers and realtime sockets (fal's `POST /tokens/`; docs/api.md, Authentication).
 *
 * A client that must not hold the API key (a web page, a realtime session) gets a compact JWT signed
 * with HMAC-SHA256 under a server secret (`<dataDir>/token-secret`, mode 0600). The claims bind it to the
 * key that asked for it (`sub`), that key's scope, the app aliases it may call (`allowed_apps`) and a
 * lifetime of 10 s to 1 h (120 s by default, what fal's JS client asks for and refreshes at 90 %).
 *
 * fal's clients never decode the token, so the format is ours; a standard JWT simply makes it
 * inspectable with ordinary tools. Verification accepts exactly the header it issues, so `alg: none` or
 * any algorithm swap is rejected before the signature is even looked at.
 * @module
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import path from "node:path";
import type { ApiKeyRecord } from "../store/store.js";
import { createPrivateFileOnce, readPrivateFile } from "./private-file.js";

export const TOKEN_SECRET_FILE = "token-secret";
export const MIN_TOKEN_TTL_SEC = 10;
export const MAX_TOKEN_TTL_SEC = 3600;
export const DEFAULT_TOKEN_TTL_SEC = 120;
/**
 * Runner tokens live longer: a runner on another machine holds one for its whole life and trades it
 * for a fresh one before it expires (`POST /runner/v1/token`), so a stolen one still dies within a day.
 */
export const DEFAULT_RUNNER_TOKEN_TTL_SEC = 24 * 3600;
export const MAX_RUNNER_TOKEN_TTL_SEC = 30 * 24 * 3600;

/**
 * What a token may do: what its key may (`admin`, `api`), or only serve apps over the runner
 * protocol (`runner`: issued for admin keys, `allowed_apps` lists the app ids it may serve).
 */
export type TokenScope = ApiKeyRecord["scope"] | "runner";

/** How far in the future an `iat` may lie before the token is suspect (clock skew between servers). */
const IAT_SKEW_SEC = 60;

export interface TokenClaims {
  /** The API key id the token was issued for. */
  sub: string;
  scope: TokenScope;
  /** App aliases (fal's `allowed_apps`, e.g. "flux" for "fal-ai/flux/dev"). */
  allowed_apps: string[];
  /** unix seconds */
  iat: number;
  /** unix seconds */
  exp: number;
  jti: string;
}

export interface IssuedToken {
  token: string;
  claims: TokenClaims;
}

const HEADER = { alg: "HS256", typ: "JWT" } as const;
const ENCODED_HEADER = Buffer.from(JSON.stringify(HEADER)).toString("base64url");

function clampTtl(ttlSec: number | undefined, scope: TokenScope): number {
  const [fallback, max] = scope === "runner" ? [DEFAULT_RUNNER_TOKEN_TTL_SEC, MAX_RUNNER_TOKEN_TTL_SEC] : [DEFAULT_TOKEN_TTL_SEC, MAX_TOKEN_TTL_SEC];
  if (ttlSec === undefined || !Number.isFinite(ttlSec)) return fallback;
  return Math.min(max, Math.max(MIN_TOKEN_TTL_SEC, Math.floor(ttlSec)));
}

/**
 * The alias of an app id: "fal-ai/flux/dev" → "flux", "workflows/me/wf" → "wf", "flux" → "flux".
 * Tokens name aliases (that is what fal's client sends), while the gateway knows full ids.
 */
export function appAlias(appId: string): string {
  const parts = appId.split("/").filter(Boolean);
  if (parts.length < 2) return parts[0] ?? appId;
  const offset = parts[0] === "workflows" || parts[0] === "comfy" ? 1 : 0;
  return parts[offset + 1] ?? parts[parts.length - 1] ?? appId;
}

function isClaims(value: unknown): value is TokenClaims {
  if (typeof value !== "object" || value === null) return false;
  const c = value as Record<string, unknown>;
  return (
    typeof c["sub"] === "string" &&
    (c["scope"] === "admin" || c["scope"] === "api" || c["scope"] === "runner") &&
    Array.isArray(c["allowed_apps"]) &&
    c["allowed_apps"].every((a) => typeof a === "string") &&
    Number.isSafeInteger(c["iat"]) &&
    Number.isSafeInteger(c["exp"]) &&
    typeof c["jti"] === "string"
  );
}

export interface TokenServiceOptions {
  /** Clock, unix ms. */
  now?: () => number;
}

export class TokenService {
  private readonly secret: Buffer;
  private readonly now: () => number;

  constructor(secret: Buffer, options: TokenServiceOptions = {}) {
    if (secret.length < 32) throw new Error("token secret must be at least 32 bytes");
    this.secret = secret;
    this.now = options.now ?? Date.now;
  }

  /**
   * Loads the secret from `<dataDir>/token-secret`, creating it on first start. It persists so that
   * tokens survive a restart, and is shared by every server on the data folder.
   */
  static async open(dataDir: string, options: TokenServiceOptions = {}): Promise<TokenService> {
    const file = path.join(dataDir, TOKEN_SECRET_FILE);
    let text = await readPrivateFile(file);
    if (text === null) {
      const fresh = `${randomBytes(32).toString("base64url")}\n`;
      text = (await createPrivateFileOnce(file, fresh)) ? fresh : await readPrivateFile(file);
      if (text === null) throw new Error(`${file} vanished while it was being created`);
    }
    const secret = Buffer.from(text.trim(), "base64url");
    if (secret.length < 32) throw new Error(`${file} holds a secret shorter than 32 bytes; delete it to generate a new one`);
    return new TokenService(secret, options);
  }

  issue(input: { keyId: string; scope: TokenScope; allowedApps: readonly string[]; ttlSec?: number }): IssuedToken {
    const iat = Math.floor(this.now() / 1000);
    const claims: TokenClaims = {
      sub: input.keyId,
      scope: input.scope,
      allowed_apps: [...input.allowedApps],
      iat,
      exp: iat + clampTtl(input.ttlSec, input.scope),
      jti: randomBytes(16).toString("base64url"),
    };
    const signingInput = `${ENCODED_HEADER}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
    return { token: `${signingInput}.${this.mac(signingInput).toString("base64url")}`, claims };
  }

  /**
   * The claims of a valid token, or null when it is malformed, tampered with, expired, or (with `app`)
   * not allowed for that app. `app` may be an alias or a full app id. A token whose `allowed_apps` is
   * empty passes only checks that name no app.
   */
  verify(token: string, options: { app?: string } = {}): TokenClaims | null {
    const parts = token.split(".");
    if (parts.length !== 3) return null;
    const [header, payload, signature] = parts as [string, string, string];
    // Compare the header byte for byte with the one we issue: that pins alg and typ without parsing.
    if (header !== ENCODED_HEADER) return null;
    // Compare the text, not decoded bytes: base64url decoding ignores the spare low bits of the last
    // character, so several spellings decode alike, and only the canonical one should be accepted.
    const expected = Buffer.from(this.mac(`${header}.${payload}`).toString("base64url"));
    const given = Buffer.from(signature);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;

    let claims: unknown;
    try {
      claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    } catch {
      return null;
    }
    if (!isClaims(claims)) return null;
    const nowSec = Math.floor(this.now() / 1000);
    if (claims.exp <= nowSec) return null;
    if (claims.iat > nowSec + IAT_SKEW_SEC) return null;
    if (options.app !== undefined) {
      const allowed = claims.allowed_apps.includes(options.app) || claims.allowed_apps.includes(appAlias(options.app));
      if (!allowed) return null;
    }
    return claims;
  }

  private mac(signingInput: string): Buffer {
    return createHmac("sha256", this.secret).update(signingInput).digest();
  }
}
