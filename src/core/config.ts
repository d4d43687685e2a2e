/**
 * Server configuration from flags and environment. Flags win over environment, environment over
 * defaults.
 * @module
 */
import os from "node:os";
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
  /**
   * An input whose JSON is larger than this (`DARKROOM_INPUT_SPILL_BYTES`) is kept in storage, and
   * its request's database row holds a reference to it (src/storage/spilled-inputs.ts): large
   * inputs stay out of the rows every queue operation reads and writes.
   */
  inputSpillBytes: number;
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
  /**
   * `--files-url` / `DARKROOM_FILES_URL`: base of the URLs that serve stored files, on an origin of
   * their own (src/gateway/files-origin.ts); no trailing slash. Null: files are served beside the API.
   */
  filesUrl: string | null;
  /**
   * `--trust-proxy` / `DARKROOM_TRUST_PROXY`: which proxies' `X-Forwarded-For` names the client:
   * `true` (any), a hop count, or a comma list of proxy addresses and CIDRs; false (the default)
   * takes the socket's address. Behind a reverse proxy every caller would otherwise share the proxy's
   * address, and with it one per-address budget of failed key checks.
   */
  trustProxy: boolean | number | string[];
  /** Extra app module paths to load besides the built-ins. */
  appPaths: string[];
  /** Only load these app ids (all when empty). */
  onlyApps: string[];
  /** `--workflows-dir` / `DARKROOM_WORKFLOWS_DIR`: workflow files (`<owner>/<name>.json`) registered at start; null: none. */
  workflowsDir: string | null;
  /** `--openai-aliases` / `DARKROOM_OPENAI_ALIASES`: `name=owner/app,…`, OpenAI model names over the defaults (docs/api.md). */
  openaiAliases: string | null;
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
  /**
   * `--spare-runners` / `DARKROOM_SPARE_RUNNERS`: runner processes kept started, with the runtime
   * loaded, for whichever app needs a runner next (src/scheduler/spare-runners.ts); 1 by default, 0
   * turns them off. Each holds about 60 MB.
   */
  spareRunners: number;
  /**
   * `--parallel-starts` / `DARKROOM_PARALLEL_STARTS`: runners of one app that may be starting at
   * once (src/scheduler/local-runners.ts); by default the cores less one for the gateway, at least 1.
   */
  parallelStarts: number;
  /** `--app-knobs` / `DARKROOM_APP_KNOBS`: the operator's overrides of apps' scaling knobs (knob-overrides.ts). */
  appKnobs: KnobOverrides;
  /** Prices (docs/pricing-and-usage.md). */
  pricing: PricingSettings;
}

export interface PricingSettings {
  /**
   * `--pricing FILE` / `DARKROOM_PRICING`: a JSON file of prices (`{"prices": [...]}`, the body of
   * `PUT /v1/models/pricing`), read when the gateway starts; null: none. Prices set through the API
   * override it.
   */
  file: string | null;
  /**
   * `DARKROOM_DEFAULT_COMPUTE_PRICE`: USD per compute second (run time) of every app and endpoint
   * without a price. A placeholder for operators to set, not a recommendation.
   */
  defaultComputePrice: number;
}

/** USD per compute second of apps without a price, unless `DARKROOM_DEFAULT_COMPUTE_PRICE` says otherwise. */
export const DEFAULT_COMPUTE_PRICE = 0.0005;

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
  inputSpillBytes: 256 * 1024,
  storageQuotaBytes: 10 * 1024 * 1024 * 1024,
};

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`Invalid ${name}: ${raw}`);
  return value;
}

/** A price: a finite number of 0 or more (0 makes what it prices free). */
function nonNegativeNumber(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`Invalid ${name}: ${raw} (expected a number of 0 or more)`);
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

function trustProxyOf(raw: string | undefined): boolean | number | string[] {
  const value = (raw ?? "").trim();
  if (value === "" || ["false", "0", "no", "off"].includes(value.toLowerCase())) return false;
  if (["true", "yes", "on"].includes(value.toLowerCase())) return true;
  if (/^\d+$/.test(value)) return Number(value);
  const list = value.split(",").map((x) => x.trim()).filter(Boolean);
  for (const entry of list) {
    if (!/^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(entry) && !["loopback", "linklocal", "uniquelocal"].includes(entry)) {
      throw new Error(`Invalid --trust-proxy / DARKROOM_TRUST_PROXY entry: '${entry}' (expected true, a hop count, or addresses and CIDRs)`);
    }
  }
  return list;
}

/**
 * A base URL setting (`flag` or `envName`): an absolute http(s) URL without credentials, query or
 * fragment, or null when neither is set. Every URL handed to clients is built on such a base, so a
 * value that is not one is refused at startup rather than sent out. Errors name the setting.
 */
function baseUrlSetting(
  flag: string,
  envName: string,
  flagValue: string | undefined,
  envValue: string | undefined,
  example: string,
): { url: URL; invalid: (why: string) => Error } | null {
  const raw = flagValue ?? (envValue === "" ? undefined : envValue);
  if (raw === undefined) return null;
  const invalid = (why: string): Error => new Error(`Invalid ${flagValue !== undefined ? flag : envName}: '${raw}' (${why})`);
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw invalid(`expected an absolute URL such as ${example}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw invalid("expected an http:// or https:// URL");
  if (url.username !== "" || url.password !== "") throw invalid("credentials do not belong in a public URL");
  // `new URL` drops an empty `?` or `#`: the raw text tells whether one was there.
  if (url.search !== "" || url.hash !== "" || raw.includes("?") || raw.includes("#")) throw invalid("a base URL has no query or fragment");
  return { url, invalid };
}

/**
 * The public base from `--public-url` or `DARKROOM_PUBLIC_URL`: a path is kept (a gateway behind a
 * proxy that serves it under a prefix), a trailing slash dropped.
 */
function publicBaseUrl(flagValue: string | undefined, envValue: string | undefined): string | null {
  const setting = baseUrlSetting("--public-url", "DARKROOM_PUBLIC_URL", flagValue, envValue, "https://darkroom.example.com");
  return setting && `${setting.url.origin}${setting.url.pathname.replace(/\/+$/, "")}`;
}

/**
 * The files base from `--files-url` or `DARKROOM_FILES_URL`: an origin alone (file URLs are built
 * by appending `/files/<key>`), and not the `--public-url` one, whose host would otherwise serve
 * nothing but files.
 */
function filesBaseUrl(flagValue: string | undefined, envValue: string | undefined, publicUrl: string | null): string | null {
  const setting = baseUrlSetting("--files-url", "DARKROOM_FILES_URL", flagValue, envValue, "https://files.example.com");
  if (!setting) return null;
  const { url, invalid } = setting;
  // A path could only put files under the API's own host, which is the origin they must leave.
  if (url.pathname !== "/") throw invalid("expected an origin alone, such as https://files.example.com: the gateway serves /files/… at its root");
  if (publicUrl && new URL(publicUrl).origin === url.origin) throw invalid("files need an origin of their own, not the --public-url one");
  return url.origin;
}

/** The pricing file's absolute path; its contents are read and checked when the gateway starts (src/pricing/price-file.ts). */
function pricingFile(flagValue: string | undefined, envValue: string | undefined): string | null {
  const raw = flagValue ?? (envValue === "" ? undefined : envValue);
  return raw === undefined || raw.trim() === "" ? null : path.resolve(raw.trim());
}

/** Most spare runners a gateway keeps: each is a whole Node process. */
export const MAX_SPARE_RUNNERS = 8;

function spareRunnerCount(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === "") return 1;
  const count = Number(raw);
  if (!Number.isInteger(count) || count < 0 || count > MAX_SPARE_RUNNERS) {
    throw new Error(`Invalid --spare-runners / DARKROOM_SPARE_RUNNERS: ${raw} (expected a whole number from 0 to ${MAX_SPARE_RUNNERS})`);
  }
  return count;
}

/** Most runners of one app starting at once that an operator may ask for. */
export const MAX_PARALLEL_STARTS = 64;

function parallelStartCount(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === "") return Math.max(1, os.availableParallelism() - 1);
  const count = Number(raw);
  if (!Number.isInteger(count) || count < 1 || count > MAX_PARALLEL_STARTS) {
    throw new Error(`Invalid --parallel-starts / DARKROOM_PARALLEL_STARTS: ${raw} (expected a whole number from 1 to ${MAX_PARALLEL_STARTS})`);
  }
  return count;
}

export function loadConfig(flags: Partial<Record<string, string>> = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const port = Number(flags["port"] ?? env["PORT"] ?? 8787);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`Invalid port: ${flags["port"] ?? env["PORT"]}`);
  const list = (s: string | undefined): string[] =>
    (s ?? "")
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean);
  const publicUrl = publicBaseUrl(flags["public-url"], env["DARKROOM_PUBLIC_URL"]);
  return {
    host: flags["host"] ?? env["DARKROOM_HOST"] ?? "127.0.0.1",
    port,
    dataDir: path.resolve(flags["data-dir"] ?? env["DARKROOM_DATA_DIR"] ?? "./.darkroom"),
    adminKey: env["DARKROOM_ADMIN_KEY"] ?? null,
    allowHosts: flags["allow-hosts"] ?? env["DARKROOM_ALLOW_HOSTS"] ?? "",
    publicUrl,
    filesUrl: filesBaseUrl(flags["files-url"], env["DARKROOM_FILES_URL"], publicUrl),
    trustProxy: trustProxyOf(flags["trust-proxy"] ?? env["DARKROOM_TRUST_PROXY"]),
    appPaths: list(flags["apps"] ?? env["DARKROOM_APPS"]),
    workflowsDir: flags["workflows-dir"] ?? env["DARKROOM_WORKFLOWS_DIR"] ?? null,
    openaiAliases: flags["openai-aliases"] ?? env["DARKROOM_OPENAI_ALIASES"] ?? null,
    onlyApps: list(flags["only"] ?? env["DARKROOM_ONLY_APPS"]),
    limits: {
      maxBodyBytes: Number(env["DARKROOM_MAX_BODY_BYTES"] ?? DEFAULT_LIMITS.maxBodyBytes),
      maxFileBytes: Number(env["DARKROOM_MAX_FILE_BYTES"] ?? DEFAULT_LIMITS.maxFileBytes),
      fetchTimeoutMs: Number(env["DARKROOM_FETCH_TIMEOUT_MS"] ?? DEFAULT_LIMITS.fetchTimeoutMs),
      bodyIdleMs: positiveInt("DARKROOM_BODY_IDLE_MS", env["DARKROOM_BODY_IDLE_MS"], DEFAULT_LIMITS.bodyIdleMs),
      maxInflightBodyBytes: positiveInt("DARKROOM_MAX_INFLIGHT_BODY_BYTES", env["DARKROOM_MAX_INFLIGHT_BODY_BYTES"], DEFAULT_LIMITS.maxInflightBodyBytes),
      inputSpillBytes: positiveInt("DARKROOM_INPUT_SPILL_BYTES", env["DARKROOM_INPUT_SPILL_BYTES"], DEFAULT_LIMITS.inputSpillBytes),
      storageQuotaBytes: nonNegativeInt("DARKROOM_STORAGE_QUOTA_BYTES", env["DARKROOM_STORAGE_QUOTA_BYTES"], DEFAULT_LIMITS.storageQuotaBytes),
    },
    logLevel: oneOf(LOG_LEVELS, "log-level", "DARKROOM_LOG_LEVEL", flags["log-level"], env["DARKROOM_LOG_LEVEL"]) ?? "info",
    logFormat: oneOf(LOG_FORMATS, "log-format", "DARKROOM_LOG_FORMAT", flags["log-format"], env["DARKROOM_LOG_FORMAT"]),
    databaseUrl: flags["database-url"] ?? env["DARKROOM_DATABASE_URL"] ?? null,
    storageUrl: flags["storage-url"] ?? env["DARKROOM_STORAGE_URL"] ?? null,
    leaseMs: positiveInt("DARKROOM_LEASE_MS", env["DARKROOM_LEASE_MS"], 30_000),
    builtinApps: !["false", "0", "no", "off"].includes((flags["builtin-apps"] ?? env["DARKROOM_BUILTIN_APPS"] ?? "true").toLowerCase()),
    localRunners: !["false", "0", "no", "off"].includes((flags["local-runners"] ?? env["DARKROOM_LOCAL_RUNNERS"] ?? "true").toLowerCase()),
    spareRunners: spareRunnerCount(flags["spare-runners"] ?? env["DARKROOM_SPARE_RUNNERS"]),
    parallelStarts: parallelStartCount(flags["parallel-starts"] ?? env["DARKROOM_PARALLEL_STARTS"]),
    appKnobs: parseKnobOverrides(flags["app-knobs"] ?? env["DARKROOM_APP_KNOBS"] ?? ""),
    pricing: {
      file: pricingFile(flags["pricing"], env["DARKROOM_PRICING"]),
      defaultComputePrice: nonNegativeNumber("DARKROOM_DEFAULT_COMPUTE_PRICE", env["DARKROOM_DEFAULT_COMPUTE_PRICE"], DEFAULT_COMPUTE_PRICE),
    },
  };
}
