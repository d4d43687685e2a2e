/**
 * The licence of a pulled model's weights, as the model's own files state it, for the `license`
 * line `/v1/models` shows. The app cannot know which checkpoint an operator pulled under a name (a
 * random test model, an LCM, a fine-tune pulled as `sd-turbo`), so it claims no licence the files
 * do not state: where they state none it says "unknown" and names the model and where it came from.
 *
 * Where a licence is looked for, first match wins:
 * 1. `README.md`'s YAML front matter (the Hugging Face model card): `license: <id>`; for
 *    `license: other`, the card's `license_name` and `license_link`, else the LICENSE file's title;
 * 2. a `LICENSE`/`LICENCE`/`COPYING` file (`.md`, `.txt` or none) at the top of the model: its title line.
 *
 * Neither `model_index.json` (diffusers records no licence there) nor the manager's manifest (it
 * records where the files came from, not their terms) says anything about a licence.
 * @module
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { ModelManager, ModelManifest } from "../../models/index.js";

/** A licence the files state, and the file that states it (relative to the model's folder). */
export interface StatedLicense {
  license: string;
  file: string;
}

/** The runner API refuses a longer `metadata.license` (src/gateway/routes/runner-api.ts), and remote runners register through it. */
export const MAX_LICENSE_LINE = 200;
/** Room for one licence name or link in the line; the rest of the line is the model's name and source. */
const MAX_PART = 90;

const LICENSE_FILE = /^(licen[cs]e|copying)(\.(md|txt))?$/i;

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** The file's text, or null when it is not there or not readable (a dangling link, say). */
function readText(file: string): string | null {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return null;
  }
}

/** A YAML scalar without its quotes and trailing comment: model cards use no more of YAML than this for these keys. */
function scalar(raw: string): string {
  const value = raw.trim();
  const quoted = /^(["'])(.*?)\1(\s+#.*)?$/.exec(value);
  if (quoted) return quoted[2]!.trim();
  // A comment starts at " #"; a URL's fragment ("...#section") has no space before it.
  return value.replace(/\s+#.*$/, "").trim();
}

/**
 * The top-level keys of a front matter block (`---` … `---` at the start of the text), each as its
 * scalar or list of scalars (flow `[a, b]` or block `- a` items). Nested maps and multi-line
 * strings are skipped: no licence key uses them.
 */
export function frontMatter(text: string): Map<string, string | string[]> {
  const keys = new Map<string, string | string[]>();
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  if (lines[0]?.trim() !== "---") return keys;
  let listKey: string | null = null;
  for (const line of lines.slice(1)) {
    if (line.trim() === "---" || line.trim() === "...") break;
    const item = /^\s*-\s+(.*)$/.exec(line);
    if (item && listKey !== null) {
      const list = keys.get(listKey);
      if (Array.isArray(list)) list.push(scalar(item[1]!));
      continue;
    }
    const entry = /^([A-Za-z_][\w-]*)\s*:(.*)$/.exec(line);
    if (!entry) {
      // An indented line belongs to a nested value of the key above; anything else ends a list.
      if (!/^\s/.test(line)) listKey = null;
      continue;
    }
    const key = entry[1]!;
    const value = entry[2]!.trim();
    listKey = null;
    if (value === "") {
      keys.set(key, []);
      listKey = key;
    } else if (value.startsWith("[") && value.endsWith("]")) {
      keys.set(key, value.slice(1, -1).split(",").map(scalar).filter(Boolean));
    } else keys.set(key, scalar(value));
  }
  return keys;
}

/** A licence file's name for itself: its first line ("MIT License"), with a version line after it joined on ("Apache License, Version 2.0"). */
function licenseTitle(text: string): string | null {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.replace(/^[\s#*=_-]+|[\s#*=_]+$/g, "").trim())
    .filter(Boolean);
  const [first, second] = lines;
  // A file that opens with its copyright notice names no licence (MIT's text often does): point at it instead.
  if (!first || /^copyright\b|^\(c\)|^©/i.test(first)) return null;
  const version = second && /^version\s+\d/i.test(second) ? `, ${second.replace(/,.*$/, "")}` : "";
  return `${first}${version}`;
}

/** The licence file at the top of the model folder and its title (or a pointer to it when it has none). */
function licenseFile(dir: string): StatedLicense | null {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => LICENSE_FILE.test(n)).sort();
  } catch {
    return null;
  }
  for (const name of names) {
    const text = readText(path.join(dir, name));
    if (text === null || text.trim() === "") continue;
    return { license: clip(licenseTitle(text) ?? `the terms in ${name}`, MAX_PART), file: name };
  }
  return null;
}

/** The licence the files in `dir` (a pulled model's folder) state, or null when they state none. */
export function statedLicense(dir: string): StatedLicense | null {
  const readme = readText(path.join(dir, "README.md"));
  const card = readme === null ? new Map<string, string | string[]>() : frontMatter(readme);
  const declared = card.get("license");
  const ids = (Array.isArray(declared) ? declared : declared ? [declared] : []).filter((id) => id !== "");
  const file = licenseFile(dir);
  if (ids.length === 0) return file;
  if (ids.length === 1 && ids[0]!.toLowerCase() === "other") {
    // The Hub's convention for a licence without an SPDX-like id: its name and link sit beside it.
    const name = card.get("license_name");
    const link = card.get("license_link");
    const named = typeof name === "string" && name !== "" ? name : null;
    const linked = typeof link === "string" && link !== "" ? link : null;
    if (named) return { license: clip(linked ? `${named} (${linked})` : named, MAX_PART), file: "README.md" };
    if (file) return file;
    return { license: clip(linked ? `other (${linked})` : "other (no name given)", MAX_PART), file: "README.md" };
  }
  return { license: clip(ids.join(", "), MAX_PART), file: "README.md" };
}

/**
 * The `license` line of a text-to-image app over the model pulled as `model`: the app's code is MIT,
 * the weights are under what the model's files state. Read when the app module loads (in the
 * gateway's probe and in each runner), like the rest of its metadata; a model pulled later is picked
 * up at the restart the unavailable app's remedy asks for.
 */
export function modelLicenseLine(models: ModelManager | null, model: string): string {
  const line = (weights: string): string => clip(`MIT (code); model weights: ${weights}`, MAX_LICENSE_LINE);
  let manifest: ModelManifest | null = null;
  try {
    manifest = models ? (JSON.parse(readFileSync(models.manifestPath(model), "utf8")) as ModelManifest) : null;
  } catch {
    manifest = null;
  }
  if (!models || !manifest) return line(`unknown until '${model}' is pulled (its files' licence applies)`);
  const stated = statedLicense(models.modelDir(model));
  if (stated) return line(`${stated.license} (as stated in ${stated.file} of '${model}')`);
  // The source is what lets a reader look the licence up; a long folder path keeps its informative end.
  const source = manifest.source.length > MAX_PART ? `…${manifest.source.slice(-(MAX_PART - 1))}` : manifest.source;
  return line(`unknown (no licence in the files of '${model}', pulled from ${source})`);
}
