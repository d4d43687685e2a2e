/**
 * What made a result (`GET /v1/requests/{id}/manifest`, docs/result-reuse.md): the runner that ran
 * it, described once when it starts (its app's version and revision, the weights the app declares,
 * Darkroom's and the runtime's versions, the machine) and kept in the store by its id; a request's
 * record keeps its runner's id as its lease owner. A HIT or JOINED result was made by the request
 * it reuses.
 * @module
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { hostname } from "node:os";
import type { AppManifest, RequestRecord } from "../core/types.js";
import { canonicalJson } from "../core/canonical-json.js";
import { isPythonAppSpec } from "../runtime/python-apps.js";
import type { RunnerRecord, Store } from "../store/store.js";
import { platformVersion } from "./app-revision.js";

/** The libraries that run the built-in models: their versions decide the numbers a model gives. */
const RUNTIME_PACKAGES = ["onnxruntime-node", "sharp", "@tensorflow/tfjs", "@tensorflow/tfjs-backend-wasm"];

const require = createRequire(import.meta.url);

const runtimePackages = ((): Record<string, string> => {
  const found: Record<string, string> = {};
  for (const name of RUNTIME_PACKAGES) {
    try {
      const file = require.resolve(`${name}/package.json`);
      const version = (JSON.parse(readFileSync(file, "utf8")) as { version?: string }).version;
      if (version) found[name] = version;
    } catch {
      // not installed, or its exports hide package.json: left out
    }
  }
  return found;
})();

export interface RunnerDescription {
  runner_id: string;
  kind: "local" | "remote";
  app_id: string;
  app_version: string;
  app_revision: string;
  weights: NonNullable<AppManifest["weights"]>;
  darkroom_version: string | null;
  runtime: Record<string, string>;
  host: { hostname: string; pid: number | null };
  started_at: string;
}

/** A runner this gateway starts: same machine, same installed packages. */
export function localRunnerRecord(app: AppManifest, revision: string, runner: { id: string; pid: number | null }, now = Date.now()): RunnerRecord {
  const python = isPythonAppSpec(app.modulePath);
  const description: RunnerDescription = {
    runner_id: runner.id,
    kind: "local",
    app_id: app.id,
    app_version: app.version,
    app_revision: revision,
    weights: app.weights ?? [],
    darkroom_version: platformVersion(),
    runtime: python
      ? { python: process.env["DARKROOM_PYTHON"] ?? "python3", platform: `${process.platform}-${process.arch}` }
      : { node: process.version, platform: `${process.platform}-${process.arch}`, ...runtimePackages },
    host: { hostname: hostname(), pid: runner.pid },
    started_at: new Date(now).toISOString(),
  };
  return { id: runner.id, appId: app.id, description: JSON.stringify(description), startedAt: now };
}

/** A remote runner, as it registered: the gateway knows its app's description and its machine, not its packages. */
export function remoteRunnerRecord(app: AppManifest, revision: string, runner: { id: string; hostname: string; pid: number | null }, now = Date.now()): RunnerRecord {
  const description: RunnerDescription = {
    runner_id: runner.id,
    kind: "remote",
    app_id: app.id,
    app_version: app.version,
    app_revision: revision,
    weights: app.weights ?? [],
    darkroom_version: null,
    runtime: {},
    host: { hostname: runner.hostname, pid: runner.pid },
    started_at: new Date(now).toISOString(),
  };
  return { id: runner.id, appId: app.id, description: JSON.stringify(description), startedAt: now };
}

/** The manifest of a request's result. */
export async function manifestOf(store: Store, record: RequestRecord): Promise<Record<string, unknown>> {
  // A reused result was made by the request it reuses (which ran: only computed results are kept).
  const maker = record.reusedFrom ? ((await store.get(record.reusedFrom)) ?? record) : record;
  const runner = maker.leaseOwner ? await store.getRunner(maker.leaseOwner) : null;
  return {
    request_id: record.id,
    app_id: record.appId,
    endpoint: record.endpoint,
    state: record.state,
    input_sha256: createHash("sha256").update(canonicalJson(record.input)).digest("hex"),
    seed: seedOf(maker),
    cache: record.cache,
    made_by: { request_id: maker.id, attempt: maker.attempt, started_at: iso(maker.startedAt), finished_at: iso(maker.finishedAt) },
    runner: runner ? (JSON.parse(runner.description) as RunnerDescription) : null,
    ...(runner ? {} : { note: maker.leaseOwner ? `runner ${maker.leaseOwner} left no description (a workflow's executor, or a runner from before manifests)` : "it never ran" }),
  };
}

/** The seed that made the output: the one it reports (a seed the app drew itself), else the input's. */
function seedOf(record: RequestRecord): number | null {
  const reported = (record.output as { seed?: unknown } | null)?.seed;
  if (typeof reported === "number") return reported;
  const given = (record.input as { seed?: unknown } | null)?.seed;
  return typeof given === "number" ? given : null;
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** For tests: the packages a local runner's manifest lists. */
export function runtimePackageVersions(): Record<string, string> {
  return { ...runtimePackages };
}

