/**
 * This server's own file URLs (`{origin}/files/{key}`): read from storage by key, never fetched over
 * the network.
 * @module
 */
import type { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import type { ObjectAccess } from "./storage.js";

/** The origins of `urls` (a request's base URL, the server's public and files URLs), each once; absent ones skipped. */
export function originsOf(urls: readonly (string | null | undefined)[]): string[] {
  return [...new Set(urls.filter((u): u is string => Boolean(u)).map((u) => new URL(u).origin))];
}

/** The storage key when `url` is one of this server's `/files/` URLs on one of `origins`; null otherwise. */
export function ownFileKey(url: string, origins: readonly string[]): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  if (!origins.includes(parsed.origin) || !parsed.pathname.startsWith("/files/")) return null;
  try {
    return decodeURIComponent(parsed.pathname.slice("/files/".length));
  } catch {
    return null; // a malformed escape: no key of ours
  }
}

/**
 * The stream of this server's stored file at `key`, or null when storage has none. Storage's errors
 * pass through (ERR_BAD_REQUEST for a key no driver takes, an unreachable bucket's): a caller for
 * whom such a key is simply not one of its files catches them.
 */
export async function openOwnFile(storage: ObjectAccess, key: string): Promise<Readable | null> {
  const object = await storage.get(key);
  return object ? object.body : null;
}

/** The bytes of this server's stored file at `key`, read whole, or null when storage has none; errors as openOwnFile's. */
export async function readOwnFile(storage: ObjectAccess, key: string): Promise<Buffer | null> {
  const body = await openOwnFile(storage, key);
  return body ? buffer(body) : null;
}
