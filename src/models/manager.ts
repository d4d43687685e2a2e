/**
 * The model manager: pulls models into a content-addressed cache under `<dataDir>/models` and
 * hands them to ONNX Runtime by path.
 *
 * ```
 * models/blobs/sha256/<hash>        one read-only file per distinct content
 * models/manifests/<name>.json      source, revision, path → hash and size, pulled at
 * models/files/<name>/unet/model.onnx   hard links (symlinks across devices) to the blobs
 * models/tmp/<key>.partial          interrupted downloads, resumed by the next pull
 * ```
 *
 * Two models that share a file store it once. `remove` deletes a manifest and its folder, then
 * collects blobs no manifest names.
 * @module
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, type ReadStream } from "node:fs";
import { chmod, copyFile, link, mkdir, open, readdir, readFile, rename, rm, stat, statfs, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { digestFile, downloadResumable } from "./download.js";
import { isModelError, ModelError } from "./errors.js";
import { hubAlternatives } from "./hub-alternatives.js";
import { missingFiles, type ModelLayout } from "./layout.js";
import { defaultModelName, validateModelName, validateModelPath } from "./names.js";
import { ProgressTracker, type ProgressListener } from "./progress.js";
import { describeSource, listSource, parseSource, type ModelSource, type SourceFile, type SourceListing } from "./sources.js";
import { DEFAULT_ATTEMPTS, type Transport } from "./transport.js";

export interface ManifestFile {
  path: string;
  sha256: string;
  size: number;
}

export interface ModelManifest {
  name: string;
  /** `hf:org/name@main`, a URL without its query, or a folder. */
  source: string;
  sourceKind: "hf" | "url" | "local" | "gateway";
  /** The commit a Hub revision resolved to. */
  revision: string | null;
  layout: ModelLayout;
  files: ManifestFile[];
  totalBytes: number;
  pulledAt: string;
}

export interface ModelManagerOptions {
  dataDir: string;
  /** Reads `HF_ENDPOINT` and `HF_TOKEN`. Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  /** Free bytes on the file system holding `dir`; tests inject a small number. */
  freeBytes?: (dir: string) => Promise<number>;
  /** @default 5 */
  attempts?: number;
  /** First retry delay, doubling. @default 1000 */
  retryDelayMs?: number;
  now?: () => Date;
}

export interface PullOptions {
  /** Defaults to the repository, file or folder name. */
  name?: string;
  /** Hub revision (branch, tag or commit); `org/name@rev` in the source does the same. */
  revision?: string;
  /** `diffusers-onnx` (default for repositories and folders) refuses a model without its required files. */
  layout?: ModelLayout;
  onProgress?: ProgressListener;
  /** One line per step worth telling the user ("resolved main to 1a2b…", "3 files already cached"). */
  onInfo?: (text: string) => void;
  signal?: AbortSignal;
}

export interface RemoveResult {
  removedBlobs: number;
  freedBytes: number;
}

/** Bytes kept free beyond what a pull needs: a full disk breaks SQLite and the rest of the server. */
const DISK_HEADROOM = 16 * 1024 * 1024;

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

async function defaultFreeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => null)) !== null;
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

const HEX64 = /^[0-9a-f]{64}$/;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export class ModelManager {
  readonly root: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #fetch: typeof fetch;
  readonly #freeBytes: (dir: string) => Promise<number>;
  readonly #attempts: number;
  readonly #retryDelayMs: number;
  readonly #now: () => Date;

  constructor(options: ModelManagerOptions) {
    this.root = path.join(path.resolve(options.dataDir), "models");
    this.#env = options.env ?? process.env;
    this.#fetch = options.fetch ?? fetch;
    this.#freeBytes = options.freeBytes ?? defaultFreeBytes;
    this.#attempts = options.attempts ?? DEFAULT_ATTEMPTS;
    this.#retryDelayMs = options.retryDelayMs ?? 1000;
    this.#now = options.now ?? (() => new Date());
  }

  blobPath(sha256: string): string {
    if (!HEX64.test(sha256)) throw new ModelError("ERR_MODEL_NOT_FOUND", `not a sha256: '${sha256}'`);
    return path.join(this.root, "blobs", "sha256", sha256);
  }

  /** The folder ONNX Runtime opens files in: `path.join(modelDir(name), "unet/model.onnx")`. */
  modelDir(name: string): string {
    return path.join(this.root, "files", validateModelName(name));
  }

  /** Where the manifest of the model pulled as `name` is; it exists exactly when the model does. */
  manifestPath(name: string): string {
    return path.join(this.root, "manifests", `${validateModelName(name)}.json`);
  }

  #transport(source: { kind: string; endpoint?: string; gateway?: string }): Transport {
    if (source.kind === "gateway" && source.gateway) {
      // A gateway's weights need the runner token, sent to that gateway only.
      return { ...this.#transport({ kind: "none" }), token: this.#env["DARKROOM_RUNNER_TOKEN"]?.trim() || null, tokenOrigin: new URL(source.gateway).origin };
    }
    const token = this.#env["HF_TOKEN"]?.trim() || null;
    return {
      fetch: this.#fetch,
      attempts: this.#attempts,
      retryDelayMs: this.#retryDelayMs,
      token,
      // The token is for the Hub only: a plain URL source never sees it.
      tokenOrigin: source.kind === "hf" && source.endpoint ? new URL(source.endpoint).origin : null,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    };
  }

  /** Resolves and lists a source without downloading anything. */
  async inspect(sourceText: string, options: Pick<PullOptions, "revision"> = {}): Promise<SourceListing> {
    const source = await parseSource(sourceText, { revision: options.revision, endpoint: this.#env["HF_ENDPOINT"], gateway: this.#env["DARKROOM_GATEWAY"] });
    return this.#list(this.#transport(source), source, null);
  }

  /** Lists a source; when the Hub cannot be reached, the error names the sources that need no Hub. */
  async #list(transport: Transport, source: ModelSource, name: string | null): Promise<SourceListing> {
    try {
      return await listSource(transport, source);
    } catch (err) {
      if (source.kind !== "hf" || !isModelError(err, "ERR_MODEL_UNREACHABLE")) throw err;
      const alternatives = hubAlternatives({ repo: source.repo, endpoint: source.endpoint, name: name ?? defaultModelName(source.repo.split("/")[1] ?? source.repo) });
      throw new ModelError(err.code, `${err.message}\n${alternatives}`, { cause: err.cause });
    }
  }

  /**
   * One writer per data folder: a removal's garbage collection must not delete the blobs a
   * concurrent pull has fetched but not yet named in a manifest, and two pulls must not append to
   * the same partial file. The lock file holds the owner's pid; a dead owner's lock is taken over.
   */
  async #locked<T>(fn: () => Promise<T>): Promise<T> {
    await mkdir(this.root, { recursive: true });
    const lock = path.join(this.root, ".lock");
    for (let tries = 0; ; tries++) {
      try {
        const fh = await open(lock, "wx");
        await fh.writeFile(String(process.pid));
        await fh.close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST" || tries > 2) throw err;
        const owner = Number((await readFile(lock, "utf8").catch(() => "")).trim());
        if (Number.isInteger(owner) && owner > 0 && processAlive(owner)) {
          throw new ModelError("ERR_MODEL_BUSY", `another pull or removal (pid ${owner}) is using ${this.root}; wait for it to finish`);
        }
        await rm(lock, { force: true });
      }
    }
    try {
      return await fn();
    } finally {
      await rm(lock, { force: true });
    }
  }

  async pull(sourceText: string, options: PullOptions = {}): Promise<ModelManifest> {
    if (options.name !== undefined) validateModelName(options.name);
    return this.#locked(() => this.#pull(sourceText, options));
  }

  async #pull(sourceText: string, options: PullOptions): Promise<ModelManifest> {
    const source = await parseSource(sourceText, { revision: options.revision, endpoint: this.#env["HF_ENDPOINT"], gateway: this.#env["DARKROOM_GATEWAY"] });
    const transport = this.#transport(source);
    const listing = await this.#list(transport, source, options.name ?? null);
    const name = options.name ?? listing.defaultName;
    const layout = options.layout ?? (source.kind === "url" || source.kind === "gateway" ? "any" : "diffusers-onnx");
    if (listing.revision && source.kind === "hf" && listing.revision !== source.revision) options.onInfo?.(`${source.repo}@${source.revision} is commit ${listing.revision}`);

    const seen = new Set<string>();
    for (const f of listing.files) {
      if (seen.has(f.path)) throw new ModelError("ERR_MODEL_SOURCE_INVALID", `the source lists '${f.path}' twice`);
      seen.add(f.path);
    }
    const missing = missingFiles(layout, seen);
    if (missing.length > 0) {
      throw new ModelError(
        "ERR_MODEL_FILE_MISSING",
        `${describeSource(source)} is not a complete ${layout} model: missing ${missing.join(", ")}${listing.files.length === 0 ? " (the source lists no files)" : ""}`,
      );
    }

    for (const dir of ["blobs/sha256", "manifests", "files", "tmp"]) await mkdir(path.join(this.root, dir), { recursive: true });

    // Files whose published hash is already a blob need no transfer; the rest are fetched.
    const todo: SourceFile[] = [];
    for (const f of listing.files) if (!(f.sha256 && (await exists(this.blobPath(f.sha256))))) todo.push(f);
    if (todo.length < listing.files.length) options.onInfo?.(`${listing.files.length - todo.length} of ${listing.files.length} files already in the cache`);

    let need = 0;
    let known = true;
    for (const f of todo) {
      if (f.size === null) {
        known = false;
        continue;
      }
      const partial = "url" in f.from ? await stat(this.#partialPath(f)).catch(() => null) : null;
      need += Math.max(f.size - (partial?.size ?? 0), 0);
    }
    const free = await this.#freeBytes(this.root);
    if (need + DISK_HEADROOM > free) {
      throw new ModelError(
        "ERR_MODEL_DISK_FULL",
        `not enough disk space for ${name}: ${formatBytes(need)} to download (plus ${formatBytes(DISK_HEADROOM)} kept free), ${formatBytes(free)} free at ${this.root}`,
      );
    }

    const tracker = new ProgressTracker(known ? need : null, todo.length, options.onProgress);
    const hashes = new Map<string, { sha256: string; size: number }>();
    for (const f of listing.files) if (f.sha256 && !todo.includes(f)) hashes.set(f.path, { sha256: f.sha256, size: (await stat(this.blobPath(f.sha256))).size });
    for (const f of todo) {
      tracker.startFile(f.path);
      hashes.set(f.path, await this.#fetchBlob(transport, f, tracker, options.signal));
      tracker.endFile();
    }

    const files: ManifestFile[] = listing.files.map((f) => {
      const h = hashes.get(f.path);
      if (!h) throw new Error(`no hash for ${f.path}`);
      return { path: f.path, sha256: h.sha256, size: h.size };
    });
    const manifest: ModelManifest = {
      name,
      source: describeSource(source),
      sourceKind: source.kind,
      revision: listing.revision,
      layout,
      files,
      totalBytes: files.reduce((sum, f) => sum + f.size, 0),
      pulledAt: this.#now().toISOString(),
    };
    await this.#linkFolder(manifest);
    await writeAtomic(this.manifestPath(name), `${JSON.stringify(manifest, null, 2)}\n`);
    // A re-pull under the same name may have dropped files of the previous version.
    await this.#gc();
    return manifest;
  }

  #partialPath(f: SourceFile): string {
    const key = f.sha256 ?? createHash("sha256").update("url" in f.from ? f.from.url.split("?")[0] ?? "" : f.path).digest("hex");
    return path.join(this.root, "tmp", `${key}.partial`);
  }

  async #fetchBlob(t: Transport, f: SourceFile, tracker: ProgressTracker, signal: AbortSignal | undefined): Promise<{ sha256: string; size: number }> {
    const partial = this.#partialPath(f);
    if ("url" in f.from) {
      const resumed = await stat(partial).catch(() => null);
      if (resumed?.size) tracker.add(resumed.size);
      await downloadResumable(t, { url: f.from.url, size: f.size }, partial, { onBytes: (n) => tracker.add(n), ...(signal ? { signal } : {}) });
    } else {
      await copyFile(f.from.file, partial);
      tracker.add(f.size ?? 0);
    }
    const digest = await digestFile(partial);
    const expected = f.sha256 ?? null;
    const badSha = expected !== null && digest.sha256 !== expected;
    const badGit = f.gitOid !== null && digest.gitSha1 !== f.gitOid;
    if (badSha || badGit || (f.size !== null && digest.size !== f.size)) {
      await rm(partial, { force: true });
      const what = badSha ? `sha256 ${digest.sha256}, expected ${expected}` : badGit ? `git blob id ${digest.gitSha1}, expected ${f.gitOid}` : `${digest.size} bytes, expected ${f.size}`;
      throw new ModelError("ERR_MODEL_CHECKSUM", `${f.path} failed verification (${what}); the partial download was deleted`);
    }
    const blob = this.blobPath(digest.sha256);
    if (await exists(blob)) await rm(partial, { force: true });
    else {
      await chmod(partial, 0o444);
      await rename(partial, blob);
    }
    return { sha256: digest.sha256, size: digest.size };
  }

  /** Builds the model folder beside the old one, then swaps, so a runner never sees a half folder. */
  async #linkFolder(manifest: ModelManifest): Promise<void> {
    const final = this.modelDir(manifest.name);
    const staging = path.join(this.root, "files", `.${manifest.name}.${randomBytes(4).toString("hex")}`);
    for (const f of manifest.files) {
      const target = path.join(staging, ...validateModelPath(f.path).split("/"));
      await mkdir(path.dirname(target), { recursive: true });
      const blob = this.blobPath(f.sha256);
      try {
        await link(blob, target);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== "EXDEV" && code !== "EPERM" && code !== "EMLINK") throw err;
        await symlink(path.relative(path.dirname(target), blob), target);
      }
    }
    const old = `${staging}.old`;
    const hadOld = await exists(final);
    if (hadOld) await rename(final, old);
    await rename(staging, final);
    if (hadOld) await rm(old, { recursive: true, force: true });
  }

  async get(name: string): Promise<ModelManifest | null> {
    try {
      return JSON.parse(await readFile(this.manifestPath(name), "utf8")) as ModelManifest;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  async show(name: string): Promise<ModelManifest> {
    const m = await this.get(name);
    if (!m) throw new ModelError("ERR_MODEL_NOT_FOUND", `no model named '${name}' (see 'darkroom models list')`);
    return m;
  }

  async list(): Promise<ModelManifest[]> {
    const dir = path.join(this.root, "manifests");
    const names = await readdir(dir).catch(() => [] as string[]);
    const out: ModelManifest[] = [];
    for (const file of names.sort()) {
      if (!file.endsWith(".json")) continue;
      const m = await this.get(file.slice(0, -5)).catch(() => null);
      if (m) out.push(m);
    }
    return out;
  }

  async remove(name: string): Promise<RemoveResult> {
    await this.show(name);
    return this.#locked(async () => {
      await rm(this.manifestPath(name), { force: true });
      await rm(this.modelDir(name), { recursive: true, force: true });
      return this.#gc();
    });
  }

  /** Deletes blobs that no manifest names. */
  async gc(): Promise<RemoveResult> {
    return this.#locked(() => this.#gc());
  }

  async #gc(): Promise<RemoveResult> {
    const referenced = new Set<string>();
    for (const m of await this.list()) for (const f of m.files) referenced.add(f.sha256);
    const dir = path.join(this.root, "blobs", "sha256");
    let removedBlobs = 0;
    let freedBytes = 0;
    for (const hash of await readdir(dir).catch(() => [] as string[])) {
      if (referenced.has(hash)) continue;
      const p = path.join(dir, hash);
      freedBytes += (await stat(p).catch(() => null))?.size ?? 0;
      await rm(p, { force: true });
      removedBlobs++;
    }
    return { removedBlobs, freedBytes };
  }

  // --- Serving weights to runners on other machines ---

  /** The files of a model with their hashes: what a remote runner compares against its own cache. */
  async files(name: string): Promise<ManifestFile[]> {
    return (await this.show(name)).files;
  }

  /**
   * A stream of one blob, optionally a byte range (inclusive `end`, as in HTTP ranges). Only blobs
   * some manifest names are served, so a hash is not an oracle for arbitrary files.
   */
  async openBlob(sha256: string, range: { start?: number; end?: number } = {}): Promise<{ stream: ReadStream; size: number }> {
    const file = this.blobPath(sha256);
    const referenced = (await this.list()).some((m) => m.files.some((f) => f.sha256 === sha256));
    const info = referenced ? await stat(file).catch(() => null) : null;
    if (!info) throw new ModelError("ERR_MODEL_NOT_FOUND", `no blob ${sha256}`);
    const start = range.start ?? 0;
    const end = range.end ?? info.size - 1;
    if (start < 0 || start > end + 1 || end >= info.size) throw new ModelError("ERR_MODEL_NOT_FOUND", `range ${start}-${end} is outside blob ${sha256} (${info.size} bytes)`);
    return { stream: createReadStream(file, { start, end }), size: info.size };
  }
}

export function createModelManager(options: ModelManagerOptions): ModelManager {
  return new ModelManager(options);
}
