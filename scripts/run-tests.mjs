#!/usr/bin/env node
// Node 20's test runner takes no globs: collect test files here, then hand them to `node --test`.
// Usage: node scripts/run-tests.mjs [path-prefix ...]   e.g. `npm test -- test/gateway`
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import path from "node:path";

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...collect(full));
    else if (name.endsWith(".test.ts")) out.push(full);
  }
  return out;
}

const prefixes = process.argv.slice(2);
const files = collect("test").filter((f) => prefixes.length === 0 || prefixes.some((p) => f.startsWith(path.normalize(p))));
if (files.length === 0) {
  console.error(`no test files match ${prefixes.join(" ")}`);
  process.exit(1);
}
const concurrency = process.env.DARKROOM_TEST_CONCURRENCY ?? "1";
const result = spawnSync(process.execPath, ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, ...files], { stdio: "inherit" });
process.exit(result.status ?? 1);
