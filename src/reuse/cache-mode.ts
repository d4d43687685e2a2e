/**
 * `X-Darkroom-Cache`, what a request asks of result reuse (docs/result-reuse.md): `use` (reuse a
 * result or join an identical request in flight), `refresh` (run, and keep this result for later
 * requests), `off` (run, keep nothing). Without the header, the app's default.
 * @module
 */
import { PlatformError } from "../core/errors.js";
import type { AppManifest } from "../core/types.js";

export type CacheMode = "use" | "refresh" | "off";

const MODES: readonly CacheMode[] = ["use", "refresh", "off"];

/** The header's mode, or null without one; any other value is refused (400). */
export function cacheModeOf(header: string | string[] | undefined): CacheMode | null {
  if (header === undefined) return null;
  const value = (Array.isArray(header) ? header.join(",") : header).trim().toLowerCase();
  if ((MODES as readonly string[]).includes(value)) return value as CacheMode;
  throw new PlatformError("ERR_BAD_REQUEST", { message: `X-Darkroom-Cache must be one of ${MODES.join(", ")}` });
}

/** What a request of `app` gets: what it asked for, else the app's default; never reuse for an app that declares none. */
export function effectiveCacheMode(app: AppManifest, asked: CacheMode | null): CacheMode {
  if (!app.cache) return "off";
  return asked ?? app.cache.default;
}
