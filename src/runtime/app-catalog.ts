/**
 * Discovers apps for the gateway by running the probe in a child process, so that app code (and
 * the model libraries it imports) is never loaded into the gateway.
 * @module
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { AppManifest } from "../core/types.js";
import { probeStart } from "./compiled-runtime.js";
import type { ProbeReply } from "./protocol.js";

const run = promisify(execFile);

export interface CatalogResult {
  apps: AppManifest[];
  /** Modules that failed to load, with the reason. */
  failures: { modulePath: string; error: string }[];
}

export async function probeApps(modulePaths: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<CatalogResult> {
  if (modulePaths.length === 0) return { apps: [], failures: [] };
  // Compiled when every module was (compiled-runtime.ts); the replies' module paths stay the ones asked for.
  const start = probeStart(modulePaths);
  const { stdout } = await run(process.execPath, [...start.execArgv, start.main, ...start.modulePaths], {
    env,
    maxBuffer: 64 * 1024 * 1024,
    timeout: 120_000,
  });
  const lastLine = stdout.trim().split("\n").pop() ?? "[]";
  const replies = JSON.parse(lastLine) as ProbeReply[];
  const result: CatalogResult = { apps: [], failures: [] };
  replies.forEach((reply, i) => {
    const modulePath = modulePaths[i] ?? "";
    if (reply.ok) result.apps.push({ ...reply.manifest, modulePath });
    else result.failures.push({ modulePath, error: reply.error });
  });
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
