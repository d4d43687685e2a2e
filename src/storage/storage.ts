/**
 * Blob storage behind one small interface. Drivers: `local` (disk under the data folder, see
 * local-storage.ts) and `s3` (any S3-compatible bucket, see s3-storage.ts); open-storage.ts picks one
 * from a storage URL. Every driver passes the shared conformance suite in `test/storage/storage.case.ts`.
 *
 * The required core is {@link StorageDriver}: put, get, head, delete and the expiry sweep. What only
 * some drivers have is a capability of its own, {@link MultipartUploads} and {@link PresignedUrls};
 * code that needs one asks for it by type ({@link hasMultipart}, {@link multipartOf},
 * {@link canPresign}), and code that needs less than the core takes a narrower type
 * ({@link ObjectAccess}). Both real drivers build their multipart uploads on multipart.ts.
 *
 * Keys are relative, slash-separated paths made of `[A-Za-z0-9._-]` segments (no `..`, no leading
 * slash); drivers must refuse anything else with ERR_BAD_REQUEST so that no key escapes the store.
 * @module
 */
import type { Readable } from "node:stream";
import { PlatformError } from "../core/errors.js";

export interface ObjectMeta {
  key: string;
  size: number;
  contentType: string;
  fileName: string;
  createdAt: number;
  /** unix ms after which the object is gone, or null for no expiry. */
  expiresAt: number | null;
}

export interface PutOptions {
  contentType: string;
  fileName: string;
  /** Seconds until the object expires; undefined means never. */
  expiresInSeconds?: number;
  /** Refuse (ERR_FILE_TOO_LARGE) and delete partial data when the stream exceeds this many bytes. */
  maxBytes?: number;
}

export interface ByteRange {
  /** inclusive */
  start: number;
  /** inclusive */
  end: number;
}

/** Longest validity of a presigned URL: SigV4 refuses anything past seven days. */
export const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

export interface PresignOptions {
  /** GET downloads the object; PUT uploads (replaces) it with a plain HTTP PUT of the bytes. */
  method: "GET" | "PUT";
  /** Validity of the URL in seconds; drivers cap it at {@link MAX_PRESIGN_SECONDS}. */
  expiresInSeconds: number;
  /** PUT only: the Content-Type the uploader must send (it is part of the signature). */
  contentType?: string;
}

/** Writing and reading whole objects: all a runner's `ctx.files` needs (runtime/file-access.ts). */
export interface ObjectAccess {
  /** Streams `body` into the object at `key`, replacing any earlier one. */
  put(key: string, body: Readable | Buffer | Uint8Array, options: PutOptions): Promise<ObjectMeta>;
  /** Streams the object (or a byte range of it); null if missing or expired. */
  get(key: string, range?: ByteRange): Promise<{ meta: ObjectMeta; body: Readable } | null>;
}

/** The core every driver has. */
export interface StorageDriver extends ObjectAccess {
  readonly name: string;
  /** Metadata, or null if missing or expired. */
  head(key: string): Promise<ObjectMeta | null>;
  delete(key: string): Promise<void>;
  /** Deletes expired objects (and abandoned multipart uploads, where the driver has them); returns how many objects. */
  sweepExpired(now?: number): Promise<number>;
}

/** A multipart upload's part as the completion lists it. */
export interface PartRef {
  partNumber: number;
  etag: string;
}

/**
 * Capability: multipart uploads. Parts are stored apart and concatenated in order on complete. An
 * upload is bound to the key of its first part; parts or a completion for another key are refused.
 * Etags are the parts' sha256 (hex; quotes around them are ignored). Uploads idle for a day are
 * dropped by sweepExpired. Both real drivers build this on multipart.ts.
 */
export interface MultipartUploads {
  /**
   * `maxBytes` caps the upload, not the part: the part is refused (ERR_FILE_TOO_LARGE, nothing of it
   * kept) once it and the upload's other staged parts would pass it, counted as its bytes arrive. A
   * part number uploaded again replaces its earlier bytes, so they do not count against it. Parallel
   * parts are checked again once written, so that together they cannot pass the cap either.
   */
  putPart(key: string, uploadId: string, partNumber: number, body: Readable | Buffer, maxBytes?: number): Promise<{ etag: string; size: number }>;
  completeMultipart(key: string, uploadId: string, parts: PartRef[], options: PutOptions): Promise<ObjectMeta>;
}

/**
 * Capability: a URL that lets anyone holding it GET or PUT the object directly at the backend,
 * bypassing the gateway (S3 has it; the local driver has not, because its files are served by the
 * gateway's own HMAC-signed `/files` route, see signed-url.ts).
 *
 * A GET URL is refused for a missing or expired object (ERR_FILE_NOT_FOUND) and never outlives the
 * object's `expiresAt`. An object written through a PUT URL carries no expiry and no file name of
 * its own: head() then reports the key's last segment as the file name and `expiresAt: null`.
 */
export interface PresignedUrls {
  presign(key: string, options: PresignOptions): Promise<string>;
}

export function hasMultipart<T extends object>(driver: T): driver is T & MultipartUploads {
  const d = driver as Partial<MultipartUploads>;
  return typeof d.putPart === "function" && typeof d.completeMultipart === "function";
}

export function canPresign<T extends object>(driver: T): driver is T & PresignedUrls {
  return typeof (driver as Partial<PresignedUrls>).presign === "function";
}

/** `driver` as one that takes multipart uploads; ERR_INTERNAL (a server set up wrong) when it does not. */
export function multipartOf<T extends StorageDriver>(driver: T): T & MultipartUploads {
  if (!hasMultipart(driver)) throw new PlatformError("ERR_INTERNAL", { message: `storage driver "${driver.name}" does not take multipart uploads` });
  return driver;
}
