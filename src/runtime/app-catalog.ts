/**
 * Discovers apps for the gateway by running the probe in a child process, so that app code (and
 * the model libraries it imports) is never loaded into the gateway.
 * @module
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { AppManifest } from "../core/types.js";
import type { ProbeReply } from "./protocol.js";
import { TSX_LOADER } from "./tsx-loader.js";

const PROBE_MAIN = fileURLToPath(new URL("./probe-main.ts", import.meta.url));
const run = promisify(execFile);

export interface CatalogResult {
  apps: AppManifest[];
  /** Modules that failed to load, with the reason. */
  failures: { modulePath: string; error: string }[];
}

export async function probeApps(modulePaths: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<CatalogResult> {
  if (modulePaths.length === 0) return { apps: [], failures: [] };
  const { stdout } = await run(process.execPath, ["--import", TSX_LOADER, PROBE_MAIN, ...modulePaths], {
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
  const seen = new Set<string>();
  for (const app of result.apps) {
    if (seen.has(app.id)) throw new Error(`Two app modules declare the id ${app.id}`);
    seen.add(app.id);
  }
  return result;
}
