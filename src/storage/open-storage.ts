/**
 * Picks and opens a storage driver from a storage URL, for the server and for runner processes:
 *
 * - unset (null, "")        → local driver at `<dataDir>/files`
 * - `file:///abs/path`      → local driver at `/abs/path`
 * - `s3://bucket[/prefix]`  → S3 driver; the rest comes from the environment:
 *   - `DARKROOM_S3_ENDPOINT`: a custom endpoint (MinIO, R2, Ceph…). It implies path-style URLs
 *     unless `DARKROOM_S3_FORCE_PATH_STYLE=false`; that variable also forces them on for AWS.
 *   - `AWS_REGION`, else `AWS_DEFAULT_REGION`, else us-east-1.
 *   - credentials through the SDK's default chain: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
 *     (`AWS_SESSION_TOKEN`), `AWS_PROFILE`, web identity, container and instance roles.
 * @module
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PlatformError } from "../core/errors.js";
import { createLocalStorage } from "./local-storage.js";
import { normalizePrefix } from "./s3-prefix.js";
import type { StorageDriver } from "./storage.js";

export type StorageLocation = { driver: "local"; root: string } | { driver: "s3"; bucket: string; prefix: string };

export interface OpenStorageOptions {
  /** The configured storage URL; null or empty for the default local folder. */
  storageUrl: string | null;
  /** The data folder; the default local store is its `files` subfolder. */
  dataDir: string;
  /** Where the S3 settings are read from. @default process.env */
  env?: NodeJS.ProcessEnv;
}

function invalid(message: string): PlatformError {
  return new PlatformError("ERR_BAD_REQUEST", { message });
}

/** AWS's rules are stricter (3-63, lowercase); older buckets and other servers allow a little more. */
const BUCKET = /^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$/;

/**
 * Parses a storage URL without opening anything, so configuration can be checked at startup.
 * Throws ERR_BAD_REQUEST with a message naming the accepted forms for anything else.
 */
export function parseStorageUrl(storageUrl: string | null, dataDir: string): StorageLocation {
  if (storageUrl === null || storageUrl.trim() === "") return { driver: "local", root: path.resolve(dataDir, "files") };
  const url = storageUrl.trim();
  if (url.startsWith("file:")) {
    // fileURLToPath reads `file:relative` as `/relative`; only the absolute form is meant.
    if (!/^file:\/\/(localhost)?\//i.test(url)) throw invalid(`storage URL ${JSON.stringify(url)} must name an absolute path: file:///absolute/path`);
    let root: string;
    try {
      root = fileURLToPath(url);
    } catch (err) {
      throw invalid(`invalid storage URL ${JSON.stringify(url)}: ${(err as Error).message}; use file:///absolute/path`);
    }
    if (!path.isAbsolute(root)) throw invalid(`storage URL ${JSON.stringify(url)} must name an absolute path: file:///absolute/path`);
    return { driver: "local", root };
  }
  if (url.startsWith("s3:")) {
    // Parsed by hand: URL() would lowercase the bucket and percent-decode the prefix.
    const match = /^s3:\/\/([^/?#]+)(?:\/([^?#]*))?$/.exec(url);
    const bucket = match?.[1] ?? "";
    if (!match || !BUCKET.test(bucket)) throw invalid(`invalid storage URL ${JSON.stringify(url)}: use s3://bucket or s3://bucket/prefix`);
    return { driver: "s3", bucket, prefix: normalizePrefix(match[2]) };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1];
  throw invalid(
    `unsupported storage URL ${JSON.stringify(url)}${scheme ? ` (scheme "${scheme}")` : ""}: use file:///absolute/path or s3://bucket/prefix, or leave it unset for <dataDir>/files`,
  );
}

/** The S3 connection settings from the environment (see the module doc). */
export function s3SettingsFromEnv(env: NodeJS.ProcessEnv): { endpoint?: string; region: string; forcePathStyle?: boolean } {
  const endpoint = env["DARKROOM_S3_ENDPOINT"]?.trim() || undefined;
  const region = env["AWS_REGION"]?.trim() || env["AWS_DEFAULT_REGION"]?.trim() || "us-east-1";
  const pathStyle = env["DARKROOM_S3_FORCE_PATH_STYLE"]?.trim().toLowerCase();
  if (pathStyle !== undefined && pathStyle !== "" && !["true", "false", "1", "0"].includes(pathStyle)) {
    throw invalid(`DARKROOM_S3_FORCE_PATH_STYLE must be true or false, not ${JSON.stringify(env["DARKROOM_S3_FORCE_PATH_STYLE"])}`);
  }
  // Self-hosted servers rarely have per-bucket DNS names, so a custom endpoint defaults to path style.
  const forcePathStyle = pathStyle === "true" || pathStyle === "1" ? true : pathStyle === "false" || pathStyle === "0" ? false : endpoint ? true : undefined;
  if (endpoint !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(endpoint);
    } catch {
      throw invalid(`DARKROOM_S3_ENDPOINT is not a URL: ${JSON.stringify(endpoint)}`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw invalid("DARKROOM_S3_ENDPOINT must be an http:// or https:// URL");
  }
  return { ...(endpoint ? { endpoint } : {}), region, ...(forcePathStyle !== undefined ? { forcePathStyle } : {}) };
}

/**
 * Opens the driver a storage URL names; see the module doc for the forms and variables. The S3 driver
 * is loaded only when named: the AWS SDK adds about 400 ms to the start of every runner process.
 */
export async function openStorage(options: OpenStorageOptions): Promise<StorageDriver> {
  const location = parseStorageUrl(options.storageUrl, options.dataDir);
  if (location.driver === "local") return createLocalStorage({ root: location.root });
  const { createS3Storage } = await import("./s3-storage.js");
  return createS3Storage({ bucket: location.bucket, prefix: location.prefix, ...s3SettingsFromEnv(options.env ?? process.env) });
}

/**
 * The storage of a runner process: `DARKROOM_STORAGE_URL` when set (the server passes its own
 * storage URL, so both sides see the same objects), else the local folder `DARKROOM_STORAGE_ROOT`.
 */
export async function openStorageFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<StorageDriver> {
  const storageUrl = env["DARKROOM_STORAGE_URL"]?.trim();
  // With a URL set the data folder plays no part.
  if (storageUrl) return openStorage({ storageUrl, dataDir: ".", env });
  const root = env["DARKROOM_STORAGE_ROOT"];
  if (!root) throw new Error("runner: neither DARKROOM_STORAGE_URL nor DARKROOM_STORAGE_ROOT is set");
  return createLocalStorage({ root });
}
