/**
 * What a storage key and a multipart upload id may look like. Every driver validates through here
 * before touching its backend, so that no key can name anything outside the store: the allowed
 * alphabet has no separators other than `/`, no `%` (so nothing decodes into `..` later) and no `~`,
 * which drivers reserve for their own names (the local driver's sidecars, the S3 driver's `~expires/`
 * and `~multipart/` areas).
 * @module
 */
import { PlatformError } from "../core/errors.js";

export const MAX_KEY_LENGTH = 1024;
/** Below a file system's 255-byte name limit with room for the local driver's `~…` suffixes. */
export const MAX_SEGMENT_LENGTH = 200;
export const MAX_PART_NUMBER = 10_000;

const SEGMENT = /^[A-Za-z0-9._-]+$/;
const UPLOAD_ID = /^[A-Za-z0-9_-]{1,128}$/;

function badRequest(message: string): PlatformError {
  return new PlatformError("ERR_BAD_REQUEST", { message });
}

/**
 * Throws ERR_BAD_REQUEST unless `key` is a relative path of `[A-Za-z0-9._-]` segments separated by
 * single slashes, with no `.` or `..` segment, no leading or trailing slash, at most
 * {@link MAX_KEY_LENGTH} characters.
 */
export function assertValidKey(key: unknown): asserts key is string {
  if (typeof key !== "string" || key.length === 0) throw badRequest("storage key must be a non-empty string");
  if (key.length > MAX_KEY_LENGTH) throw badRequest(`storage key longer than ${MAX_KEY_LENGTH} characters`);
  for (const segment of key.split("/")) {
    // Empty segments cover a leading slash, a trailing slash and "a//b"; the alphabet excludes "\" and "%".
    if (!SEGMENT.test(segment)) throw badRequest(`invalid storage key ${JSON.stringify(key)}`);
    if (segment === "." || segment === "..") throw badRequest(`storage key may not contain "${segment}" segments`);
    if (segment.length > MAX_SEGMENT_LENGTH) throw badRequest(`storage key segment longer than ${MAX_SEGMENT_LENGTH} characters`);
  }
}

/** Throws ERR_BAD_REQUEST unless `uploadId` is 1-128 characters of `[A-Za-z0-9_-]` (no dots at all). */
export function assertValidUploadId(uploadId: unknown): asserts uploadId is string {
  if (typeof uploadId !== "string" || !UPLOAD_ID.test(uploadId)) throw badRequest("invalid multipart upload id");
}

/** Throws ERR_BAD_REQUEST unless `partNumber` is an integer from 1 to {@link MAX_PART_NUMBER}. */
export function assertValidPartNumber(partNumber: unknown): asserts partNumber is number {
  if (typeof partNumber !== "number" || !Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PART_NUMBER) {
    throw badRequest(`part number must be an integer from 1 to ${MAX_PART_NUMBER}`);
  }
}
