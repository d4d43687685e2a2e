/**
 * The SQLite driver's idempotency keys (Store.reserveIdempotencyKey): one row per API key and
 * `Idempotency-Key`, written through the group commit like every other write.
 * @module
 */
import type Database from "better-sqlite3";
import type { Store } from "../store.js";
import type { GroupCommit } from "./group-commit.js";

export type IdempotencyKeys = Pick<Store, "reserveIdempotencyKey" | "releaseIdempotencyKey" | "sweepIdempotencyKeys">;

export function createIdempotencyKeys(db: Database.Database, writes: GroupCommit): IdempotencyKeys {
  // Inserted, or taken over when the holder's key expired or its request was never written: either
  // way the row then names this request.
  const upsert = db.prepare<{ keyId: string; key: string; fingerprint: string; requestId: string; now: number; expiresAt: number; staleBefore: number }, { request_id: string; fingerprint: string }>(`
    INSERT INTO idempotency_keys (key_id, idem_key, fingerprint, request_id, created_at, expires_at)
    VALUES (@keyId, @key, @fingerprint, @requestId, @now, @expiresAt)
    ON CONFLICT (key_id, idem_key) DO UPDATE SET
      fingerprint = excluded.fingerprint, request_id = excluded.request_id, created_at = excluded.created_at, expires_at = excluded.expires_at
    WHERE idempotency_keys.expires_at <= @now
       OR (idempotency_keys.created_at < @staleBefore AND NOT EXISTS (SELECT 1 FROM requests WHERE id = idempotency_keys.request_id))
    RETURNING request_id, fingerprint`);
  const select = db.prepare<[string, string], { request_id: string; fingerprint: string }>(`SELECT request_id, fingerprint FROM idempotency_keys WHERE key_id = ? AND idem_key = ?`);
  const release = db.prepare<[string, string, string]>(`DELETE FROM idempotency_keys WHERE key_id = ? AND idem_key = ? AND request_id = ?`);
  const sweep = db.prepare<[number]>(`DELETE FROM idempotency_keys WHERE expires_at <= ?`);

  return {
    reserveIdempotencyKey(reservation) {
      return writes.run(() => {
        const written = upsert.get(reservation);
        if (written?.request_id === reservation.requestId) return { kind: "reserved" as const };
        const holder = select.get(reservation.keyId, reservation.key);
        if (!holder) throw new Error(`Idempotency key ${reservation.key} is neither written nor held`);
        return { kind: "taken" as const, requestId: holder.request_id, fingerprint: holder.fingerprint };
      });
    },

    async releaseIdempotencyKey(keyId, key, requestId) {
      await writes.run(() => release.run(keyId, key, requestId));
    },

    async sweepIdempotencyKeys(now) {
      return writes.run(() => sweep.run(now).changes);
    },
  };
}
