/**
 * Multipart uploads ({@link MultipartUploads}), built once on a few primitives that each driver
 * implements for its backend ({@link PartStaging}): where an upload's binding and parts are kept,
 * how a part's bytes arrive and become visible, and how a staged part is read back.
 *
 * Built here, alike for every driver:
 * - validation of keys, upload ids, part numbers, limits and the completion's part list;
 * - the binding of an upload to the key of its first part (later parts and the completion must
 *   name the same key);
 * - the upload-wide byte cap: a part may take what the other staged parts leave, counted as its
 *   bytes arrive, and is checked again before it counts, one part of an upload at a time in this
 *   process, so that parallel parts cannot pass the cap together;
 * - etags, the sha256 of a part's bytes, checked again as the parts are joined into the object
 *   (through the driver's own put, so the object is committed like any other);
 * - the sweep of uploads idle for {@link MULTIPART_AGE_MS}.
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { Readable } from "node:stream";
import { PlatformError } from "../core/errors.js";
import { assertValidKey, assertValidPartNumber, assertValidUploadId } from "./keys.js";
import { checkMaxBytes, checkPutOptions } from "./put-options.js";
import type { Limit } from "./receive-to-file.js";
import type { MultipartUploads, ObjectAccess, ObjectMeta, PartRef, PutOptions } from "./storage.js";

/** Multipart uploads untouched for this long are abandoned. */
export const MULTIPART_AGE_MS = 24 * 60 * 60 * 1000;

function badRequest(message: string): PlatformError {
  return new PlatformError("ERR_BAD_REQUEST", { message });
}

/**
 * A multipart part refused because the upload's parts together would pass `maxBytes`: `staged` are
 * the bytes of its other parts (a part number uploaded again replaces its earlier bytes).
 */
export function stagedTooLarge(maxBytes: number, staged: number): PlatformError {
  return new PlatformError("ERR_FILE_TOO_LARGE", {
    message: `multipart upload exceeds ${maxBytes} bytes: its other parts hold ${staged} bytes, so this part may have at most ${Math.max(0, maxBytes - staged)}`,
  });
}

/** Whether a staged name is a part (`1` … `10000`), not a record, temp file or the upload's own record. */
export function isPartName(name: string): boolean {
  return /^[1-9][0-9]{0,4}$/.test(name);
}

/** An upload's binding: the key it was started for. */
export interface Binding {
  key: unknown;
}

export interface ReceivePartOptions {
  /** Fed every byte of the part: its etag. */
  hash: Hash;
  /** The cap of the whole upload, which holds until `prepare` narrows it. */
  maxBytes: number | undefined;
  /**
   * Binds the upload and returns the part's own limit (what the other parts leave). The driver
   * starts it while it already listens for the body's errors, before awaiting anything else, and
   * holds the bytes to the limit it returns, as they arrive and once more at their end.
   */
  prepare: () => Promise<Limit | undefined>;
}

/** A part's bytes, received but not counted yet. */
export interface ReceivedPart {
  size: number;
  /** Makes the part count as its part number, replacing an earlier one. */
  commit(etag: string): Promise<void>;
  /** Removes every trace of the refused part. */
  discard(): Promise<void>;
}

/** What a driver keeps of its multipart uploads; ids and part numbers come here validated. */
export interface PartStaging {
  /** Binds the upload to `key` unless it is bound already; the binding in effect, or null if the upload vanished meanwhile. */
  bind(uploadId: string, key: string): Promise<Binding | null>;
  /** The upload's binding, or null for an unknown upload. */
  binding(uploadId: string): Promise<Binding | null>;
  /** Bytes of the upload's counted parts, less part `except` (the one being replaced). */
  stagedBytes(uploadId: string, except: number): Promise<number>;
  /** Receives a part (see {@link ReceivePartOptions}). Starts reading `body` before its first await. */
  receivePart(key: string, uploadId: string, partNumber: number, body: Readable | Buffer, options: ReceivePartOptions): Promise<ReceivedPart>;
  /** Checks a completion's parts before any is read, where the driver keeps records of them; `parts` are sorted, etags bare. */
  precheck?(key: string, uploadId: string, parts: PartRef[], maxBytes: number | undefined): Promise<void>;
  /** A counted part's bytes, or null when it was not uploaded. */
  openPart(uploadId: string, partNumber: number): Promise<Readable | null>;
  /** The staged uploads, each with the unix ms of its last change. */
  listUploads(): Promise<{ uploadId: string; lastActivity: number }[]>;
  /** Removes an upload and its parts. */
  drop(uploadId: string): Promise<void>;
}

/** Functions, not methods: a driver hands them on as its own. */
export interface MultipartEngine {
  putPart: MultipartUploads["putPart"];
  completeMultipart: MultipartUploads["completeMultipart"];
  /** Drops the uploads idle for longer than {@link MULTIPART_AGE_MS} at `at`. */
  sweepUploads: (at: number) => Promise<void>;
}

/** The parts of a completion in part order, etags without quotes; ERR_BAD_REQUEST for a list that names no upload. */
export function orderParts(parts: PartRef[]): PartRef[] {
  if (!Array.isArray(parts) || parts.length === 0) throw badRequest("completeMultipart needs at least one part");
  const seen = new Set<number>();
  for (const part of parts) {
    assertValidPartNumber(part.partNumber);
    if (typeof part.etag !== "string") throw badRequest(`part ${part.partNumber} has no etag`);
    if (seen.has(part.partNumber)) throw badRequest(`part ${part.partNumber} is listed twice`);
    seen.add(part.partNumber);
  }
  return [...parts].sort((a, b) => a.partNumber - b.partNumber).map((p) => ({ partNumber: p.partNumber, etag: p.etag.replace(/^"|"$/g, "").toLowerCase() }));
}

/** The parts' bytes in order, each checked against its etag as it streams past. */
async function* joinParts(parts: PartRef[], open: (partNumber: number) => Promise<Readable | null>): AsyncGenerator<Buffer> {
  for (const part of parts) {
    const body = await open(part.partNumber);
    if (body === null) throw badRequest(`part ${part.partNumber} was not uploaded`);
    const hash = createHash("sha256");
    for await (const chunk of body) {
      hash.update(chunk as Buffer);
      yield chunk as Buffer;
    }
    if (hash.digest("hex") !== part.etag) throw badRequest(`etag mismatch for part ${part.partNumber}`);
  }
}

function assertBoundTo(binding: Binding | null, key: string): void {
  if (binding === null) throw badRequest("unknown multipart upload");
  if (binding.key !== key) throw badRequest("multipart upload belongs to a different key");
}

/** Multipart uploads on `staging`; completed uploads become objects through the driver's `put`. */
export function createMultipartEngine(staging: PartStaging, put: ObjectAccess["put"]): MultipartEngine {
  /**
   * Runs `fn` alone among the part commits of one upload in this process: the check of the upload's
   * total and the step that makes a part count happen together, so parallel parts cannot both fit
   * against the same total and pass the limit between them.
   */
  const partCommits = new Map<string, Promise<unknown>>();
  async function commitPartAlone<T>(uploadId: string, fn: () => Promise<T>): Promise<T> {
    const previous = partCommits.get(uploadId) ?? Promise.resolve();
    const mine = previous.then(fn, fn);
    const settled = mine.catch(() => undefined);
    partCommits.set(uploadId, settled);
    try {
      return await mine;
    } finally {
      if (partCommits.get(uploadId) === settled) partCommits.delete(uploadId);
    }
  }

  return {
    async putPart(key: string, uploadId: string, partNumber: number, body: Readable | Buffer, maxBytes?: number): Promise<{ etag: string; size: number }> {
      assertValidKey(key);
      assertValidUploadId(uploadId);
      assertValidPartNumber(partNumber);
      checkMaxBytes(maxBytes);
      const hash = createHash("sha256");
      // maxBytes caps the whole upload: this part may take what the other parts leave. Counted as
      // the bytes arrive, against the parts staged when it started...
      const received = await staging.receivePart(key, uploadId, partNumber, body, {
        hash,
        maxBytes,
        prepare: async () => {
          assertBoundTo(await staging.bind(uploadId, key), key);
          if (maxBytes === undefined) return undefined;
          const staged = await staging.stagedBytes(uploadId, partNumber);
          return { maxBytes: Math.max(0, maxBytes - staged), refuse: () => stagedTooLarge(maxBytes, staged) };
        },
      });
      // ...and again, against the parts that are there now (written meanwhile by this gateway or
      // another), before this one counts.
      return commitPartAlone(uploadId, async () => {
        if (maxBytes !== undefined) {
          const staged = await staging.stagedBytes(uploadId, partNumber);
          if (staged + received.size > maxBytes) {
            await received.discard();
            throw stagedTooLarge(maxBytes, staged);
          }
        }
        const etag = hash.digest("hex");
        // Re-uploading a part number replaces it, as in S3.
        await received.commit(etag);
        return { etag, size: received.size };
      });
    },

    async completeMultipart(key: string, uploadId: string, parts: PartRef[], o: PutOptions): Promise<ObjectMeta> {
      assertValidKey(key);
      assertValidUploadId(uploadId);
      checkPutOptions(o);
      const ordered = orderParts(parts);
      assertBoundTo(await staging.binding(uploadId), key);
      await staging.precheck?.(key, uploadId, ordered, o.maxBytes);
      // Etags are checked against the bytes as they are copied: one read of each part, and the
      // object only becomes visible once every part has matched.
      const joined = Readable.from(joinParts(ordered, (n) => staging.openPart(uploadId, n)), { objectMode: false });
      let meta: ObjectMeta;
      try {
        meta = await put(key, joined, o);
      } finally {
        // On a failure the stream may still hold a part's open read.
        joined.destroy();
      }
      await staging.drop(uploadId);
      return meta;
    },

    async sweepUploads(at: number): Promise<void> {
      for (const upload of await staging.listUploads()) {
        // The last change measures idleness, not age: an upload still receiving parts is kept.
        if (at - upload.lastActivity > MULTIPART_AGE_MS) await staging.drop(upload.uploadId);
      }
    },
  };
}
