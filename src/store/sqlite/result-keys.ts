/**
 * The SQLite driver's result keys (Store.takeResultKey, src/reuse/): one row per key naming the
 * request that holds it. The upsert decides, in one statement of the group commit, whether the new
 * request takes the key; only when it does not is the holder read.
 * @module
 */
import type Database from "better-sqlite3";
import type { RequestRow } from "../rows.js";
import { toRequestRecord } from "../rows.js";
import type { Store } from "../store.js";
import type { GroupCommit } from "./group-commit.js";

export type ResultKeys = Pick<Store, "takeResultKey">;

interface TakeParams {
  key: string;
  appId: string;
  requestId: string;
  now: number;
  refresh: number;
  needUntil: number | null;
  staleBefore: number;
}

/**
 * What keeps a key with its holder: a request still queued or running (to join), or one that
 * succeeded and whose files live long enough (to copy). Shared with the read below, so that the two
 * never disagree.
 */
const HOLDER_USABLE = `
  r.state IN ('QUEUED', 'RUNNING')
  OR (r.state = 'SUCCEEDED' AND (r.output_ttl_seconds IS NULL
      OR (@needUntil IS NOT NULL AND r.finished_at + r.output_ttl_seconds * 1000 >= @needUntil)))`;

export function createResultKeys(db: Database.Database, writes: GroupCommit): ResultKeys {
  const upsert = db.prepare<TakeParams, { request_id: string }>(`
    INSERT INTO result_cache (cache_key, request_id, app_id, created_at) VALUES (@key, @requestId, @appId, @now)
    ON CONFLICT (cache_key) DO UPDATE SET request_id = excluded.request_id, app_id = excluded.app_id, created_at = excluded.created_at
    WHERE @refresh = 1
       OR (NOT EXISTS (SELECT 1 FROM requests AS r WHERE r.id = result_cache.request_id AND (${HOLDER_USABLE}))
           AND (result_cache.created_at < @staleBefore OR EXISTS (SELECT 1 FROM requests AS r WHERE r.id = result_cache.request_id)))
    RETURNING request_id`);
  const holderId = db.prepare<[string], { request_id: string }>(`SELECT request_id FROM result_cache WHERE cache_key = ?`);
  const holder = db.prepare<{ id: string; needUntil: number | null }, RequestRow>(`SELECT r.* FROM requests AS r WHERE r.id = @id AND (${HOLDER_USABLE})`);

  return {
    takeResultKey(claim) {
      return writes.run(() => {
        const params = { key: claim.key, appId: claim.appId, requestId: claim.requestId, now: claim.now, refresh: claim.refresh ? 1 : 0, needUntil: claim.needUntil, staleBefore: claim.staleBefore };
        if (upsert.get(params)?.request_id === claim.requestId) return { kind: "taken" as const };
        // The upsert and these reads run in one write transaction: the holder the upsert kept is still there.
        const leaderId = holderId.get(claim.key)?.request_id;
        if (!leaderId) throw new Error(`Result key ${claim.key} is neither taken nor held`);
        const row = holder.get({ id: leaderId, needUntil: claim.needUntil });
        const record = row ? toRequestRecord(row) : null;
        return record?.state === "SUCCEEDED" ? { kind: "hit" as const, source: record } : { kind: "join" as const, leaderId, leader: record };
      });
    },
  };
}
