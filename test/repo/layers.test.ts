/**
 * The layers of src/ (docs/architecture.md, "Layers") hold: the lint rules built from `LAYERS` in
 * eslint.config.js refuse a wrong import and let a right one through, src/ obeys them, every file
 * under src/ falls under one of them, and the table in the docs says what `LAYERS` says.
 *
 * Only the layer rules run here, without type information, so this stays fast; `npm run lint` runs
 * the same rules with the rest.
 * @module
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ESLint } from "eslint";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const LAYER_RULES = new Set(["@typescript-eslint/no-restricted-imports", "no-restricted-syntax"]);

const { LAYERS } = (await import(pathToFileURL(path.join(REPO_ROOT, "eslint.config.js")).href)) as { LAYERS: Record<string, string[]> };

const eslint = new ESLint({
  cwd: REPO_ROOT,
  // Parsing alone: the layer rules need no types, and snippets need no file on disk.
  overrideConfig: { languageOptions: { parserOptions: { projectService: false } } },
  ruleFilter: ({ ruleId }) => LAYER_RULES.has(ruleId),
});

/** The layer-rule messages ESLint reports for `code` as the file `filePath`. */
async function layerErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(REPO_ROOT, filePath) });
  assert.ok(result);
  const fatal = result.messages.filter((m) => m.fatal);
  assert.deepEqual(fatal, [], `${filePath} did not parse`);
  return result.messages.filter((m) => m.ruleId !== null && LAYER_RULES.has(m.ruleId)).map((m) => m.message);
}

const REFUSED: [file: string, code: string][] = [
  // What issue #14 found: the runtime reaching into an app, by type and by import().
  ["src/runtime/x.ts", `import type { NsfwScores } from "../apps/safety-checker/model.js";\nexport type T = NsfwScores;`],
  ["src/runtime/x.ts", `export const load = () => import("../apps/safety-checker/app.js");`],
  ["src/runtime/x.ts", `export type App = typeof import("../apps/echo/app.js");`],
  ["src/runtime/x.ts", `export { BUILTIN_APP_MODULES } from "../apps/builtin.js";`],
  ["src/runtime/x.ts", `export * from "../scheduler/scheduler.js";`],
  ["src/scheduler/x.ts", `import { BUILTIN_APP_MODULES } from "../apps/builtin.js";\nexport const n = BUILTIN_APP_MODULES.length;`],
  ["src/scheduler/x.ts", `import { RunnerHost } from "../runtime/runner-host.js";\nexport { RunnerHost };`],
  ["src/gateway/routes/x.ts", `import echo from "../../apps/echo/app.js";\nexport default echo;`],
  ["src/gateway/routes/x.ts", `import { defineApp } from "../../runtime/sdk.js";\nexport { defineApp };`],
  ["src/store/sqlite/x.ts", `import type { Scheduler } from "../../scheduler/scheduler.js";\nexport type S = Scheduler;`],
  // Media sits below the runtime.
  ["src/media/video/x.ts", `import type { HandlerContext } from "../../runtime/sdk.js";\nexport type C = HandlerContext;`],
  ["src/media/x.ts", `import { startPlatform } from "../platform.js";\nexport { startPlatform };`],
  // Apps use the SDK only, and never another app.
  ["src/apps/video-upscale/x.ts", `import { upscaleRaw } from "../upscale/app.js";\nexport { upscaleRaw };`],
  ["src/apps/video-upscale/x.ts", `export const m = () => import("../echo/app.js");`],
  ["src/apps/video-upscale/x.ts", `import { BUILTIN_APP_MODULES } from "../builtin.js";\nexport { BUILTIN_APP_MODULES };`],
  ["src/apps/echo/x.ts", `import { RunnerHost } from "../../runtime/runner-host.js";\nexport { RunnerHost };`],
  ["src/apps/echo/x.ts", `import { createScheduler } from "../../scheduler/scheduler.js";\nexport { createScheduler };`],
  ["src/core/x.ts", `import type { Store } from "../store/store.js";\nexport type S = Store;`],
  ["src/platform.ts", `import { main } from "./cli/main.js";\nexport { main };`],
];

const ALLOWED: [file: string, code: string][] = [
  ["src/runtime/x.ts", `import type { NsfwScores } from "../media/safety/model.js";\nexport const load = () => import("../media/safety/model.js");\nexport type T = NsfwScores;`],
  ["src/runtime/x.ts", `import { fieldError } from "../core/errors.js";\nimport { safeFetch } from "./own.js";\nexport { fieldError, safeFetch };`],
  ["src/scheduler/x.ts", `import type { ToRunner } from "../runtime/protocol.js";\nimport { TSX_LOADER } from "../runtime/tsx-loader.js";\nexport type T = ToRunner;\nexport { TSX_LOADER };`],
  ["src/gateway/routes/x.ts", `import { RUNNER_PROTOCOL_VERSION } from "../../runtime/protocol.js";\nimport { Scheduler } from "../../scheduler/scheduler.js";\nimport { x } from "../server.js";\nexport { RUNNER_PROTOCOL_VERSION, Scheduler, x };`],
  ["src/media/video/x.ts", `import { fieldError } from "../../core/errors.js";\nimport { initBackend } from "../tfjs/wasm-backend.js";\nimport type { Cancellable } from "../context.js";\nexport { fieldError, initBackend };\nexport type C = Cancellable;`],
  ["src/apps/video-upscale/x.ts", `import { defineApp, VideoSchema } from "../../runtime/sdk.js";\nimport { upscaleRaw } from "../../media/upscale/tiled-upscale.js";\nimport type { ModelManager } from "../../models/index.js";\nimport { helper } from "./helper.js";\nimport sharp from "sharp";\nexport { defineApp, VideoSchema, upscaleRaw, helper, sharp };\nexport type M = ModelManager;`],
  ["src/apps/video-upscale/deeper/x.ts", `import { helper } from "../helper.js";\nimport { defineApp } from "../../../runtime/sdk.js";\nexport { helper, defineApp };`],
  ["src/platform.ts", `import { BUILTIN_APP_MODULES } from "./apps/builtin.js";\nimport { createServer } from "./gateway/server.js";\nexport { BUILTIN_APP_MODULES, createServer };`],
  ["src/cli/x.ts", `import { pulledModelAppModules } from "../apps/text-to-image/pulled-model-apps.js";\nimport { startPlatform } from "../platform.js";\nexport { pulledModelAppModules, startPlatform };`],
];

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(REPO_ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return sourceFiles(rel);
    return /\.tsx?$/.test(entry.name) ? [rel] : [];
  });
}

/** The `LAYERS` key a file under src/ belongs to. */
const layerOf = (file: string): string => (file === "src/platform.ts" ? "platform" : (file.split("/")[1] ?? ""));

describe("the layers of src/", () => {
  for (const [file, code] of REFUSED) {
    it(`refuses in ${file}: ${code.split("\n")[0]}`, async () => {
      const errors = await layerErrors(file, code);
      assert.equal(errors.length, 1, `expected one layer error, got ${JSON.stringify(errors)}`);
      assert.match(errors[0] ?? "", /docs\/architecture\.md, "Layers"/);
    });
  }

  for (const [file, code] of ALLOWED) {
    it(`allows in ${file}: ${code.split("\n")[0]}`, async () => {
      assert.deepEqual(await layerErrors(file, code), []);
    });
  }

  it("src/ obeys them", async () => {
    const results = await eslint.lintFiles(["src"]);
    const offences = results.flatMap((r) =>
      r.messages.map((m) => `${path.relative(REPO_ROOT, r.filePath)}:${m.line}: ${m.message}`),
    );
    assert.deepEqual(offences, []);
  });

  it("every file under src/ belongs to a layer, and falls under its rules", async () => {
    const files = sourceFiles("src");
    assert.ok(files.length > 100);
    const unplaced = files.filter((file) => !(layerOf(file) in LAYERS));
    assert.deepEqual(unplaced, [], "add the new folder to LAYERS in eslint.config.js and to docs/architecture.md");
    const uncovered: string[] = [];
    for (const file of files) {
      if (layerOf(file) === "cli") continue; // may import anything: it has no rule
      const config = (await eslint.calculateConfigForFile(path.join(REPO_ROOT, file))) as { rules?: Record<string, unknown> };
      if (!config.rules?.["no-restricted-syntax"]) uncovered.push(file);
    }
    assert.deepEqual(uncovered, [], "nested deeper than MAX_DEPTH in eslint.config.js?");
  });

  it("docs/architecture.md's table says what LAYERS says", () => {
    const doc = readFileSync(path.join(REPO_ROOT, "docs/architecture.md"), "utf8");
    const section = doc.slice(doc.indexOf("## Layers"), doc.indexOf("\n## ", doc.indexOf("## Layers") + 1));
    const folders = Object.keys(LAYERS).filter((name) => name !== "platform" && name !== "cli");
    const documented: Record<string, string[]> = {};
    for (const [, name, cell] of section.matchAll(/^\| `([a-z.]+)` \| (.+) \|$/gm)) {
      const named = [...(cell ?? "").matchAll(/`([a-z./-]+)`/g)].map((m) => (m[1] === "platform.ts" ? "platform" : (m[1] ?? "")));
      let allowed = named;
      if (cell?.startsWith("every folder")) allowed = cell.includes(" but ") ? folders.filter((f) => !named.includes(f)) : [...folders, ...named];
      documented[name === "platform.ts" ? "platform" : (name ?? "")] = allowed.sort();
    }
    const configured = Object.fromEntries(Object.entries(LAYERS).map(([name, allowed]) => [name, [...allowed].sort()]));
    assert.deepEqual(documented, configured);
  });
});
