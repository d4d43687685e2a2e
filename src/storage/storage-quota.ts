/**
 * The per-key storage quota (`DARKROOM_STORAGE_QUOTA_BYTES`): what an API key may keep in storage
 * through the gateway, its uploads (single, staged multipart parts, completed files) and the output
 * files that remote runners upload for its requests, until they are deleted or expire.
 *
 * The store keeps one entry per stored file or part and a per-key total beside them, changed in the
 * same transaction as the entries (`Store.reserveStorage`), so a check costs one locked row, never
 * a scan of storage. An upload goes:
 *
 * 1. reserve: the announced `Content-Length`, or for a body of unknown length what is left of the
 *    quota up to the file limit, checked and recorded in one transaction; refused with
 *    ERR_STORAGE_QUOTA (413) before a byte is stored when it does not fit. Reservations of one key on
 *    any number of gateways serialize on that key's row, so together they never pass the quota.
 * 2. store: a body of unknown length is cut off at its reservation (ERR_STORAGE_QUOTA, nothing kept).
 * 3. settle: the file's real size replaces the reservation, with the file's expiry; a failed upload
 *    releases its reservation instead. A reservation whose gateway died expires on its own after
 *    {@link RESERVATION_TTL_MS}.
 *
 * Expired files stop counting at their expiry (before the sweep deletes them); staged parts count
 * until their upload completes (the file then counts instead) or has been idle for a day
 * ({@link STAGED_PART_TTL_MS}, when the drivers' sweep deletes them).
 * @module
 */
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { PlatformError } from "../core/errors.js";
import type { StorageEntry, Store } from "../store/store.js";

/** How long a reservation holds its bytes when the gateway that made it never settles it. */
export const RESERVATION_TTL_MS = 60 * 60 * 1000;
/** Staged parts count until their upload has been idle this long: the drivers then sweep them. */
export const STAGED_PART_TTL_MS = 24 * 60 * 60 * 1000;

/** The ledger id of a staged part; `~` never occurs in a storage key, so it cannot name a file. */
export function partEntryId(uploadId: string, partNumber: number): string {
  return `~multipart/${uploadId}/${partNumber}`;
}

/** What an upload stored, as the ledger records it. */
export type StoredEntry = Omit<StorageEntry, "keyId">;

export interface UploadPlan {
  /** `Content-Length`, when the client announced it (already checked against `maxBytes`). */
  announced: number | null;
  /** The file limit: the most a body of unknown length can be. */
  maxBytes: number;
  /** The entry the upload will replace (a part number uploaded again): its bytes do not count against the new ones. */
  replaces?: string;
}

export interface StorageQuota {
  readonly quotaBytes: number;
  /**
   * Runs `write` charged to `keyId` (no one when null): reserves, hands `write` a function that caps
   * the body at the reservation, then records `entryOf(result)` in place of the reservation, or gives
   * the reservation back when `write` fails. If recording fails, `undo` removes what was stored.
   */
  charge<T>(
    keyId: string | null,
    plan: UploadPlan,
    write: (limit: (body: Readable) => Readable) => Promise<T>,
    entryOf: (stored: T) => StoredEntry,
    undo?: (stored: T) => Promise<void>,
  ): Promise<T>;
  /** Records what was stored without a reservation: a multipart completion, whose parts were charged already and give way to the file. */
  record(keyId: string | null, entry: StoredEntry, completesUpload?: string): Promise<void>;
}

export interface StorageQuotaOptions {
  store: Pick<Store, "reserveStorage" | "settleStorage" | "releaseStorage">;
  /** Bytes per key; 0 records what keys store but refuses nothing. */
  quotaBytes: number;
  now?: () => number;
}

export function quotaExceeded(quotaBytes: number, usedBytes: number, wanted: number | null): PlatformError {
  const left = Math.max(0, quotaBytes - usedBytes);
  const what =
    wanted !== null
      ? `this upload of ${wanted} bytes does not fit in the ${left} bytes left`
      : left === 0
        ? "nothing is left for this upload"
        : `this upload passed the ${left} bytes left`;
  return new PlatformError("ERR_STORAGE_QUOTA", {
    message: `Storage quota exceeded: this key may keep ${quotaBytes} bytes of files and holds ${usedBytes}; ${what}. Files count until they expire or are deleted; the operator sets the quota (DARKROOM_STORAGE_QUOTA_BYTES)`,
  });
}

export function createStorageQuota(options: StorageQuotaOptions): StorageQuota {
  const { store, quotaBytes } = options;
  const now = options.now ?? Date.now;

  return {
    quotaBytes,

    async charge<T>(
      keyId: string | null,
      plan: UploadPlan,
      write: (limit: (body: Readable) => Readable) => Promise<T>,
      entryOf: (stored: T) => StoredEntry,
      undo?: (stored: T) => Promise<void>,
    ): Promise<T> {
      if (keyId === null) return write((body) => body);
      let reservationId: string | null = null;
      let cap: { bytes: number; usedBytes: number } | null = null;
      if (quotaBytes > 0) {
        const id = `~reserved/${randomBytes(12).toString("base64url")}`;
        const wanted = plan.announced ?? plan.maxBytes;
        const reserved = await store.reserveStorage(
          { id, keyId, bytes: wanted, uploadId: null, expiresAt: now() + RESERVATION_TTL_MS },
          { quotaBytes, partial: plan.announced === null, ...(plan.replaces ? { replaces: plan.replaces } : {}) },
        );
        if (!reserved.ok) throw quotaExceeded(quotaBytes, reserved.usedBytes, plan.announced);
        reservationId = id;
        // An announced length is held to by the HTTP parser; a body of unknown length is cut off at
        // what was reserved when that is less than the file limit (which storage enforces itself).
        if (plan.announced === null && reserved.bytes < plan.maxBytes) cap = { bytes: reserved.bytes, usedBytes: reserved.usedBytes };
      }
      const capped: CappedStream[] = [];
      let stored: T;
      try {
        stored = await write((body) => {
          if (cap === null) return body;
          const { bytes, usedBytes } = cap;
          const limited = capStream(body, bytes, () => quotaExceeded(quotaBytes, usedBytes, null));
          capped.push(limited);
          return limited;
        });
      } catch (err) {
        for (const c of capped) c.detach();
        if (reservationId !== null) await store.releaseStorage(keyId, reservationId).catch(() => undefined);
        throw err;
      }
      try {
        await store.settleStorage({ keyId, reservationId, entry: { ...entryOf(stored), keyId } });
      } catch (err) {
        if (undo) await undo(stored).catch(() => undefined);
        throw err;
      }
      return stored;
    },

    async record(keyId, entry, completesUpload) {
      if (keyId === null) return;
      await store.settleStorage({ keyId, entry: { ...entry, keyId }, completesUpload: completesUpload ?? null });
    },
  };
}

export interface CappedStream extends Readable {
  /** Stops taking data from the source and leaves it paused (its consumer gave up). */
  detach(): void;
}

/**
 * `source` passed through, failing with `refuse()` once more than `limit` bytes have come. Like the
 * drivers' own limit, it never destroys the source: on a refusal (or `detach`) it lets go of it,
 * paused, so that the gateway can still answer on the connection the source belongs to.
 */
export function capStream(source: Readable, limit: number, refuse: () => PlatformError): CappedStream {
  let seen = 0;
  let attached = true;
  const out = new Readable({
    read() {
      if (attached) source.resume();
    },
    destroy(err, callback) {
      detach();
      callback(err);
    },
  }) as CappedStream;

  const onData = (chunk: Buffer | string): void => {
    const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    seen += buf.length;
    if (seen > limit) {
      out.destroy(refuse());
      return;
    }
    if (!out.push(buf)) source.pause();
  };
  const onEnd = (): void => {
    detach();
    out.push(null);
  };
  const onError = (err: Error): void => {
    out.destroy(err);
  };
  const onClose = (): void => {
    if (!source.readableEnded) out.destroy(new Error("upload stream closed before it ended"));
  };
  function detach(): void {
    if (!attached) return;
    attached = false;
    source.off("data", onData);
    source.off("end", onEnd);
    source.off("error", onError);
    source.off("close", onClose);
    source.pause();
  }
  out.detach = detach;

  source.on("data", onData);
  source.on("end", onEnd);
  source.on("error", onError);
  source.on("close", onClose);
  // Flows only while the consumer reads (read() resumes it).
  source.pause();
  return out;
}
