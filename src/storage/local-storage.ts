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
 * and `a/b` can both exist. Multipart parts live in `<root>/multipart/<uploadId>/<partNumber>`.
 * @module
 */
import { createHash, randomBytes } from "node:crypto";
import { link, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { PlatformError } from "../core/errors.js";
import { assertValidKey, assertValidPartNumber, assertValidUploadId } from "./keys.js";
import { createExclusive, isPartName, receiveToFile, stagedTooLarge, tooLarge } from "./receive-to-file.js";
import type { ByteRange, ObjectMeta, PutOptions, StorageDriver } from "./storage.js";

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
/** Multipart uploads untouched for this long are abandoned. */
const MULTIPART_AGE_MS = 24 * 60 * 60 * 1000;
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

export function createLocalStorage(options: LocalStorageOptions): StorageDriver {
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

  function isExpired(meta: ObjectMeta, at: number): boolean {
    return meta.expiresAt !== null && meta.expiresAt <= at;
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

  function checkPutOptions(o: PutOptions): void {
    if (typeof o.contentType !== "string" || typeof o.fileName !== "string") throw badRequest("contentType and fileName are required");
    if (o.expiresInSeconds !== undefined && !(Number.isFinite(o.expiresInSeconds) && o.expiresInSeconds >= 0)) {
      throw badRequest("expiresInSeconds must be a non-negative number");
    }
    if (o.maxBytes !== undefined && !(Number.isFinite(o.maxBytes) && o.maxBytes >= 0)) throw badRequest("maxBytes must be a non-negative number");
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
      expiresAt: o.expiresInSeconds === undefined ? null : createdAt + Math.round(o.expiresInSeconds * 1000),
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

  async function sweepMultipart(at: number): Promise<void> {
    let entries;
    try {
      entries = await readdir(multipartDir, { withFileTypes: true });
    } catch (err) {
      if (errno(err) === "ENOENT") return;
      throw err;
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const dir = path.join(multipartDir, entry.name);
      // A folder's mtime moves whenever a part is added, so it measures idleness, not age.
      const info = await stat(dir).catch(() => null);
      if (info && at - info.mtimeMs > MULTIPART_AGE_MS) await rm(dir, { recursive: true, force: true });
    }
  }

  /** Bytes of the parts staged in `dir`, less part `except` (the one being replaced). */
  async function stagedBytes(dir: string, except: number | null): Promise<number> {
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

  /**
   * Runs `fn` alone among the part commits of one upload in this process: the check of the upload's
   * total and the rename that makes a part count happen together, so parallel parts cannot both fit
   * against the same total and pass the limit between them.
   */
  const partCommits = new Map<string, Promise<unknown>>();
  async function commitPartAlone<T>(dir: string, fn: () => Promise<T>): Promise<T> {
    const previous = partCommits.get(dir) ?? Promise.resolve();
    const mine = previous.then(fn, fn);
    const settled = mine.catch(() => undefined);
    partCommits.set(dir, settled);
    try {
      return await mine;
    } finally {
      if (partCommits.get(dir) === settled) partCommits.delete(dir);
    }
  }

  /** Records which key an upload is for, so parts of one upload cannot be completed into another key. */
  async function bindUpload(dir: string, key: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    const record = path.join(dir, UPLOAD_RECORD);
    try {
      await writeFile(record, JSON.stringify({ key }), { flag: "wx" });
      return;
    } catch (err) {
      if (errno(err) !== "EEXIST") throw err;
    }
    await assertUploadKey(dir, key);
  }

  async function assertUploadKey(dir: string, key: string): Promise<void> {
    let bound: unknown;
    try {
      bound = (JSON.parse(await readFile(path.join(dir, UPLOAD_RECORD), "utf8")) as { key?: unknown }).key;
    } catch (err) {
      if (errno(err) === "ENOENT") throw badRequest("unknown multipart upload");
      throw err;
    }
    if (bound !== key) throw badRequest("multipart upload belongs to a different key");
  }

  return {
    name: "local",

    async put(key: string, body: Readable | Buffer | Uint8Array, o: PutOptions): Promise<ObjectMeta> {
      const loc = locate(key);
      checkPutOptions(o);
      const version = newVersion();
      const temp = loc.tempFile(version, "data");
      const size = await receiveToFile(body, temp, { maxBytes: o.maxBytes });
      return commit(loc, temp, version, size, o);
    },

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
      await sweepMultipart(at);
      return removed;
    },

    async putPart(key: string, uploadId: string, partNumber: number, body: Readable | Buffer, maxBytes?: number): Promise<{ etag: string; size: number }> {
      assertValidKey(key);
      const dir = uploadDir(uploadId);
      assertValidPartNumber(partNumber);
      if (maxBytes !== undefined && !(Number.isFinite(maxBytes) && maxBytes >= 0)) throw badRequest("maxBytes must be a non-negative number");
      const hash = createHash("sha256");
      const temp = path.join(dir, `${partNumber}.${newVersion()}.tmp`);
      // maxBytes caps the whole upload: this part may take what the other parts leave. Counted as
      // the bytes arrive, against the parts staged when it started...
      const size = await receiveToFile(body, temp, {
        hash,
        before: async () => {
          await bindUpload(dir, key);
          if (maxBytes === undefined) return;
          const staged = await stagedBytes(dir, partNumber);
          return { maxBytes: Math.max(0, maxBytes - staged), refuse: () => stagedTooLarge(maxBytes, staged) };
        },
      });
      // ...and again, against the parts that are there now, before this one counts.
      return commitPartAlone(dir, async () => {
        if (maxBytes !== undefined) {
          const staged = await stagedBytes(dir, partNumber);
          if (staged + size > maxBytes) {
            await unlinkQuietly(temp);
            throw stagedTooLarge(maxBytes, staged);
          }
        }
        // Re-uploading a part number replaces it, as in S3.
        await rename(temp, path.join(dir, String(partNumber)));
        return { etag: hash.digest("hex"), size };
      });
    },

    async completeMultipart(key: string, uploadId: string, parts: { partNumber: number; etag: string }[], o: PutOptions): Promise<ObjectMeta> {
      const loc = locate(key);
      const dir = uploadDir(uploadId);
      checkPutOptions(o);
      if (!Array.isArray(parts) || parts.length === 0) throw badRequest("completeMultipart needs at least one part");
      const seen = new Set<number>();
      for (const part of parts) {
        assertValidPartNumber(part.partNumber);
        if (typeof part.etag !== "string") throw badRequest(`part ${part.partNumber} has no etag`);
        if (seen.has(part.partNumber)) throw badRequest(`part ${part.partNumber} is listed twice`);
        seen.add(part.partNumber);
      }
      await assertUploadKey(dir, key);
      const ordered = [...parts].sort((a, b) => a.partNumber - b.partNumber);

      const version = newVersion();
      const temp = loc.tempFile(version, "data");
      const out = await createExclusive(temp);
      let size = 0;
      try {
        for (const part of ordered) {
          let partHandle;
          try {
            partHandle = await open(path.join(dir, String(part.partNumber)), "r");
          } catch (err) {
            if (errno(err) === "ENOENT") throw badRequest(`part ${part.partNumber} was not uploaded`);
            throw err;
          }
          // Etags are checked against the bytes as they are copied: one read of each part, and the
          // copy is only a temp file until every part has matched.
          const hash = createHash("sha256");
          for await (const chunk of partHandle.createReadStream()) {
            const buf = chunk as Buffer;
            size += buf.length;
            if (o.maxBytes !== undefined && size > o.maxBytes) throw tooLarge(o.maxBytes);
            hash.update(buf);
            await out.write(buf);
          }
          const expected = part.etag.replace(/^"|"$/g, "").toLowerCase();
          if (hash.digest("hex") !== expected) throw badRequest(`etag mismatch for part ${part.partNumber}`);
        }
        await out.sync();
        await out.close();
      } catch (err) {
        await out.close().catch(() => undefined);
        await unlinkQuietly(temp);
        throw err;
      }
      const meta = await commit(loc, temp, version, size, o);
      await rm(dir, { recursive: true, force: true });
      return meta;
    },
  };
}
