/**
 * Blob storage behind one small interface. Drivers: `local` (disk under the data folder, see
 * local-storage.ts) and `s3` (any S3-compatible bucket, see s3-storage.ts); open-storage.ts picks one
 * from a storage URL. Every driver passes the shared conformance suite in `test/storage/storage.case.ts`.
 *
 * Keys are relative, slash-separated paths made of `[A-Za-z0-9._-]` segments (no `..`, no leading
 * slash); drivers must refuse anything else with ERR_BAD_REQUEST so that no key escapes the store.
 * @module
 */
import type { Readable } from "node:stream";

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

export interface StorageDriver {
  readonly name: string;
  /** Streams `body` into the object at `key`, replacing any earlier one. */
  put(key: string, body: Readable | Buffer | Uint8Array, options: PutOptions): Promise<ObjectMeta>;
  /** Metadata, or null if missing or expired. */
  head(key: string): Promise<ObjectMeta | null>;
  /** Streams the object (or a byte range of it); null if missing or expired. */
  get(key: string, range?: ByteRange): Promise<{ meta: ObjectMeta; body: Readable } | null>;
  delete(key: string): Promise<void>;
  /** Deletes expired objects; returns how many. */
  sweepExpired(now?: number): Promise<number>;
  /**
   * Multipart uploads: parts are stored apart and concatenated in order on complete. `maxBytes` caps
   * the upload, not the part: the part is refused (ERR_FILE_TOO_LARGE, nothing of it kept) once it
   * and the upload's other staged parts would pass it, counted as its bytes arrive. A part number
   * uploaded again replaces its earlier bytes, so they do not count against it. Parallel parts are
   * checked again once written, so that together they cannot pass the cap either.
   */
  putPart(key: string, uploadId: string, partNumber: number, body: Readable | Buffer, maxBytes?: number): Promise<{ etag: string; size: number }>;
  completeMultipart(key: string, uploadId: string, parts: { partNumber: number; etag: string }[], options: PutOptions): Promise<ObjectMeta>;
  /**
   * Optional: a URL that lets anyone holding it GET or PUT the object directly at the backend,
   * bypassing the gateway (S3 has it; the local driver has not, because its files are served by the
   * gateway's own HMAC-signed `/files` route, see signed-url.ts). Callers check for the method first.
   *
   * A GET URL is refused for a missing or expired object (ERR_FILE_NOT_FOUND) and never outlives the
   * object's `expiresAt`. An object written through a PUT URL carries no expiry and no file name of
   * its own: head() then reports the key's last segment as the file name and `expiresAt: null`.
   */
  presign?(key: string, options: PresignOptions): Promise<string>;
}
