/**
 * The PostgreSQL driver's result keys (Store.takeResultKey, src/reuse/): the upsert decides who holds
 * a key under the row's lock, whichever gateway asks; only when the new request did not take it is
 * the holder read.
 * @module
 */
import type pg from "pg";
import { toRequestRecord, type RequestRow } from "../rows.js";
import type { Store } from "../store.js";
import { selectRows } from "./queries.js";

export type ResultKeys = Pick<Store, "takeResultKey">;

/** As in the SQLite driver: a holder still queued or running, or succeeded with files that live long enough ($2: until when, null for ever). */
const HOLDER_USABLE = `
  r.state IN ('QUEUED', 'RUNNING')
  OR (r.state = 'SUCCEEDED' AND (r.output_ttl_seconds IS NULL
      OR ($2::bigint IS NOT NULL AND r.finished_at + r.output_ttl_seconds * 1000 >= $2::bigint)))`;

export function createResultKeys(pool: pg.Pool): ResultKeys {
  const take: ResultKeys["takeResultKey"] = async (claim) => {
    const [written] = await selectRows<{ request_id: string }>(
      pool,
      `INSERT INTO result_cache (cache_key, request_id, app_id, created_at) VALUES ($1, $3, $4, $5)
       ON CONFLICT (cache_key) DO UPDATE SET request_id = EXCLUDED.request_id, app_id = EXCLUDED.app_id, created_at = EXCLUDED.created_at
       WHERE $6::boolean
          OR (NOT EXISTS (SELECT 1 FROM requests AS r WHERE r.id = result_cache.request_id AND (${HOLDER_USABLE}))
              AND (result_cache.created_at < $7 OR EXISTS (SELECT 1 FROM requests AS r WHERE r.id = result_cache.request_id)))
       RETURNING request_id`,
      [claim.key, claim.needUntil, claim.requestId, claim.appId, claim.now, claim.refresh, claim.staleBefore],
      "darkroom_take_result_key",
    );
    if (written?.request_id === claim.requestId) return { kind: "taken" };
    const [held] = await selectRows<{ request_id: string; usable: boolean | null; written: boolean }>(
      pool,
      `SELECT c.request_id, r.id IS NOT NULL AS written, (${HOLDER_USABLE}) AS usable
       FROM result_cache AS c LEFT JOIN requests AS r ON r.id = c.request_id WHERE c.cache_key = $1`,
      [claim.key, claim.needUntil],
      "darkroom_result_key_holder",
    );
    // Gone, or its holder ended (or its files aged) between the two statements: ask again.
    if (!held || (held.written && !held.usable)) return take(claim);
    if (!held.written) return { kind: "join", leaderId: held.request_id, leader: null };
    const [row] = await selectRows<RequestRow>(pool, `SELECT * FROM requests WHERE id = $1`, [held.request_id], "darkroom_get_request");
    if (!row) return take(claim);
    const record = toRequestRecord(row);
    return record.state === "SUCCEEDED" ? { kind: "hit", source: record } : { kind: "join", leaderId: record.id, leader: record };
  };
  return { takeResultKey: take };
}
