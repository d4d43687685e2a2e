/**
 * Parses fal endpoint ids in URL paths: `{ns?}/{owner}/{alias}/{path...}`, with the namespaces
 * fal's clients know (docs/api.md).
 * @module
 */

/** The namespaces fal's clients put before an app id (`workflows/{owner}/{alias}`). */
export const APP_NAMESPACES: readonly string[] = ["workflows", "comfy"];
const NAMESPACES = new Set(APP_NAMESPACES);

export interface AppPath {
  /** `owner/alias`, the app id. */
  appId: string;
  owner: string;
  alias: string;
  namespace: string | null;
  /** Remaining path segments after the alias. */
  rest: string[];
}

/** Splits a URL path (without query) into decoded, non-empty segments. */
export function pathSegments(pathname: string): string[] {
  return pathname
    .split("/")
    .filter((s) => s.length > 0)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
}

export function parseAppPath(segments: readonly string[]): AppPath | null {
  let i = 0;
  let namespace: string | null = null;
  if (segments.length >= 3 && NAMESPACES.has(segments[0] ?? "")) {
    namespace = segments[0] ?? null;
    i = 1;
  }
  const owner = segments[i];
  const alias = segments[i + 1];
  if (!owner || !alias) return null;
  return { appId: `${owner}/${alias}`, owner, alias, namespace, rest: segments.slice(i + 2) };
}
