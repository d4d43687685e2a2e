/**
 * The key a result is kept under (docs/result-reuse.md): a hash of the tenant, the app and its revision, the
 * endpoint, the origin the outputs' URLs are built on, the input in canonical form, and the content
 * of every file the input names, so that a file replaced under the same URL is a new key: this
 * server's files are read from storage, another server's are fetched (under the outbound-fetch
 * policy and limits); one that cannot be fetched leaves the request unkeyed (it runs, BYPASS). A
 * large input kept unparsed (json-body.ts) is keyed by its bytes.
 * @module
 */
import { createHash } from "node:crypto";
import type { AppManifest } from "../core/types.js";
import { canonicalJson } from "../core/canonical-json.js";
import { UnparsedInput } from "../core/unparsed-input.js";
import { openOwnFile, originsOf, ownFileKey } from "../storage/own-files.js";
import type { StorageDriver } from "../storage/storage.js";
import { httpUrlsIn } from "./http-urls.js";

/** More files than this in one input are not hashed (the request simply runs). */
const MAX_FILES = 64;

export type ResultKey = { key: string } | { key: null; reason: string };

export interface ResultKeyInput {
  app: AppManifest & { revision: string };
  endpoint: string;
  input: unknown;
  baseUrl: string;
  /** Results are shared within a tenant, never across: a hit would tell one tenant what another ran. */
  tenant: string;
}

/** Another server's file's SHA-256 (hex), fetched and hashed as it streams (the gateway's SSRF-guarded fetch); throws when it cannot. */
export type FetchForKey = (url: string) => Promise<string>;

export async function resultKeyOf(subject: ResultKeyInput, storage: StorageDriver | undefined, ownOrigins: readonly string[], fetchForKey?: FetchForKey): Promise<ResultKey> {
  const { app, endpoint, input, baseUrl, tenant } = subject;
  const hash = createHash("sha256").update(JSON.stringify(["darkroom-result-v1", tenant, app.id, app.revision, endpoint, new URL(baseUrl).origin]));
  if (input instanceof UnparsedInput) {
    if (app.cache?.reuse === "seeded") return { key: null, reason: "a large input is not read for its seed" };
    return { key: hash.update("\0bytes\0").update(input.bytes).digest("hex") };
  }
  if (app.cache?.reuse === "seeded" && !hasSeed(input)) return { key: null, reason: `${app.id} is random without a seed in the input` };
  const origins = originsOf([baseUrl, ...ownOrigins]);
  const files = new Map<string, string>();
  const urls = httpUrlsIn(input);
  if (urls.length > MAX_FILES) return { key: null, reason: `the input names more than ${MAX_FILES} files` };
  for (const url of urls) {
    const key = ownFileKey(url, origins);
    if (key === null) {
      if (!fetchForKey) return { key: null, reason: "the input names a file on another server, which may change" };
      try {
        files.set(url, await fetchForKey(url));
      } catch (err) {
        return { key: null, reason: `the input names a file that could not be fetched for its content: ${err instanceof Error ? err.message : String(err)}` };
      }
      continue;
    }
    const digest = storage ? await contentHash(storage, key) : null;
    if (digest === null) return { key: null, reason: `the input names a file this server does not have: ${url}` };
    files.set(url, digest);
  }
  hash.update("\0json\0").update(canonicalJson(input));
  // The URL is in the input; the content behind it is what the result depends on.
  for (const [url, digest] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) hash.update(`\0file\0${url}\0${digest}`);
  return { key: hash.digest("hex") };
}

function hasSeed(input: unknown): boolean {
  return input !== null && typeof input === "object" && typeof (input as { seed?: unknown }).seed === "number" && Number.isFinite((input as { seed: number }).seed);
}

/**
 * Digests of stored files by key, size and creation time: a file named by many requests is read
 * once, not once a request (a caller could otherwise make the gateway hash a large file per submit).
 */
const digests = new Map<string, string>();
const MAX_DIGESTS = 4096;

async function contentHash(storage: StorageDriver, key: string): Promise<string | null> {
  const meta = await unlessRefused(() => storage.head(key));
  if (!meta) return null;
  const cacheKey = `${key}\0${meta.size}\0${meta.createdAt}`;
  const known = digests.get(cacheKey);
  if (known) return known;
  const digest = await readDigest(storage, key);
  if (digest === null) return null;
  if (digests.size >= MAX_DIGESTS) digests.delete(digests.keys().next().value as string);
  digests.set(cacheKey, digest);
  return digest;
}

async function readDigest(storage: StorageDriver, key: string): Promise<string | null> {
  const body = await unlessRefused(() => openOwnFile(storage, key));
  return body ? sha256OfStream(body) : null;
}

/** The SHA-256 of a stream's bytes, hex, hashed as they come (a file is never held whole). */
export async function sha256OfStream(body: AsyncIterable<Uint8Array>): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of body) hash.update(chunk);
  return hash.digest("hex");
}

/** What `read` finds in storage, or null when storage throws: a key no driver takes (bad characters) is not one of ours. */
async function unlessRefused<T>(read: () => Promise<T | null>): Promise<T | null> {
  try {
    return await read();
  } catch {
    return null;
  }
}
