/**
 * Workflows kept as files: `<dir>/<owner>/<name>.json`, each a document in fal's format
 * (document.ts), registered when the gateway starts (`--workflows-dir`, and the examples in this
 * checkout's `workflows/`).
 * @module
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { WorkflowDocument } from "./document.js";

/** The example workflows over the built-in apps, in this checkout. */
export const BUILTIN_WORKFLOWS_DIR = fileURLToPath(new URL("../../workflows/", import.meta.url));

export type WorkflowFile = { file: string; id: string } & ({ ok: true; doc: WorkflowDocument } | { ok: false; error: string });

const OWNER = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** Every `<owner>/<name>.json` under `dir`, parsed (an unreadable one says why); none when `dir` is missing. */
export function readWorkflowFiles(dir: string): WorkflowFile[] {
  let owners: string[];
  try {
    owners = readdirSync(dir).filter((entry) => statSync(path.join(dir, entry)).isDirectory()).sort();
  } catch {
    return [];
  }
  const found: WorkflowFile[] = [];
  for (const owner of owners) {
    for (const entry of readdirSync(path.join(dir, owner)).filter((e) => e.endsWith(".json")).sort()) {
      const file = path.join(dir, owner, entry);
      const name = entry.slice(0, -".json".length);
      const id = `${owner}/${name}`;
      if (!OWNER.test(owner)) {
        found.push({ file, id, ok: false, error: `"${owner}" is not an owner name (lower case letters, digits and '-')` });
        continue;
      }
      try {
        const parsed = WorkflowDocument.safeParse({ name, ...(JSON.parse(readFileSync(file, "utf8")) as object) });
        if (!parsed.success) found.push({ file, id, ok: false, error: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") });
        else if (parsed.data.name !== name) found.push({ file, id, ok: false, error: `the file is named ${name} but the document says ${parsed.data.name}` });
        else found.push({ file, id, ok: true, doc: parsed.data });
      } catch (err) {
        found.push({ file, id, ok: false, error: err instanceof Error ? err.message : String(err) });
      }
    }
  }
  return found;
}
