#!/usr/bin/env node
// Compiles src/**/*.ts to dist/ once, file by file (no bundle: each module stays one module, and
// dist/ mirrors src/ at the same depth, so relative URLs such as ../../package.json still hold),
// with a stamp of the sources it was built from. Runners and the app probe start from dist/ while
// that stamp matches src/ (src/runtime/compiled-runtime.ts), and through tsx otherwise.
// `npm ci` runs it (package.json's `prepare`); `npm run build:runtime` after editing src/.
//
// Usage: node scripts/build-runtime.mjs [--root DIR] [--force]
//   --root   the tree to build (DIR/src to DIR/dist); this checkout by default
//   --force  rebuild even when the stamp says dist/ is up to date
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const started = performance.now();
const CHECKOUT = fileURLToPath(new URL("../", import.meta.url));
const { values } = parseArgs({ options: { root: { type: "string" }, force: { type: "boolean", default: false } } });
const root = path.resolve(values.root ?? CHECKOUT);
const out = path.join(root, "dist");

if (!existsSync(path.join(root, "src"))) {
  // A Docker image's dependency stage runs `prepare` before the sources are copied in.
  console.log(`build-runtime: no ${path.join(root, "src")}, nothing to build (runners will start through tsx)`);
  process.exit(0);
}

// The esbuild that tsx transpiles with at run time (a dependency of tsx, not of Darkroom): compiled
// and tsx runners then run the same transpiler's output.
const esbuild = createRequire(import.meta.resolve("tsx"))("esbuild");

// The fingerprint is TypeScript like the rest; this one module is transpiled in memory first.
const fingerprintSource = readFileSync(path.join(CHECKOUT, "src/runtime/source-fingerprint.ts"), "utf8");
const { code: fingerprintJs } = await esbuild.transform(fingerprintSource, { loader: "ts", format: "esm", target: "node20" });
const { STAMP_FILE, fingerprintOf, readSources } = await import(`data:text/javascript;base64,${Buffer.from(fingerprintJs).toString("base64")}`);

// Contents are read once: the stamp describes exactly what was transpiled, even if a file changes meanwhile.
const sources = readSources(root);
const fingerprint = fingerprintOf(sources);
if (!values.force) {
  try {
    if (JSON.parse(readFileSync(path.join(out, STAMP_FILE), "utf8")).fingerprint === fingerprint) {
      console.log(`build-runtime: ${path.relative(process.cwd(), out) || "."} is up to date`);
      process.exit(0);
    }
  } catch {
    // No stamp, or an unreadable one: build.
  }
}

const tsconfigEntry = sources.find((s) => s.path === "tsconfig.json");
const compilerOptions = tsconfigEntry?.content ? JSON.parse(tsconfigEntry.content.toString("utf8")).compilerOptions : {};
// Beside dist/, on the same file system: the finished tree replaces the old one by a rename, so
// that no runner ever loads a half-written build.
const staging = path.join(root, `dist.building-${process.pid}`);
rmSync(staging, { recursive: true, force: true });
const files = sources.filter((s) => s.path.startsWith("src/"));
try {
  await Promise.all(
    files.map(async ({ path: file, content }) => {
      const rel = file.slice("src/".length).replace(/\.ts$/, ".js");
      const target = path.join(staging, rel);
      const { code, map } = await esbuild.transform(content, {
        loader: "ts",
        format: "esm",
        target: "node20",
        tsconfigRaw: { compilerOptions },
        sourcemap: "external",
        sourcesContent: false,
        // Relative to the map in dist/, so that a debugger or --enable-source-maps shows src/.
        sourcefile: path.relative(path.dirname(target), path.join(staging, "..", file)).split(path.sep).join("/"),
      });
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, `${code}//# sourceMappingURL=${path.basename(target)}.map\n`);
      writeFileSync(`${target}.map`, map);
    }),
  );
  writeFileSync(path.join(staging, STAMP_FILE), `${JSON.stringify({ fingerprint, files: files.length, built_at: new Date().toISOString() }, null, 2)}\n`);
  const old = path.join(root, `dist.old-${process.pid}`);
  if (existsSync(out)) renameSync(out, old);
  renameSync(staging, out);
  rmSync(old, { recursive: true, force: true });
} finally {
  rmSync(staging, { recursive: true, force: true });
}
console.log(`build-runtime: ${files.length} files to ${path.relative(process.cwd(), out) || "."} in ${Math.round(performance.now() - started)} ms`);
