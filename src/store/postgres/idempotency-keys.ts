/**
 * The PostgreSQL driver's idempotency keys (Store.reserveIdempotencyKey): the upsert decides who holds
 * a key, under the row's lock, whichever gateway asks.
 * @module
 */
import type pg from "pg";
import type { Store } from "../store.js";
import { selectRows } from "./queries.js";

export type IdempotencyKeys = Pick<Store, "reserveIdempotencyKey" | "releaseIdempotencyKey" | "sweepIdempotencyKeys">;

export function createIdempotencyKeys(pool: pg.Pool): IdempotencyKeys {
  const reserve: IdempotencyKeys["reserveIdempotencyKey"] = async (r) => {
    // Inserted, or taken over when the holder's key expired or its request was never written.
    const [written] = await selectRows<{ request_id: string }>(
      pool,
      `INSERT INTO idempotency_keys (key_id, idem_key, fingerprint, request_id, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (key_id, idem_key) DO UPDATE SET
         fingerprint = EXCLUDED.fingerprint, request_id = EXCLUDED.request_id, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
       WHERE idempotency_keys.expires_at <= $5
          OR (idempotency_keys.created_at < $7 AND NOT EXISTS (SELECT 1 FROM requests WHERE id = idempotency_keys.request_id))
       RETURNING request_id`,
      [r.keyId, r.key, r.fingerprint, r.requestId, r.now, r.expiresAt, r.staleBefore],
      "darkroom_reserve_idempotency_key",
    );
    if (written?.request_id === r.requestId) return { kind: "reserved" };
    const [holder] = await selectRows<{ request_id: string; fingerprint: string }>(
      pool,
      `SELECT request_id, fingerprint FROM idempotency_keys WHERE key_id = $1 AND idem_key = $2`,
      [r.keyId, r.key],
      "darkroom_select_idempotency_key",
    );
    // Released between the two statements (its submit failed): the key is free, so ask again.
    if (!holder) return reserve(r);
    return { kind: "taken", requestId: holder.request_id, fingerprint: holder.fingerprint };
  };

  return {
    reserveIdempotencyKey: reserve,

    async releaseIdempotencyKey(keyId, key, requestId) {
      await pool.query({ name: "darkroom_release_idempotency_key", text: `DELETE FROM idempotency_keys WHERE key_id = $1 AND idem_key = $2 AND request_id = $3`, values: [keyId, key, requestId] });
    },

    async sweepIdempotencyKeys(now) {
      const result = await pool.query({ name: "darkroom_sweep_idempotency_keys", text: `DELETE FROM idempotency_keys WHERE expires_at <= $1`, values: [now] });
      return result.rowCount ?? 0;
    },
  };
}
