/**
 * What every driver checks and computes alike: valid {@link PutOptions}, an object's expiry time,
 * and whether it has passed.
 * @module
 */
import { PlatformError } from "../core/errors.js";
import type { ObjectMeta, PutOptions } from "./storage.js";

function badRequest(message: string): PlatformError {
  return new PlatformError("ERR_BAD_REQUEST", { message });
}

/** Throws ERR_BAD_REQUEST unless `maxBytes` is undefined or a non-negative number. */
export function checkMaxBytes(maxBytes: number | undefined): void {
  if (maxBytes !== undefined && !(Number.isFinite(maxBytes) && maxBytes >= 0)) throw badRequest("maxBytes must be a non-negative number");
}

/** Throws ERR_BAD_REQUEST for options a driver cannot store. */
export function checkPutOptions(o: PutOptions): void {
  if (typeof o?.contentType !== "string" || typeof o.fileName !== "string") throw badRequest("contentType and fileName are required");
  if (o.expiresInSeconds !== undefined && !(Number.isFinite(o.expiresInSeconds) && o.expiresInSeconds >= 0)) {
    throw badRequest("expiresInSeconds must be a non-negative number");
  }
  checkMaxBytes(o.maxBytes);
}

/** The unix ms at which an object put at `createdAt` with `o` expires, or null for never. */
export function expiresAtOf(createdAt: number, o: PutOptions): number | null {
  return o.expiresInSeconds === undefined ? null : createdAt + Math.round(o.expiresInSeconds * 1000);
}

export function isExpired(meta: Pick<ObjectMeta, "expiresAt">, at: number): boolean {
  return meta.expiresAt !== null && meta.expiresAt <= at;
}
