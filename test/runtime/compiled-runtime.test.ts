/**
 * The compiled runtime's build and freshness check, on a small tree of its own in a temp folder
 * (never on the checkout's src/): scripts/build-runtime.mjs compiles it file by file with a stamp,
 * and compiled-runtime.ts calls the build fresh until a source or tsconfig.json changes (a changed
 * byte, a file added or removed), not when a file is merely touched; a stale build maps no module to
 * dist/, and its children start through tsx.
 * @module
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { checkBuild, childStart, compiledPathOf, compiledRuntime, type Freshness } from "../../src/runtime/compiled-runtime.js";
import { STAMP_FILE } from "../../src/runtime/source-fingerprint.js";
import { REPO_ROOT } from "../helpers/platform.js";

const BUILD_SCRIPT = path.join(REPO_ROOT, "scripts/build-runtime.mjs");

function build(root: string, ...args: string[]): string {
  const run = spawnSync(process.execPath, [BUILD_SCRIPT, "--root", root, ...args], { encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout;
}

/** The freshness as the next runner start would see it (a check is shared within one event-loop turn). */
async function freshness(root: string): Promise<Freshness> {
  await nextTurn();
  return compiledRuntime(root);
}

describe("the compiled runtime", () => {
  let root: string;
  const src = (file: string): string => path.join(root, "src", file);

  before(() => {
    root = mkdtempSync(path.join(tmpdir(), "darkroom-compiled-"));
    mkdirSync(path.join(root, "src/lib"), { recursive: true });
    mkdirSync(path.join(root, "src/runtime"), { recursive: true });
    writeFileSync(path.join(root, "tsconfig.json"), JSON.stringify({ compilerOptions: { target: "ES2022", verbatimModuleSyntax: true } }));
    writeFileSync(src("lib/greet.ts"), `export const greet = (name: string): string => \`hello \${name}\`;\n`);
    writeFileSync(src("app.ts"), `import { greet } from "./lib/greet.js";\nimport type { Buffer } from "node:buffer";\nexport type B = Buffer;\nexport default greet("compiled");\n`);
    writeFileSync(src("runtime/runner-main.ts"), `export {};\n`);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("says why when nothing was built", () => {
    const before = checkBuild(root);
    assert.equal(before.fresh, false);
    assert.match(before.fresh ? "" : before.reason, /no compiled runtime.*build:runtime/);
    assert.equal(compiledPathOf(src("app.ts"), undefined, root), null);
  });

  it("compiles every source to dist/ as its own ES module, with a stamp, and skips a build that is up to date", async () => {
    assert.match(build(root), /3 files/);
    for (const file of ["app.js", "lib/greet.js", "runtime/runner-main.js", STAMP_FILE]) assert.ok(existsSync(path.join(root, "dist", file)), file);
    const compiled = readFileSync(path.join(root, "dist/app.js"), "utf8");
    assert.match(compiled, /from "\.\/lib\/greet\.js"/, "imported, not bundled");
    assert.doesNotMatch(compiled, /node:buffer/, "type-only imports are gone");
    const mod = (await import(pathToFileURL(path.join(root, "dist/app.js")).href)) as { default: string };
    assert.equal(mod.default, "hello compiled");
    assert.match(build(root), /up to date/);
    assert.deepEqual(await freshness(root), checkBuild(root));
    assert.equal((await freshness(root)).fresh, true);
  });

  it("maps a module under src/ to its compiled file (query kept), and nothing else", async () => {
    await nextTurn();
    assert.equal(compiledPathOf(src("app.ts"), undefined, root), path.join(root, "dist/app.js"));
    assert.equal(compiledPathOf(`${src("app.ts")}?model=x`, undefined, root), `${path.join(root, "dist/app.js")}?model=x`);
    assert.equal(compiledPathOf(path.join(root, "elsewhere/app.ts"), undefined, root), null);
    assert.equal(compiledPathOf(path.join(root, "src/../elsewhere.ts"), undefined, root), null);
    assert.equal(compiledPathOf(src("app.js"), undefined, root), null);
    const start = childStart("runner-main", [src("app.ts")], root);
    assert.deepEqual({ ...start, build: typeof start.build }, { build: "string", main: path.join(root, "dist/runtime/runner-main.js"), execArgv: [], modulePaths: [path.join(root, "dist/app.js")] });
    const mixed = childStart("runner-main", [src("app.ts"), path.join(root, "elsewhere/app.ts")], root);
    assert.equal(mixed.build, null, "one module outside src/ and all of them load through tsx");
    assert.equal(mixed.main, src("runtime/runner-main.ts"));
    assert.equal(mixed.execArgv[0], "--import");
    assert.deepEqual(mixed.modulePaths, [src("app.ts"), path.join(root, "elsewhere/app.ts")]);
  });

  it("stays fresh when a source is touched but not changed", async () => {
    const later = new Date(Date.now() + 5000);
    utimesSync(src("lib/greet.ts"), later, later);
    assert.equal((await freshness(root)).fresh, true);
  });

  const edits: [what: string, edit: () => void, undo: () => void][] = [
    [
      "a source's contents change, its size kept",
      () => writeFileSync(src("lib/greet.ts"), readFileSync(src("lib/greet.ts"), "utf8").replace("hello", "HELLO")),
      () => writeFileSync(src("lib/greet.ts"), readFileSync(src("lib/greet.ts"), "utf8").replace("HELLO", "hello")),
    ],
    ["a source is added", () => writeFileSync(src("lib/new.ts"), "export const n = 1;\n"), () => unlinkSync(src("lib/new.ts"))],
    [
      "a source is removed",
      () => unlinkSync(src("runtime/runner-main.ts")),
      () => writeFileSync(src("runtime/runner-main.ts"), `export {};\n`),
    ],
    [
      "tsconfig.json changes",
      () => writeFileSync(path.join(root, "tsconfig.json"), JSON.stringify({ compilerOptions: { target: "ES2020" } })),
      () => writeFileSync(path.join(root, "tsconfig.json"), JSON.stringify({ compilerOptions: { target: "ES2022", verbatimModuleSyntax: true } })),
    ],
  ];
  for (const [what, edit, undo] of edits) {
    it(`is stale once ${what}, and fresh again when it is put back as built`, async () => {
      const fresh = await freshness(root);
      assert.equal(fresh.fresh, true);
      edit();
      const stale = await freshness(root);
      assert.equal(stale.fresh, false);
      assert.match(stale.fresh ? "" : stale.reason, /src\/ changed since dist\/ was built/);
      assert.equal(compiledPathOf(src("app.ts"), undefined, root), null, "a stale build maps nothing");
      const start = childStart("runner-main", [src("app.ts")], root);
      assert.equal(start.build, null);
      assert.deepEqual(start.modulePaths, [src("app.ts")]);
      undo();
      assert.deepEqual(await freshness(root), fresh);
    });
  }

  it("tells a runner started from an older build that its build is no longer the fresh one", async () => {
    const old = await freshness(root);
    assert.ok(old.fresh);
    writeFileSync(src("lib/greet.ts"), `export const greet = (name: string): string => \`hi \${name}\`;\n`);
    assert.match(build(root), /3 files/);
    const now = await freshness(root);
    assert.ok(now.fresh);
    assert.notEqual(now.fingerprint, old.fingerprint);
    assert.equal(compiledPathOf(src("app.ts"), old.fingerprint, root), null);
    assert.equal(compiledPathOf(src("app.ts"), now.fingerprint, root), path.join(root, "dist/app.js"));
    assert.deepEqual(readFileSync(path.join(root, "dist/lib/greet.js"), "utf8").match(/hi \$\{name\}/)?.length, 1, "the rebuild replaced the output");
  });
});
