/**
 * Discovers apps for the gateway by running the probe in a child process, so that app code (and
 * the model libraries it imports) is never loaded into the gateway. Python app files are read by
 * their own runner (python-apps.ts).
 * @module
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { AppManifest } from "../core/types.js";
import { probeStart } from "./compiled-runtime.js";
import type { ProbeReply } from "./protocol.js";
import { isPythonAppSpec, probePythonApp } from "./python-apps.js";

const run = promisify(execFile);

export interface CatalogResult {
  apps: AppManifest[];
  /** Modules that failed to load, with the reason. */
  failures: { modulePath: string; error: string }[];
}

export async function probeApps(modulePaths: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<CatalogResult> {
  if (modulePaths.length === 0) return { apps: [], failures: [] };
  // Node modules are probed together in one child; each Python app file by its own runner (python-apps.ts).
  const nodeModules = modulePaths.filter((p) => !isPythonAppSpec(p));
  const [nodeReplies, pythonReplies] = await Promise.all([
    probeNodeModules(nodeModules, env),
    Promise.all(
      modulePaths.filter(isPythonAppSpec).map((spec) =>
        probePythonApp(spec, env).then(
          (manifest): AppReply => ({ ok: true, manifest }),
          (err: unknown): AppReply => ({ ok: false, error: err instanceof Error ? err.message : String(err) }),
        ),
      ),
    ),
  ]);
  const result: CatalogResult = { apps: [], failures: [] };
  // In the order asked: which module comes first decides who serves an id (below).
  let [nodeIndex, pythonIndex] = [0, 0];
  for (const modulePath of modulePaths) {
    const reply = isPythonAppSpec(modulePath) ? pythonReplies[pythonIndex++] : nodeReplies[nodeIndex++];
    if (reply?.ok) result.apps.push({ ...reply.manifest, modulePath });
    else result.failures.push({ modulePath, error: reply?.error ?? "the probe gave no answer" });
  }
  // The first module to declare an id serves it: built-ins and --apps come before the apps made for
  // pulled models, so a model pulled under a built-in's name cannot take that app over.
  const first = new Map<string, string>();
  result.apps = result.apps.filter((app) => {
    const owner = first.get(app.id);
    if (owner === undefined) {
      first.set(app.id, app.modulePath);
      return true;
    }
    result.failures.push({ modulePath: app.modulePath, error: `${app.id} is already served by ${owner}` });
    return false;
  });
  return result;
}

type AppReply = { ok: true; manifest: Omit<AppManifest, "modulePath"> } | { ok: false; error: string };

async function probeNodeModules(modulePaths: readonly string[], env: NodeJS.ProcessEnv): Promise<ProbeReply[]> {
  if (modulePaths.length === 0) return [];
  // Compiled when every module was (compiled-runtime.ts); the replies' module paths stay the ones asked for.
  const start = probeStart(modulePaths);
  const { stdout } = await run(process.execPath, [...start.execArgv, start.main, ...start.modulePaths], {
    env,
    maxBuffer: 64 * 1024 * 1024,
    timeout: 120_000,
  });
  const lastLine = stdout.trim().split("\n").pop() ?? "[]";
  return JSON.parse(lastLine) as ProbeReply[];
}
