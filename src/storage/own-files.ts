/**
 * This server's own file URLs (`{origin}/files/{key}`): read from storage by key, never fetched over
 * the network.
 * @module
 */

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
