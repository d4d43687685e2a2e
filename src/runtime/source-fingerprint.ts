/**
 * What a compiled runtime was built from, as one hash: the path and contents of every
 * `src/**\/*.ts` file, and `tsconfig.json`, whose compiler options the transpiler reads.
 * scripts/build-runtime.mjs writes it to the build's stamp; compiled-runtime.ts compares it with
 * the sources as they are now. Contents rather than modification times: a copy of a built checkout
 * stays fresh, and a file put back as it was built (an undone edit) does not make it stale.
 *
 * Node built-ins only: the build script loads this module before anything is compiled.
 * @module
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

/** The stamp's file name, inside the build's output folder. */
export const STAMP_FILE = "build-stamp.json";

/** What the stamp records. */
export interface BuildStamp {
  fingerprint: string;
  /** How many source files went in (for people reading the stamp). */
  files: number;
  built_at: string;
}

/** One input of a build: a path relative to the tree's root, "/"-separated, and its bytes (null: absent). */
export interface SourceEntry {
  path: string;
  content: Buffer | null;
}

/** The TypeScript files under `root`/src, as sorted root-relative "/"-separated paths. */
export function sourceFiles(root: string): string[] {
  const found: string[] = [];
  const walk = (rel: string): void => {
    for (const entry of readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const child = `${rel}/${entry.name}`;
      if (entry.isDirectory()) walk(child);
      else if (entry.name.endsWith(".ts")) found.push(child);
    }
  };
  walk("src");
  return found.sort();
}

/** The sources of the tree at `root` with their contents, in the fingerprint's order. */
export function readSources(root: string, files: readonly string[] = sourceFiles(root)): SourceEntry[] {
  let tsconfig: Buffer | null = null;
  try {
    tsconfig = readFileSync(path.join(root, "tsconfig.json"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  return [{ path: "tsconfig.json", content: tsconfig }, ...files.map((file) => ({ path: file, content: readFileSync(path.join(root, file)) }))];
}

export function fingerprintOf(sources: readonly SourceEntry[]): string {
  const hash = createHash("sha256");
  for (const { path: file, content } of [...sources].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    // Length-prefixed, so that no two different trees hash the same bytes.
    hash.update(`${file}\0${content === null ? -1 : content.length}\0`);
    if (content) hash.update(content);
  }
  return hash.digest("hex");
}
