/**
 * Where a model comes from, and what files it has: a Hugging Face repository (the Hub's HTTP API),
 * one file at an https URL, or a local folder.
 * @module
 */
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { isModelError, ModelError } from "./errors.js";
import { defaultModelName, validateModelName, validateModelPath } from "./names.js";
import { displayUrl, fetchJson, fetchWithRetry, type Transport } from "./transport.js";

export const DEFAULT_HF_ENDPOINT = "https://huggingface.co";

export type ModelSource =
  | { kind: "hf"; repo: string; revision: string; endpoint: string }
  /** A model another Darkroom gateway holds (`gateway:<name>`), for runners on other machines. */
  | { kind: "gateway"; gateway: string; name: string }
  | { kind: "url"; url: string; sha256: string | null }
  | { kind: "local"; dir: string };

/** One file of a source, before it is fetched. */
export interface SourceFile {
  /** Path inside the model, `/`-separated (`unet/model.onnx`). */
  path: string;
  /** Null when the source does not say (a URL answering without Content-Length). */
  size: number | null;
  /** Published sha256: the Hub's `lfs.oid`, or a URL's `#sha256=` fragment. */
  sha256: string | null;
  /** The Hub's git blob id (sha1) for files kept outside LFS. */
  gitOid: string | null;
  from: { url: string } | { file: string };
}

export interface SourceListing {
  source: ModelSource;
  /** The commit a Hub revision resolved to; null for other sources. */
  revision: string | null;
  defaultName: string;
  files: SourceFile[];
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX40 = /^[0-9a-f]{40}$/;
const REPO_ID = /^([a-z0-9][a-z0-9._-]*)\/([a-z0-9][a-z0-9._-]*)(?:@(.+))?$/i;

function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** https anywhere; plain http only to loopback (tests and a mirror on the same machine). */
export function checkRemoteUrl(text: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ModelError("ERR_MODEL_SOURCE_INVALID", `${what} is not a URL: '${text}'`);
  }
  if (url.protocol === "https:" || (url.protocol === "http:" && isLoopbackHost(url.hostname))) return url;
  throw new ModelError("ERR_MODEL_SOURCE_INVALID", `${what} must be https (plain http only on loopback): '${displayUrl(url.href)}'`);
}

export interface ParseOptions {
  revision?: string | undefined;
  /** `HF_ENDPOINT`, else the public Hub. */
  endpoint?: string | undefined;
  /** `DARKROOM_GATEWAY`: the gateway a `gateway:<name>` source names (the first of a comma list). */
  gateway?: string | undefined;
  cwd?: string;
}

/**
 * Reads a source argument. An existing folder wins over a repository id of the same spelling, so
 * `./org/name` and `org/name` both mean the folder when it exists.
 */
export async function parseSource(text: string, options: ParseOptions = {}): Promise<ModelSource> {
  const fromGateway = /^gateway:(.+)$/.exec(text);
  if (fromGateway) {
    const gateway = options.gateway?.split(",")[0]?.trim();
    if (!gateway) throw new ModelError("ERR_MODEL_SOURCE_INVALID", "a gateway: source needs DARKROOM_GATEWAY (the gateway's URL) and DARKROOM_RUNNER_TOKEN");
    let url: URL;
    try {
      url = new URL(gateway);
    } catch {
      throw new ModelError("ERR_MODEL_SOURCE_INVALID", `DARKROOM_GATEWAY is not a URL: '${gateway}'`);
    }
    // Gateways inside a cluster are plain http; the runner token is what guards the weights.
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new ModelError("ERR_MODEL_SOURCE_INVALID", "DARKROOM_GATEWAY must be an http(s) URL");
    return { kind: "gateway", gateway: url.origin, name: validateModelName(fromGateway[1] as string) };
  }
  if (/^https?:\/\//i.test(text)) {
    const url = checkRemoteUrl(text, "the source URL");
    const m = /^sha256=([0-9a-f]{64})$/i.exec(url.hash.slice(1));
    url.hash = "";
    return { kind: "url", url: url.href, sha256: m?.[1]?.toLowerCase() ?? null };
  }
  const dir = path.resolve(options.cwd ?? process.cwd(), text);
  const info = await stat(dir).catch(() => null);
  if (info?.isDirectory()) return { kind: "local", dir };
  const looksLocal = text.startsWith(".") || path.isAbsolute(text) || text.startsWith("~");
  const repo = REPO_ID.exec(text);
  if (repo && !looksLocal) {
    const revision = options.revision ?? repo[3] ?? "main";
    const endpoint = checkRemoteUrl(options.endpoint || DEFAULT_HF_ENDPOINT, "HF_ENDPOINT").href.replace(/\/+$/, "");
    return { kind: "hf", repo: `${repo[1]}/${repo[2]}`, revision, endpoint };
  }
  if (info) throw new ModelError("ERR_MODEL_SOURCE_INVALID", `'${text}' is a file, not a folder; pass its folder, or an https URL for a single file`);
  if (looksLocal) throw new ModelError("ERR_MODEL_NOT_FOUND", `no folder at '${text}'`);
  throw new ModelError("ERR_MODEL_SOURCE_INVALID", `'${text}' is neither a Hugging Face repository id (org/name[@revision]), an https URL, nor a folder`);
}

/** The Hub's `GET /api/models/{id}/tree/{rev}` entries (huggingface.js `ListFileEntry`). */
interface HubTreeEntry {
  /** "file" or "directory" (huggingface.js also allows "unknown"). */
  type: string;
  path: string;
  size: number;
  oid: string;
  lfs?: { oid: string; size: number; pointerSize?: number };
}

function encodePath(p: string): string {
  return p.split("/").map(encodeURIComponent).join("/");
}

/** `Link: <url>; rel="next"`, how the Hub pages long tree listings. */
function nextLink(res: Response): string | null {
  const link = res.headers.get("link");
  if (!link) return null;
  for (const part of link.split(",")) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (m?.[1]) return m[1];
  }
  return null;
}

async function listHub(t: Transport, source: Extract<ModelSource, { kind: "hf" }>): Promise<SourceListing> {
  const base = `${source.endpoint}/api/models/${source.repo}`;
  // Pin the revision to a commit first: a branch that moves mid-pull must not mix two versions.
  const { body: info } = await fetchJson<{ sha?: string }>(t, `${base}/revision/${encodeURIComponent(source.revision)}`);
  const commit = typeof info.sha === "string" && HEX40.test(info.sha) ? info.sha : source.revision;
  const files: SourceFile[] = [];
  let page: string | null = `${base}/tree/${encodeURIComponent(commit)}?recursive=true`;
  const origin = new URL(source.endpoint).origin;
  while (page) {
    const { body, response }: { body: HubTreeEntry[]; response: Response } = await fetchJson<HubTreeEntry[]>(t, page);
    if (!Array.isArray(body)) throw new ModelError("ERR_MODEL_DOWNLOAD", `${displayUrl(page)} did not answer a file list`);
    for (const entry of body) {
      if (entry.type !== "file") continue;
      const p = validateModelPath(entry.path);
      const lfsOid = entry.lfs?.oid?.toLowerCase();
      files.push({
        path: p,
        size: entry.lfs?.size ?? entry.size,
        sha256: lfsOid && HEX64.test(lfsOid) ? lfsOid : null,
        gitOid: !entry.lfs && HEX40.test(entry.oid) ? entry.oid : null,
        from: { url: `${source.endpoint}/${source.repo}/resolve/${encodeURIComponent(commit)}/${encodePath(p)}` },
      });
    }
    const next = nextLink(response);
    // A next link to another origin would carry the token elsewhere; the Hub never sends one.
    page = next && new URL(next, page).origin === origin ? new URL(next, page).href : null;
  }
  const name = source.repo.split("/")[1] ?? source.repo;
  return { source, revision: commit, defaultName: defaultModelName(name), files };
}

async function listUrl(t: Transport, source: Extract<ModelSource, { kind: "url" }>): Promise<SourceListing> {
  const base = path.posix.basename(new URL(source.url).pathname);
  const p = validateModelPath(decodeURIComponent(base) || "model.bin");
  let size: number | null = null;
  // The size is only for the disk check and the progress bar; a server without HEAD still works.
  // A host that cannot be reached at all fails the pull here, before the download's own retries.
  const head = await fetchWithRetry(t, source.url, { method: "HEAD" }).catch((err: unknown) => {
    if (isModelError(err, "ERR_MODEL_UNREACHABLE")) throw err;
    return null;
  });
  const length = head?.ok ? Number(head.headers.get("content-length")) : NaN;
  if (Number.isSafeInteger(length) && length >= 0) size = length;
  return { source, revision: null, defaultName: defaultModelName(p), files: [{ path: p, size, sha256: source.sha256, gitOid: null, from: { url: source.url } }] };
}

async function listLocal(source: Extract<ModelSource, { kind: "local" }>): Promise<SourceListing> {
  const files: SourceFile[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(path.join(source.dir, rel), { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      // Dot folders are VCS and cache state (.git, .cache/huggingface), never model files.
      if (entry.name.startsWith(".")) continue;
      const childRel = rel ? `${rel}/${entry.name}` : entry.name;
      const full = path.join(source.dir, childRel);
      const info = await stat(full);
      if (info.isDirectory()) await walk(childRel);
      else if (info.isFile()) files.push({ path: validateModelPath(childRel), size: info.size, sha256: null, gitOid: null, from: { file: full } });
    }
  };
  await walk("");
  return { source, revision: null, defaultName: defaultModelName(path.basename(source.dir)), files };
}

/** `GET /runner/v1/models/{name}` on a gateway: the files of a model it holds, with their sha256. */
async function listGateway(t: Transport, source: Extract<ModelSource, { kind: "gateway" }>): Promise<SourceListing> {
  const { body } = await fetchJson<{ name: string; files: { path: string; sha256: string; size: number }[] }>(t, `${source.gateway}/runner/v1/models/${encodeURIComponent(source.name)}`);
  if (!Array.isArray(body.files)) throw new ModelError("ERR_MODEL_DOWNLOAD", `${source.gateway} did not answer a file list for ${source.name}`);
  const files: SourceFile[] = body.files.map((f) => {
    if (!HEX64.test(f.sha256)) throw new ModelError("ERR_MODEL_DOWNLOAD", `${source.gateway} sent a malformed sha256 for ${f.path}`);
    return { path: validateModelPath(f.path), size: f.size, sha256: f.sha256, gitOid: null, from: { url: `${source.gateway}/runner/v1/models/blobs/${f.sha256}` } };
  });
  return { source, revision: null, defaultName: source.name, files };
}

export async function listSource(t: Transport, source: ModelSource): Promise<SourceListing> {
  switch (source.kind) {
    case "hf":
      return listHub(t, source);
    case "gateway":
      return listGateway(t, source);
    case "url":
      return listUrl(t, source);
    case "local":
      return listLocal(source);
  }
}

/** How a manifest records its source, so `models show` can say where a model came from. */
export function describeSource(source: ModelSource): string {
  switch (source.kind) {
    case "hf":
      return `hf:${source.repo}@${source.revision}`;
    case "gateway":
      return `gateway:${source.name}@${source.gateway}`;
    case "url":
      return displayUrl(source.url);
    case "local":
      return source.dir;
  }
}
