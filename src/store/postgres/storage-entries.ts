/**
 * The PostgreSQL driver's storage quota: the entries each API key holds in storage, and their sum per
 * key in `storage_usage`, kept by a trigger (schema.ts). Every transaction that changes a key's
 * entries first locks that key's total, so concurrent reservations of one key, from any gateway, are
 * serialized.
 * @module
 */
import type pg from "pg";
import { assertStorageBytes, decideReservation } from "../rows.js";
import type { StorageEntry, Store } from "../store.js";
import { selectRows, transaction } from "./queries.js";

export type StorageEntries = Pick<Store, "reserveStorage" | "settleStorage" | "releaseStorage" | "storageUsed">;

/**
 * Locks `keyId`'s storage total for the rest of the transaction and returns it. Every transaction
 * that changes a key's storage entries takes this lock before touching them (the trigger that keeps
 * the total would take it anyway, but later, after row locks on entries: taking it first is what
 * rules out deadlocks between two transactions of one key).
 */
async function lockKeyStorage(client: pg.PoolClient, keyId: string): Promise<number> {
  const result = await client.query<{ bytes: number }>({
    name: "darkroom_lock_key_storage",
    text: `INSERT INTO storage_usage (key_id, bytes) VALUES ($1, 0)
           ON CONFLICT (key_id) DO UPDATE SET bytes = storage_usage.bytes
           RETURNING bytes`,
    values: [keyId],
  });
  return result.rows[0]?.bytes ?? 0;
}

async function upsertEntry(client: pg.PoolClient, entry: StorageEntry): Promise<void> {
  await client.query({
    name: "darkroom_upsert_storage_entry",
    text: `INSERT INTO storage_entries (id, key_id, bytes, upload_id, expires_at) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (id) DO UPDATE SET key_id = EXCLUDED.key_id, bytes = EXCLUDED.bytes, upload_id = EXCLUDED.upload_id, expires_at = EXCLUDED.expires_at`,
    values: [entry.id, entry.keyId, entry.bytes, entry.uploadId, entry.expiresAt],
  });
}

export function createStorageEntries(pool: pg.Pool): StorageEntries {
  return {
    async reserveStorage(entry, options) {
      assertStorageBytes(entry.bytes);
      const now = options.now ?? Date.now();
      return transaction(pool, async (client) => {
        await lockKeyStorage(client, entry.keyId);
        // Expired entries give their bytes back here, under the key's lock (the trigger updates the total).
        await client.query({
          name: "darkroom_prune_storage_entries",
          text: "DELETE FROM storage_entries WHERE key_id = $1 AND expires_at <= $2",
          values: [entry.keyId, now],
        });
        const [row] = (
          await client.query<{ used: number; replaced: number | null }>({
            name: "darkroom_key_storage",
            text: `SELECT u.bytes AS used, (SELECT e.bytes FROM storage_entries e WHERE e.id = $2 AND e.key_id = $1) AS replaced
                   FROM storage_usage u WHERE u.key_id = $1`,
            values: [entry.keyId, options.replaces ?? null],
          })
        ).rows;
        const decision = decideReservation(row?.used ?? 0, row?.replaced ?? 0, entry.bytes, options);
        if (decision.ok) await upsertEntry(client, { ...entry, bytes: decision.bytes });
        return decision;
      });
    },

    async settleStorage(settlement) {
      const { keyId, entry } = settlement;
      if (entry) assertStorageBytes(entry.bytes);
      await transaction(pool, async (client) => {
        await lockKeyStorage(client, keyId);
        if (settlement.reservationId) await client.query("DELETE FROM storage_entries WHERE id = $1 AND key_id = $2", [settlement.reservationId, keyId]);
        if (settlement.completesUpload) {
          await client.query("DELETE FROM storage_entries WHERE upload_id = $1 AND key_id = $2", [settlement.completesUpload, keyId]);
        }
        if (entry) {
          await upsertEntry(client, { ...entry, keyId });
          if (entry.uploadId !== null && entry.uploadId !== settlement.completesUpload) {
            await client.query("UPDATE storage_entries SET expires_at = $1 WHERE upload_id = $2 AND key_id = $3", [entry.expiresAt, entry.uploadId, keyId]);
          }
        }
      });
    },

    async releaseStorage(keyId, id) {
      await transaction(pool, async (client) => {
        await lockKeyStorage(client, keyId);
        await client.query("DELETE FROM storage_entries WHERE id = $1 AND key_id = $2", [id, keyId]);
      });
    },

    async storageUsed(keyId, now = Date.now()) {
      const [row] = await selectRows<{ used: number }>(
        pool,
        `SELECT (COALESCE((SELECT bytes FROM storage_usage WHERE key_id = $1), 0)
                 - COALESCE((SELECT SUM(bytes) FROM storage_entries WHERE key_id = $1 AND expires_at <= $2), 0))::bigint AS used`,
        [keyId, now],
      );
      return row?.used ?? 0;
    },
  };
}
