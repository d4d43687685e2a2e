/**
 * The SQLite driver's storage quota: the entries each API key holds in storage; `storage_usage` holds
 * their sum per key, kept by triggers (schema.ts). Every change runs through the group commit, whose
 * transactions take the write lock first (BEGIN IMMEDIATE), so a key's check and its write are never
 * split by another writer.
 * @module
 */
import type Database from "better-sqlite3";
import { assertStorageBytes, decideReservation } from "../rows.js";
import type { StorageEntry, StorageReservation, StorageReserveOptions, StorageSettlement, Store } from "../store.js";
import type { GroupCommit } from "./group-commit.js";

export type StorageEntries = Pick<Store, "reserveStorage" | "settleStorage" | "releaseStorage" | "storageUsed">;

export function createStorageEntries(db: Database.Database, writes: GroupCommit): StorageEntries {
  const pruneExpiredEntries = db.prepare<[string, number]>(
    `DELETE FROM storage_entries WHERE key_id = ? AND expires_at IS NOT NULL AND expires_at <= ?`,
  );
  const selectKeyStorage = db.prepare<[string], { bytes: number }>(`SELECT bytes FROM storage_usage WHERE key_id = ?`);
  const selectExpiredEntryBytes = db.prepare<[string, number], { bytes: number }>(
    `SELECT COALESCE(SUM(bytes), 0) AS bytes FROM storage_entries WHERE key_id = ? AND expires_at IS NOT NULL AND expires_at <= ?`,
  );
  const selectEntryBytes = db.prepare<[string, string], { bytes: number }>(`SELECT bytes FROM storage_entries WHERE id = ? AND key_id = ?`);
  const upsertEntry = db.prepare<StorageEntry>(`
    INSERT INTO storage_entries (id, key_id, bytes, upload_id, expires_at) VALUES (@id, @keyId, @bytes, @uploadId, @expiresAt)
    ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, bytes = excluded.bytes, upload_id = excluded.upload_id, expires_at = excluded.expires_at`);
  const deleteEntry = db.prepare<[string, string]>(`DELETE FROM storage_entries WHERE id = ? AND key_id = ?`);
  const deleteUploadEntries = db.prepare<[string, string]>(`DELETE FROM storage_entries WHERE upload_id = ? AND key_id = ?`);
  const touchUploadEntries = db.prepare<[number | null, string, string]>(`UPDATE storage_entries SET expires_at = ? WHERE upload_id = ? AND key_id = ?`);

  const reserveStorageTransaction = (entry: StorageEntry, options: StorageReserveOptions, now: number): StorageReservation => {
    pruneExpiredEntries.run(entry.keyId, now);
    const used = selectKeyStorage.get(entry.keyId)?.bytes ?? 0;
    const replaced = options.replaces ? (selectEntryBytes.get(options.replaces, entry.keyId)?.bytes ?? 0) : 0;
    const decision = decideReservation(used, replaced, entry.bytes, options);
    if (decision.ok) upsertEntry.run({ ...entry, bytes: decision.bytes });
    return decision;
  };

  const settleStorageTransaction = (s: StorageSettlement): void => {
    if (s.reservationId) deleteEntry.run(s.reservationId, s.keyId);
    if (s.completesUpload) deleteUploadEntries.run(s.completesUpload, s.keyId);
    if (s.entry) {
      upsertEntry.run({ ...s.entry, keyId: s.keyId });
      if (s.entry.uploadId !== null && s.entry.uploadId !== s.completesUpload) touchUploadEntries.run(s.entry.expiresAt, s.entry.uploadId, s.keyId);
    }
  };

  return {
    async reserveStorage(entry, options) {
      assertStorageBytes(entry.bytes);
      const now = options.now ?? Date.now();
      return writes.run(() => reserveStorageTransaction(entry, options, now));
    },

    async settleStorage(settlement) {
      if (settlement.entry) assertStorageBytes(settlement.entry.bytes);
      await writes.run(() => settleStorageTransaction(settlement));
    },

    async releaseStorage(keyId, id) {
      await writes.run(() => deleteEntry.run(id, keyId));
    },

    async storageUsed(keyId, now = Date.now()) {
      const total = selectKeyStorage.get(keyId)?.bytes ?? 0;
      return total - (selectExpiredEntryBytes.get(keyId, now)?.bytes ?? 0);
    },
  };
}
