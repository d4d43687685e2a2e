/**
 * The `local` storage driver: objects on disk under `<root>/objects/`, following their key's path.
 *
 * An object `a/b.png` is two files in `<root>/objects/a/`:
 * - `b.png~<version>.data`, the bytes, and
 * - `b.png~meta.json`, the sidecar metadata, which names the current version.
 *
 * The sidecar is the commit point. Data streams into `b.png~<version>.data.tmp`, is fsynced and renamed
 * to `.data`; then a new sidecar is written aside and renamed over the old one. A rename is atomic, so a
 * reader (or a restart after a crash) sees either the old object or the new one, never a half-written
 * one or new bytes under old metadata. Leftovers of a crash are unreferenced `.tmp`/`.data` files,
 * which {@link StorageDriver.sweepExpired} removes once they are old.
 *
 * `~` cannot occur in a key (see keys.ts), so these names never collide with an object's, and `a`
 * and `a/b` can both exist. Multipart uploads (built on multipart.ts) are staged in
 * `<root>/multipart/<uploadId>/`: `upload.json` binds the upload to its key, a part arrives as
 * `<partNumber>.<random>.tmp` and counts once renamed to `<partNumber>`.
 * @module
 */
import { randomBytes } from "node:crypto";
import { link, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { PlatformError } from "../core/errors.js";
import { assertValidKey, assertValidUploadId } from "./keys.js";
import { createMultipartEngine, isPartName, type Binding, type PartStaging } from "./multipart.js";
import { checkPutOptions, expiresAtOf, isExpired } from "./put-options.js";
import { receiveToFile } from "./receive-to-file.js";
import type { ByteRange, MultipartUploads, ObjectMeta, PutOptions, StorageDriver } from "./storage.js";

export { assertValidKey } from "./keys.js";

export interface LocalStorageOptions {
  root: string;
  /** Clock in unix ms for expiry; tests inject one. */
  now?: () => number;
}

/** The sidecar: public metadata plus the version naming the data file. */
interface StoredMeta extends ObjectMeta {
  version: string;
}

const META_SUFFIX = "~meta.json";
/** Unreferenced data or temp files younger than this may belong to an upload still in progress. */
const ORPHAN_AGE_MS = 60 * 60 * 1000;
const UPLOAD_RECORD = "upload.json";

function badRequest(message: string): PlatformError {
  return new PlatformError("ERR_BAD_REQUEST", { message });
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

async function unlinkQuietly(file: string): Promise<void> {
  await unlink(file).catch((err: unknown) => {
    if (errno(err) !== "ENOENT") throw err;
  });
}

function newVersion(): string {
  return randomBytes(8).toString("hex");
}

export type LocalStorageDriver = StorageDriver & MultipartUploads;

export function createLocalStorage(options: LocalStorageOptions): LocalStorageDriver {
  const root = path.resolve(options.root);
  const objectsDir = path.join(root, "objects");
  const multipartDir = path.join(root, "multipart");
  const now = options.now ?? Date.now;

  /** Defence in depth behind key validation: a computed path must stay below its base folder. */
  function inside(base: string, target: string): string {
    const rel = path.relative(base, target);
    if (rel === "" || rel.startsWith("..") || path.isAbsolute(rel)) throw badRequest("storage path escapes the store");
    return target;
  }

  function locate(key: string) {
    assertValidKey(key);
    const segments = key.split("/");
    const base = segments.pop() as string;
    const dir = path.join(objectsDir, ...segments);
    const file = (suffix: string): string => inside(objectsDir, path.join(dir, `${base}${suffix}`));
    return {
      key,
      dir,
      metaFile: file(META_SUFFIX),
      dataFile: (version: string) => file(`~${version}.data`),
      tempFile: (version: string, kind: string) => file(`~${version}.${kind}.tmp`),
    };
  }
  type Location = ReturnType<typeof locate>;

  function uploadDir(uploadId: string): string {
    assertValidUploadId(uploadId);
    return inside(multipartDir, path.join(multipartDir, uploadId));
  }

  async function readMeta(metaFile: string): Promise<StoredMeta | null> {
    let text: string;
    try {
      text = await readFile(metaFile, "utf8");
    } catch (err) {
      if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") return null;
      throw err;
    }
    try {
      const m = JSON.parse(text) as Partial<StoredMeta>;
      const ok =
        typeof m.key === "string" &&
        typeof m.version === "string" &&
        /^[0-9a-f]+$/.test(m.version) &&
        typeof m.size === "number" &&
        typeof m.contentType === "string" &&
        typeof m.fileName === "string" &&
        typeof m.createdAt === "number" &&
        (m.expiresAt === null || typeof m.expiresAt === "number");
      // Renames make a torn sidecar impossible; one that is not ours anyway is treated as absent.
      return ok ? (m as StoredMeta) : null;
    } catch {
      return null;
    }
  }

  function publicMeta(m: StoredMeta): ObjectMeta {
    return { key: m.key, size: m.size, contentType: m.contentType, fileName: m.fileName, createdAt: m.createdAt, expiresAt: m.expiresAt };
  }

  /** Makes the fsynced temp data file at `tempData` the current version of the object. */
  async function commit(loc: Location, tempData: string, version: string, size: number, o: PutOptions): Promise<ObjectMeta> {
    const createdAt = now();
    const meta: StoredMeta = {
      key: loc.key,
      size,
      contentType: o.contentType,
      fileName: o.fileName,
      createdAt,
      expiresAt: expiresAtOf(createdAt, o),
      version,
    };
    const dataFile = loc.dataFile(version);
    const metaTemp = loc.tempFile(version, "meta");
    let previous: StoredMeta | null;
    try {
      await rename(tempData, dataFile);
      const fh = await open(metaTemp, "wx", 0o644);
      try {
        await fh.writeFile(JSON.stringify(meta));
        await fh.sync();
      } finally {
        await fh.close();
      }
      // Read just before the switch: whatever this names is what the switch replaces. If a concurrent
      // put slips in between, its data is left unreferenced for the sweep rather than deleted live.
      previous = await readMeta(loc.metaFile);
      await rename(metaTemp, loc.metaFile);
    } catch (err) {
      // Not switched yet, so nothing here is visible: remove every trace of this version.
      await Promise.all([unlinkQuietly(tempData), unlinkQuietly(metaTemp), unlinkQuietly(dataFile)]).catch(() => undefined);
      throw err;
    }
    // Switched: a failure to drop the old bytes only leaves an orphan for the sweep.
    if (previous && previous.version !== version) await unlinkQuietly(loc.dataFile(previous.version)).catch(() => undefined);
    return publicMeta(meta);
  }

  async function deleteStored(loc: Location, meta: StoredMeta): Promise<void> {
    // Sidecar first: once it is gone the object is gone, even if removing the data then fails.
    await unlinkQuietly(loc.metaFile);
    await unlinkQuietly(loc.dataFile(meta.version));
  }

  /**
   * Removes the object whose sidecar is `<dir>/<base>~meta.json` if it is expired at `at`. Returns
   * the data file name that stays referenced, or null when nothing does.
   *
   * The sidecar is first moved aside and only then judged: a put that lands between reading and
   * deleting must not be deleted along with the expired object it replaced.
   */
  async function sweepObject(dir: string, base: string, at: number): Promise<{ removed: boolean; keep: string | null }> {
    const metaFile = path.join(dir, `${base}${META_SUFFIX}`);
    const dataName = (m: StoredMeta): string => `${base}~${m.version}.data`;
    const meta = await readMeta(metaFile);
    if (!meta) return { removed: false, keep: null };
    if (!isExpired(meta, at)) return { removed: false, keep: dataName(meta) };

    const aside = path.join(dir, `${base}~${newVersion()}.sweep.tmp`);
    try {
      await rename(metaFile, aside);
    } catch (err) {
      if (errno(err) === "ENOENT") return { removed: false, keep: null };
      throw err;
    }
    const taken = await readMeta(aside);
    if (taken && !isExpired(taken, at)) {
      // A fresh object replaced the expired one meanwhile: put it back, unless an even newer one is there.
      await link(aside, metaFile).catch(() => undefined);
      await unlinkQuietly(aside);
      return { removed: false, keep: dataName(taken) };
    }
    await unlinkQuietly(aside);
    if (taken) await unlinkQuietly(path.join(dir, dataName(taken)));
    return { removed: taken !== null, keep: null };
  }

  /** Deletes expired objects and old leftovers below `dir`, and the folder itself if that empties it. */
  async function sweepFolder(dir: string, at: number, isRoot: boolean): Promise<number> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (errno(err) === "ENOENT") return 0;
      throw err;
    }
    let removed = 0;
    const referenced = new Set<string>();
    for (const entry of entries) {
      if (!entry.isFile() || !entry.name.endsWith(META_SUFFIX)) continue;
      const outcome = await sweepObject(dir, entry.name.slice(0, -META_SUFFIX.length), at);
      if (outcome.removed) removed++;
      if (outcome.keep !== null) referenced.add(outcome.keep);
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        removed += await sweepFolder(full, at, false);
      } else if (entry.isFile() && (entry.name.endsWith(".tmp") || entry.name.endsWith(".data")) && !referenced.has(entry.name)) {
        const info = await stat(full).catch(() => null);
        if (info && at - info.mtimeMs > ORPHAN_AGE_MS) await unlinkQuietly(full);
      }
    }
    // rmdir only succeeds on an empty folder, which is exactly the one to drop.
    if (!isRoot) await rmdir(dir).catch(() => undefined);
    return removed;
  }

  /** Bytes of the parts staged in `dir`, less part `except` (the one being replaced). */
  async function stagedBytes(dir: string, except: number): Promise<number> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if (errno(err) === "ENOENT") return 0;
      throw err;
    }
    const sizeOf = async (name: string): Promise<number> => {
      try {
        return (await stat(path.join(dir, name))).size;
      } catch (err) {
        // Swept meanwhile.
        if (errno(err) === "ENOENT") return 0;
        throw err;
      }
    };
    const sizes = await Promise.all(names.filter((name) => isPartName(name) && name !== String(except)).map(sizeOf));
    return sizes.reduce((sum, size) => sum + size, 0);
  }

  async function readBinding(dir: string): Promise<Binding | null> {
    try {
      return { key: (JSON.parse(await readFile(path.join(dir, UPLOAD_RECORD), "utf8")) as { key?: unknown }).key };
    } catch (err) {
      if (errno(err) === "ENOENT") return null;
      throw err;
    }
  }

  const staging: PartStaging = {
    async bind(uploadId, key) {
      const dir = uploadDir(uploadId);
      await mkdir(dir, { recursive: true });
      try {
        await writeFile(path.join(dir, UPLOAD_RECORD), JSON.stringify({ key }), { flag: "wx" });
        return { key };
      } catch (err) {
        if (errno(err) !== "EEXIST") throw err;
      }
      return readBinding(dir);
    },
    binding: async (uploadId) => readBinding(uploadDir(uploadId)),
    stagedBytes: async (uploadId, except) => stagedBytes(uploadDir(uploadId), except),
    async receivePart(_key, uploadId, partNumber, body, { hash, maxBytes, prepare }) {
      const dir = uploadDir(uploadId);
      const temp = path.join(dir, `${partNumber}.${newVersion()}.tmp`);
      const size = await receiveToFile(body, temp, { hash, maxBytes, before: prepare });
      return { size, commit: () => rename(temp, path.join(dir, String(partNumber))), discard: () => unlinkQuietly(temp) };
    },
    async openPart(uploadId, partNumber) {
      try {
        return (await open(path.join(uploadDir(uploadId), String(partNumber)), "r")).createReadStream();
      } catch (err) {
        if (errno(err) === "ENOENT") return null;
        throw err;
      }
    },
    async listUploads() {
      let entries;
      try {
        entries = await readdir(multipartDir, { withFileTypes: true });
      } catch (err) {
        if (errno(err) === "ENOENT") return [];
        throw err;
      }
      const uploads = [];
      for (const entry of entries) {
        if (!entry.isDirectory()) continue;
        // A folder's mtime moves whenever a part is added, so it measures idleness, not age.
        const info = await stat(path.join(multipartDir, entry.name)).catch(() => null);
        if (info) uploads.push({ uploadId: entry.name, lastActivity: info.mtimeMs });
      }
      return uploads;
    },
    // Names from the listing need no id check, only the containment one.
    drop: (uploadId) => rm(inside(multipartDir, path.join(multipartDir, uploadId)), { recursive: true, force: true }),
  };

  async function put(key: string, body: Readable | Buffer | Uint8Array, o: PutOptions): Promise<ObjectMeta> {
    const loc = locate(key);
    checkPutOptions(o);
    const version = newVersion();
    const temp = loc.tempFile(version, "data");
    const size = await receiveToFile(body, temp, { maxBytes: o.maxBytes });
    return commit(loc, temp, version, size, o);
  }

  const multipart = createMultipartEngine(staging, put);

  return {
    name: "local",

    put,

    async head(key: string): Promise<ObjectMeta | null> {
      const meta = await readMeta(locate(key).metaFile);
      return meta && !isExpired(meta, now()) ? publicMeta(meta) : null;
    },

    async get(key: string, range?: ByteRange): Promise<{ meta: ObjectMeta; body: Readable } | null> {
      const loc = locate(key);
      // A concurrent put may delete the version just read; the retry then finds its successor.
      for (let attempt = 0; attempt < 3; attempt++) {
        const meta = await readMeta(loc.metaFile);
        if (!meta || isExpired(meta, now())) return null;
        let fh;
        try {
          fh = await open(loc.dataFile(meta.version), "r");
        } catch (err) {
          if (errno(err) === "ENOENT") continue;
          throw err;
        }
        let start = 0;
        let end = meta.size - 1;
        if (range) {
          const valid =
            Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0 && range.end >= range.start && range.start < meta.size;
          if (!valid) {
            await fh.close();
            throw new PlatformError("ERR_RANGE_NOT_SATISFIABLE", {
              message: `range ${range.start}-${range.end} is not satisfiable for ${meta.size} bytes`,
            });
          }
          start = range.start;
          // As in HTTP, a range running past the end is cut at the last byte.
          end = Math.min(range.end, meta.size - 1);
        }
        // The open handle keeps these bytes readable even if the object is replaced meanwhile.
        const body = meta.size === 0 ? fh.createReadStream() : fh.createReadStream({ start, end });
        return { meta: publicMeta(meta), body };
      }
      return null;
    },

    async delete(key: string): Promise<void> {
      const loc = locate(key);
      const meta = await readMeta(loc.metaFile);
      if (meta) await deleteStored(loc, meta);
    },

    async sweepExpired(at: number = now()): Promise<number> {
      const removed = await sweepFolder(objectsDir, at, true);
      await multipart.sweepUploads(at);
      return removed;
    },

    putPart: multipart.putPart,
    completeMultipart: multipart.completeMultipart,
  };
}
