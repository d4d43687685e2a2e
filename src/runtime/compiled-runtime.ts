/**
 * How the gateway starts its child processes (runners, the app probe): from the runtime compiled
 * to JavaScript in dist/ (scripts/build-runtime.mjs), or from src/ through tsx, which costs every
 * start tsx's own load and the transpiling of the module graph.
 *
 * Compiled only when the build is fresh, i.e. its stamp matches the sources as they are now
 * (source-fingerprint.ts): a stale build never runs. The check is repeated at each start rather
 * than once per process, so that a source edited while the server runs reaches the next runner, as
 * it does under tsx; a stat of every source (a few ms) tells whether anything changed since the last
 * full check, and only then are the contents hashed again.
 *
 * And only for apps under src/: an app module elsewhere (a user's, a test fixture) imports the SDK
 * from src/runtime/sdk.ts, and in a compiled runner that would be a second copy of the SDK and of
 * everything it imports, beside dist/'s. Such an app runs, with the whole runtime, through tsx.
 * @module
 */
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { fingerprintOf, readSources, sourceFiles, STAMP_FILE, type BuildStamp } from "./source-fingerprint.js";
import { TSX_LOADER } from "./tsx-loader.js";

/** The checkout this module belongs to: its src/, dist/ and tsconfig.json. */
const CHECKOUT = fileURLToPath(new URL("../../", import.meta.url));

export type Freshness = { fresh: true; fingerprint: string } | { fresh: false; reason: string };

/** Compares the stamp of `root`/dist with the sources of `root`, reading every one of them. */
export function checkBuild(root: string = CHECKOUT): Freshness {
  let stamp: BuildStamp;
  try {
    stamp = JSON.parse(readFileSync(path.join(root, "dist", STAMP_FILE), "utf8")) as BuildStamp;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { fresh: false, reason: "dist/ holds no compiled runtime (`npm run build:runtime` builds it)" };
    return { fresh: false, reason: `dist/${STAMP_FILE} is unreadable (${err instanceof Error ? err.message : String(err)})` };
  }
  let fingerprint: string;
  try {
    fingerprint = fingerprintOf(readSources(root));
  } catch (err) {
    // A source removed between listing and reading: whatever it was, this build is not known fresh.
    return { fresh: false, reason: `src/ could not be read (${err instanceof Error ? err.message : String(err)})` };
  }
  if (fingerprint !== stamp.fingerprint) return { fresh: false, reason: "src/ changed since dist/ was built (`npm run build:runtime` rebuilds it)" };
  return { fresh: true, fingerprint };
}

/** Size and modification time of every input and of the stamp: when none changed, neither did the answer. */
function statKey(root: string): string {
  const files = [...sourceFiles(root), "tsconfig.json", `dist/${STAMP_FILE}`];
  return files
    .map((file) => {
      const stat = statSync(path.join(root, file), { throwIfNoEntry: false });
      return `${file}:${stat ? `${stat.size}:${stat.mtimeMs}` : "-"}`;
    })
    .join("\n");
}

const checked = new Map<string, { key: string; freshness: Freshness }>();
const thisTurn = new Map<string, Freshness>();

/** Whether the build under `root` is fresh now; see the module's comment for what that costs. */
export function compiledRuntime(root: string = CHECKOUT): Freshness {
  const memo = thisTurn.get(root);
  if (memo) return memo;
  const key = statKey(root);
  let last = checked.get(root);
  if (last?.key !== key) {
    last = { key, freshness: checkBuild(root) };
    checked.set(root, last);
  }
  // One answer serves a whole synchronous decision (offering a spare, then forking a runner), not each step of it.
  thisTurn.set(root, last.freshness);
  setImmediate(() => thisTurn.delete(root)).unref();
  return last.freshness;
}

/**
 * The compiled file of an app module under `root`/src (a query such as `?model=x` kept), or null:
 * not under src/, not TypeScript, or the build is not fresh. With `build`, null also when the fresh
 * build is another one than that: a runner started from a build loads its app from that build only.
 */
export function compiledPathOf(modulePath: string, build?: string, root: string = CHECKOUT): string | null {
  const query = /\.ts(\?[^/]*)$/.exec(modulePath)?.[1] ?? "";
  const file = modulePath.slice(0, modulePath.length - query.length);
  const rel = path.relative(path.join(root, "src"), file);
  if (!file.endsWith(".ts") || rel.split(path.sep)[0] === ".." || path.isAbsolute(rel)) return null;
  const freshness = compiledRuntime(root);
  if (!freshness.fresh || (build !== undefined && build !== freshness.fingerprint)) return null;
  return `${path.join(root, "dist", rel.slice(0, -".ts".length))}.js${query}`;
}

/** How to start a child process of the runtime. */
export interface ChildStart {
  /** The fingerprint of the build it starts from; null: it starts through tsx. */
  build: string | null;
  /** Its entry module. */
  main: string;
  /** The Node flags that this way of starting needs (tsx's loader, or none). */
  execArgv: string[];
  /** The app modules, as the child is to import them. */
  modulePaths: string[];
}

/** `entry` of src/runtime, to load `modulePaths`: compiled when every one of them was compiled, else through tsx. */
export function childStart(entry: "runner-main" | "probe-main", modulePaths: readonly string[], root: string = CHECKOUT): ChildStart {
  const freshness = compiledRuntime(root);
  if (freshness.fresh) {
    const compiled = modulePaths.map((p) => compiledPathOf(p, freshness.fingerprint, root));
    if (compiled.every((p) => p !== null)) {
      return { build: freshness.fingerprint, main: path.join(root, "dist", "runtime", `${entry}.js`), execArgv: [], modulePaths: compiled };
    }
  }
  return { build: null, main: path.join(root, "src", "runtime", `${entry}.ts`), execArgv: ["--import", TSX_LOADER], modulePaths: [...modulePaths] };
}

/** The probe, for `modulePaths` (compiled under the same rule as a runner). */
export function probeStart(modulePaths: readonly string[]): ChildStart {
  return childStart("probe-main", modulePaths);
}

/**
 * A spare runner, which starts before its app is known: compiled when every app it may become
 * (`appModules`, the server's own apps) was compiled, since a compiled spare can load those only;
 * else through tsx, which can load any app. It is told its app's module path later (compiledPathOf
 * with its `build`).
 */
export function spareStart(appModules: readonly string[]): ChildStart {
  return { ...childStart("runner-main", appModules), modulePaths: [] };
}

let fallbackTold = false;

/** Why runners start through tsx though they could start compiled, the first time it is asked: one log line per process, not one per runner. */
export function fallbackReasonOnce(): string | null {
  const freshness = compiledRuntime();
  if (freshness.fresh || fallbackTold) return null;
  fallbackTold = true;
  return freshness.reason;
}
