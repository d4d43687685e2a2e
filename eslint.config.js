// Type-aware lint: floating promises in queue and runner code are bugs, so that rule stays on.
import tseslint from "typescript-eslint";

/**
 * The layers of src/ (docs/architecture.md, "Layers"): what each top-level folder may import of the
 * others. A folder with a module ("runtime/sdk.js") allows that module only. Every file under src/
 * must belong to one entry (test/repo/layers.test.ts checks).
 */
export const LAYERS = {
  core: [],
  net: ["core"],
  observability: ["core"],
  models: ["core"],
  diffusion: ["core"],
  media: ["core"],
  // store and auth lean on each other: sqlite-store takes PRIVATE_FILE_MODE from auth/private-file.ts,
  // and the key services take their record types from store/store.ts.
  store: ["core", "auth"],
  auth: ["core", "store"],
  storage: ["core", "store"],
  pricing: ["core", "store"],
  webhooks: ["core", "net", "auth", "store"],
  runtime: ["core", "net", "storage", "media"],
  // Workflow documents (fal's format): what they say and whether it can run.
  workflows: ["core"],
  // Result reuse: keys, joins and what made a result (docs/result-reuse.md).
  reuse: ["core", "store", "storage", "runtime/python-apps.js"],
  scheduler: ["core", "observability", "store", "storage", "reuse", "runtime/protocol.js", "runtime/tsx-loader.js", "runtime/compiled-runtime.js", "runtime/python-apps.js", "runtime/runner-app.js", "workflows"],
  gateway: ["core", "net", "observability", "models", "auth", "store", "storage", "pricing", "webhooks", "scheduler", "workflows", "reuse", "runtime/protocol.js", "runtime/runner-app.js"],
  // Apps use the SDK, shared media code and the model libraries; never another app (see below).
  apps: ["core", "media", "models", "diffusion", "runtime/sdk.js"],
  // Only these two wire apps in: platform.ts builds a server from every part, the CLI starts one.
  platform: ["core", "net", "observability", "models", "diffusion", "media", "store", "auth", "storage", "pricing", "webhooks", "runtime", "reuse", "scheduler", "workflows", "gateway", "apps"],
  cli: ["core", "net", "observability", "models", "diffusion", "media", "store", "auth", "storage", "pricing", "webhooks", "runtime", "reuse", "scheduler", "workflows", "gateway", "apps", "platform"],
};

/** Deepest folder nesting inside a layer that the rules below cover (src/store/sqlite/x.ts is 1). */
const MAX_DEPTH = 5;

const LAYERS_DOC = '(docs/architecture.md, "Layers")';

/** A regex alternation of what `layer` may not import, as written after the climb to src/; "" if nothing. */
function forbiddenTargets(layer) {
  const allowed = LAYERS[layer];
  const alternatives = [];
  for (const target of Object.keys(LAYERS)) {
    if (target === layer || allowed.includes(target)) continue;
    if (target === "platform") {
      alternatives.push("platform\\.js$");
      continue;
    }
    const modules = allowed.filter((entry) => entry.startsWith(`${target}/`)).map((entry) => entry.slice(target.length + 1).replaceAll(".", "\\."));
    alternatives.push(modules.length > 0 ? `${target}/(?!(?:${modules.join("|")})$)` : `${target}/`);
  }
  return alternatives.join("|");
}

/**
 * One config block per layer and folder depth, so that each regex knows how many `../` reach src/.
 * no-restricted-imports covers static imports and re-exports, type-only ones included;
 * no-restricted-syntax covers `import()` and `typeof import()`, which no-restricted-imports skips.
 */
function layerBlocks() {
  const blocks = [];
  for (const layer of Object.keys(LAYERS)) {
    const forbidden = forbiddenTargets(layer);
    const depths = layer === "platform" ? [-1] : Array.from({ length: MAX_DEPTH + 1 }, (_, depth) => depth);
    for (const depth of depths) {
      const patterns = [];
      if (forbidden) {
        const climb = depth < 0 ? "\\./" : `(?:\\.\\./){${depth + 1}}`;
        patterns.push({ regex: `^${climb}(?:${forbidden})`, message: `src/${layer} may import only ${LAYERS[layer].join(", ") || "nothing"} of src/ ${LAYERS_DOC}.` });
      }
      // An app is one folder: climbing out of it to a sibling (another app, builtin.ts) is refused.
      if (layer === "apps" && depth >= 1) {
        patterns.push({ regex: `^(?:\\.\\./){${depth}}[^./]`, message: `An app may not import another app; shared code goes to src/media ${LAYERS_DOC}.` });
      }
      if (patterns.length === 0) continue;
      const literal = (regex) => `/${regex.replaceAll("/", "\\/")}/u`;
      blocks.push({
        files: layer === "platform" ? ["src/platform.ts"] : [`src/${layer}/${"*/".repeat(depth)}*.{ts,tsx}`],
        rules: {
          "@typescript-eslint/no-restricted-imports": ["error", { patterns }],
          "no-restricted-syntax": [
            "error",
            ...patterns.flatMap(({ regex, message }) => [
              { selector: `ImportExpression[source.value=${literal(regex)}]`, message },
              { selector: `TSImportType[argument.literal.value=${literal(regex)}]`, message },
            ]),
          ],
        },
      });
    }
  }
  return blocks;
}

export default tseslint.config(
  { ignores: ["node_modules/**", "web/dist/**", ".darkroom/**"] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ["scripts/*.mjs", "bin/*.js", "eslint.config.js"] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        // node:test's describe/it return promises the runner itself tracks.
        { allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["describe", "it", "test", "suite", "before", "after", "beforeEach", "afterEach"] }] },
      ],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" }],
      "@typescript-eslint/only-throw-error": "off",
      "@typescript-eslint/require-await": "off",
    },
  },
  {
    // Tests read loosely typed JSON bodies and use fixtures freely.
    files: ["test/**/*.ts", "bench/**/*.ts"],
    rules: {
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/no-unsafe-return": "off",
      "@typescript-eslint/no-non-null-assertion": "off",
    },
  },
  { files: ["scripts/*.mjs", "bin/*.js", "eslint.config.js"], ...tseslint.configs.disableTypeChecked },
  ...layerBlocks(),
);
