/**
 * An app's revision: a hash of what it was built from, so that results are reused only within one
 * build of its code (a changed handler must never answer from its old results). For an app module
 * on this machine: the files of the module's folder (an app is one folder, as the built-in apps are),
 * its declared version, the weights it declares and Darkroom's own version, which covers the
 * platform code the app imports.
 * For an app served by remote runners: the manifest they registered (its version and schemas), since
 * the gateway never sees their code; such apps should bump their version with their code.
 * @module
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { AppManifest } from "../core/types.js";

/** Past these, a folder is described by its files' names, sizes and times instead of their bytes. */
const MAX_FILES = 256;
const MAX_BYTES = 64 * 1024 * 1024;

const darkroomVersion = ((): string => {
  try {
    return (createRequire(import.meta.url)("../../package.json") as { version?: string }).version ?? "unknown";
  } catch {
    return "unknown";
  }
})();

/** Darkroom's package version (part of every revision). */
export function platformVersion(): string {
  return darkroomVersion;
}

export function appRevision(app: AppManifest): string {
  // The weights it loads (a model re-pulled under the same name is another revision).
  const hash = createHash("sha256").update(JSON.stringify(["darkroom-app-revision-v1", app.id, app.version, darkroomVersion, app.weights ?? []]));
  const folder = app.remote || app.workflow ? null : folderOf(app.modulePath);
  if (folder) hashFolder(hash, folder);
  else hash.update(JSON.stringify(app.endpoints));
  return hash.digest("hex").slice(0, 32);
}

function folderOf(modulePath: string): string | null {
  // A Python app is named `file.py::Class`.
  const file = modulePath.split("::")[0] ?? modulePath;
  try {
    return statSync(file).isFile() ? path.dirname(file) : null;
  } catch {
    return null;
  }
}

function hashFolder(hash: ReturnType<typeof createHash>, folder: string): void {
  const files = readdirSync(folder, { withFileTypes: true })
    .filter((entry) => entry.isFile() && !entry.name.startsWith("."))
    .map((entry) => entry.name)
    .sort();
  const sizes = files.map((name) => statSync(path.join(folder, name)));
  const whole = files.length <= MAX_FILES && sizes.reduce((sum, s) => sum + s.size, 0) <= MAX_BYTES;
  files.forEach((name, i) => {
    hash.update(`\0${name}\0`);
    const stat = sizes[i];
    if (whole) hash.update(readFileSync(path.join(folder, name)));
    else if (stat) hash.update(`${stat.size}:${stat.mtimeMs}`);
  });
}
