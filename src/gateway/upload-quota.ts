/**
 * The gateway's side of the storage quota (src/storage/storage-quota.ts): one quota per gateway,
 * what a staged multipart part counts as, and how an upload the quota refuses is answered.
 * @module
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { isPlatformError } from "../core/errors.js";
import { STAGED_PART_TTL_MS, createStorageQuota, partEntryId, type StorageQuota } from "../storage/storage-quota.js";
import type { GatewayContext } from "./context.js";
import { closeAfterReply } from "./lingering-close.js";

const quotas = new WeakMap<GatewayContext, StorageQuota>();

/** The gateway's storage quota (storage-quota.ts): what each key keeps in storage, charged per upload. */
export function storageQuotaOf(ctx: GatewayContext): StorageQuota {
  let quota = quotas.get(ctx);
  if (!quota) {
    quota = createStorageQuota({ store: ctx.store, quotaBytes: ctx.config.limits.storageQuotaBytes ?? 0 });
    quotas.set(ctx, quota);
  }
  return quota;
}

/**
 * Runs an upload handler; a quota refusal of a body not read to its end closes the connection after
 * the answer, lingering so that the client reads it (as the gateway does for ERR_FILE_TOO_LARGE).
 */
export async function closingOnQuota<T>(request: FastifyRequest, reply: FastifyReply, handler: () => Promise<T>): Promise<T> {
  try {
    return await handler();
  } catch (err) {
    if (isPlatformError(err) && err.code === "ERR_STORAGE_QUOTA" && !request.raw.readableEnded) closeAfterReply(reply);
    throw err;
  }
}

/** A staged part as the quota records it: it counts until its upload completes or is idle for a day. */
export function stagedPartEntry(uploadId: string, partNumber: number, size: number): { id: string; bytes: number; uploadId: string; expiresAt: number } {
  return { id: partEntryId(uploadId, partNumber), bytes: size, uploadId, expiresAt: Date.now() + STAGED_PART_TTL_MS };
}
