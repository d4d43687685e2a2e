/**
 * A user's clone has nothing beside it: no file in the repository may point outside it, and the
 * media the tests and examples read ship inside it. (`.ci/run` also runs the whole suite from a
 * clone in a fresh temporary folder, and test/readme.test.ts runs the README from a copy.)
 * @module
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { FIXTURES, REPO_ROOT } from "../helpers/platform.js";

function trackedFiles(): string[] {
  const listed = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: REPO_ROOT, encoding: "utf8" });
  assert.equal(listed.status, 0, `git ls-files failed: ${listed.stderr}`);
  return listed.stdout.split("\0").filter(Boolean);
}

const TEXT = /\.(ts|tsx|js|mjs|cjs|json|md|py|sh|yaml|yml|toml|txt|css|html)$|(^|\/)(run|Dockerfile[^/]*|\.[a-z]+ignore|\.npmrc)$/;
const THIS_FILE = path.relative(REPO_ROOT, new URL(import.meta.url).pathname);

describe("the repository is self-contained", () => {
  it("no file refers to a folder beside the checkout or to a machine's paths", () => {
    // Built from pieces so that this file does not match itself.
    const outside = new RegExp(["\\.\\./", "shared", "\\b|fal-api\\.md|", "/work/", "main\\b"].join(""));
    const offenders: string[] = [];
    for (const file of trackedFiles()) {
      if (!TEXT.test(file) || file === THIS_FILE || file === "package-lock.json") continue;
      let text: string;
      try {
        text = readFileSync(path.join(REPO_ROOT, file), "utf8");
      } catch {
        continue; // deleted in the working tree
      }
      text.split("\n").forEach((line, i) => {
        if (outside.test(line)) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    assert.deepEqual(offenders, []);
  });

  it("ships every media file its README lists, and lists every one it ships with a licence", () => {
    const readme = readFileSync(path.join(FIXTURES, "README.md"), "utf8");
    const listed = [...readme.matchAll(/^\| `([^`]+)` \|[^|]+\|([^|]+)\|$/gm)].map((m) => ({ name: m[1] ?? "", licence: (m[2] ?? "").trim() }));
    const shipped = readdirSync(FIXTURES).filter((name) => name !== "README.md").sort();
    assert.deepEqual(listed.map((entry) => entry.name).sort(), shipped);
    for (const entry of listed) assert.match(entry.licence, /public domain|CC0|no rights reserved/, `${entry.name} needs its origin and licence`);
  });
});
