/**
 * Server configuration from flags and environment. Flags win over environment, environment over
 * defaults.
 * @module
 */
import path from "node:path";
import { parseKnobOverrides, type KnobOverrides } from "./knob-overrides.js";

export interface Limits {
  /** Largest JSON body accepted by the gateway. */
  maxBodyBytes: number;
  /** Largest file accepted by upload or fetched from an input URL. */
  maxFileBytes: number;
  /** Timeout of one outbound fetch (input URLs), ms. */
  fetchTimeoutMs: number;
  /** A request body that stops arriving for this long is dropped, ms. */
  bodyIdleMs: number;
  /**
   * Bytes one API key may keep in storage (`DARKROOM_STORAGE_QUOTA_BYTES`): its uploads, staged
   * multipart parts and the output files of its requests that remote runners upload, until they are
   * deleted or expire. 0 means no quota.
   */
  storageQuotaBytes: number;
  /** JSON body bytes one gateway holds at once (announced lengths of requests not yet answered). */
  maxInflightBodyBytes: number;
}

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  /** `DARKROOM_ADMIN_KEY=id:secret`, provisions the admin key instead of generating one. */
  adminKey: string | null;
  /** `DARKROOM_ALLOW_HOSTS`: comma list of `host[:port]` or CIDR that outbound fetches may reach even if private. */
  allowHosts: string;
  /** Public base URL override (behind a proxy); by default URLs are built from the request's Host. */
  publicUrl: string | null;
  /** Extra app module paths to load besides the built-ins. */
  appPaths: string[];
  /** Only load these app ids (all when empty). */
  onlyApps: string[];
  limits: Limits;
  /** `--log-level` / `DARKROOM_LOG_LEVEL`: a pino level name. */
  logLevel: LogLevel;
  /**
   * `--log-format` / `DARKROOM_LOG_FORMAT`: `pretty` (one readable line per entry) or `json` (one
   * JSON object per line, for collectors). Null: pretty when stdout is a terminal, JSON otherwise;
   * `darkroom serve` decides when it builds the logger (src/cli/server-logger.ts).
   */
  logFormat: LogFormat | null;
  /**
   * How long a runner holds a request without renewing its lease (`DARKROOM_LEASE_MS`, 30 s). A
   * runner that vanishes (a machine lost, `kill -9`) gets its requests retried this long after.
   */
  leaseMs: number;
  /** `--database-url` / `DARKROOM_DATABASE_URL`: `postgres://…`; null means the embedded SQLite in the data folder. */
  databaseUrl: string | null;
  /** `--storage-url` / `DARKROOM_STORAGE_URL`: `file:///path` or `s3://bucket/prefix`; null means `<data folder>/files`. */
  storageUrl: string | null;
  /** `--builtin-apps false` / `DARKROOM_BUILTIN_APPS=false`: load only the apps named by `--apps`. */
  builtinApps: boolean;
  /** `--local-runners false` / `DARKROOM_LOCAL_RUNNERS=false`: spawn no runners; serve remote runners only. */
  localRunners: boolean;
  /** `--app-knobs` / `DARKROOM_APP_KNOBS`: the operator's overrides of apps' scaling knobs (knob-overrides.ts). */
  appKnobs: KnobOverrides;
}

export const LOG_FORMATS = ["json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** pino's levels; a misspelt one would otherwise surface as a stack trace from inside pino. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 32 * 1024 * 1024,
  maxFileBytes: 512 * 1024 * 1024,
  fetchTimeoutMs: 60_000,
  bodyIdleMs: 30_000,
  maxInflightBodyBytes: 256 * 1024 * 1024,
  storageQuotaBytes: 10 * 1024 * 1024 * 1024,
};

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`Invalid ${name}: ${raw}`);
  return value;
}

function nonNegativeInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`Invalid ${name}: ${raw} (expected a whole number of bytes, 0 for none)`);
  return value;
}

/** The value of a setting given by flag or environment, checked against its allowed values. */
function oneOf<T extends string>(allowed: readonly T[], flag: string, envName: string, flagValue: string | undefined, envValue: string | undefined): T | null {
  // An empty variable (`DARKROOM_LOG_FORMAT=`) means unset, as for the other settings.
  const raw = flagValue ?? (envValue === "" ? undefined : envValue);
  if (raw === undefined) return null;
  const value = raw.trim().toLowerCase();
  if ((allowed as readonly string[]).includes(value)) return value as T;
  const from = flagValue !== undefined ? `--${flag}` : envName;
  throw new Error(`Invalid ${from}: '${raw}' (expected ${allowed.join(", ")})`);
}

export function loadConfig(flags: Partial<Record<string, string>> = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const port = Number(flags["port"] ?? env["PORT"] ?? 8787);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`Invalid port: ${flags["port"] ?? env["PORT"]}`);
  const list = (s: string | undefined): string[] =>
    (s ?? "")
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean);
  return {
    host: flags["host"] ?? env["DARKROOM_HOST"] ?? "127.0.0.1",
    port,
    dataDir: path.resolve(flags["data-dir"] ?? env["DARKROOM_DATA_DIR"] ?? "./.darkroom"),
    adminKey: env["DARKROOM_ADMIN_KEY"] ?? null,
    allowHosts: flags["allow-hosts"] ?? env["DARKROOM_ALLOW_HOSTS"] ?? "",
    publicUrl: flags["public-url"] ?? env["DARKROOM_PUBLIC_URL"] ?? null,
    appPaths: list(flags["apps"] ?? env["DARKROOM_APPS"]),
    onlyApps: list(flags["only"] ?? env["DARKROOM_ONLY_APPS"]),
    limits: {
      maxBodyBytes: Number(env["DARKROOM_MAX_BODY_BYTES"] ?? DEFAULT_LIMITS.maxBodyBytes),
      maxFileBytes: Number(env["DARKROOM_MAX_FILE_BYTES"] ?? DEFAULT_LIMITS.maxFileBytes),
      fetchTimeoutMs: Number(env["DARKROOM_FETCH_TIMEOUT_MS"] ?? DEFAULT_LIMITS.fetchTimeoutMs),
      bodyIdleMs: positiveInt("DARKROOM_BODY_IDLE_MS", env["DARKROOM_BODY_IDLE_MS"], DEFAULT_LIMITS.bodyIdleMs),
      maxInflightBodyBytes: positiveInt("DARKROOM_MAX_INFLIGHT_BODY_BYTES", env["DARKROOM_MAX_INFLIGHT_BODY_BYTES"], DEFAULT_LIMITS.maxInflightBodyBytes),
      storageQuotaBytes: nonNegativeInt("DARKROOM_STORAGE_QUOTA_BYTES", env["DARKROOM_STORAGE_QUOTA_BYTES"], DEFAULT_LIMITS.storageQuotaBytes),
    },
    logLevel: oneOf(LOG_LEVELS, "log-level", "DARKROOM_LOG_LEVEL", flags["log-level"], env["DARKROOM_LOG_LEVEL"]) ?? "info",
    logFormat: oneOf(LOG_FORMATS, "log-format", "DARKROOM_LOG_FORMAT", flags["log-format"], env["DARKROOM_LOG_FORMAT"]),
    databaseUrl: flags["database-url"] ?? env["DARKROOM_DATABASE_URL"] ?? null,
    storageUrl: flags["storage-url"] ?? env["DARKROOM_STORAGE_URL"] ?? null,
    leaseMs: positiveInt("DARKROOM_LEASE_MS", env["DARKROOM_LEASE_MS"], 30_000),
    builtinApps: !["false", "0", "no", "off"].includes((flags["builtin-apps"] ?? env["DARKROOM_BUILTIN_APPS"] ?? "true").toLowerCase()),
    localRunners: !["false", "0", "no", "off"].includes((flags["local-runners"] ?? env["DARKROOM_LOCAL_RUNNERS"] ?? "true").toLowerCase()),
    appKnobs: parseKnobOverrides(flags["app-knobs"] ?? env["DARKROOM_APP_KNOBS"] ?? ""),
  };
}
