/**
 * Claims under concurrency limits (`maxConcurrency` of a tenant or a key, docs/fair-share.md) for the
 * SQLite driver. While no limit is set anywhere, the driver's plain claim statements run and this
 * costs one probe of two small partial indexes. Once one is set, a claim walks the queue in claim
 * order and takes only requests whose tenant and key both have room (their limits less the running
 * counts kept in memory, live-counts.ts), counting what it takes.
 *
 * Runs inside the driver's write (the group commit runs writes one at a time, each after the ones
 * before it in the batch), so the running counts it reads cannot change under it: a limit is never
 * exceeded.
 * @module
 */
import type Database from "better-sqlite3";
import { CAPPED_CLAIM_WINDOW, RoomLedger, type RequestRow } from "../rows.js";
import type { ClaimFilter } from "../store.js";

export interface CappedClaim {
  appId: string;
  owner: string;
  now: number;
  leaseExpiresAt: number;
  limit: number;
  filter?: ClaimFilter | undefined;
}

export interface CappedClaims {
  /** Whether any tenant or key has a concurrency limit: only then must claims count. */
  active(): boolean;
  /**
   * Says that a key's or a tenant's limits may have changed: the next `active()` reads the tables
   * again. One process owns the file, so its own writes are the only ones.
   */
  limitsChanged(): void;
  claim(params: CappedClaim): RequestRow[];
}

type Candidate = Pick<RequestRow, "seq" | "id" | "tenant" | "key_id">;

/** How many requests a tenant or a key runs now (live-counts.ts). */
export type RunningCount = (owner: { tenant: string } | { keyId: string }) => number;

export function createCappedClaims(db: Database.Database, running: RunningCount): CappedClaims {
  const anyLimit = db.prepare<[], { found: number }>(`
    SELECT EXISTS (SELECT 1 FROM tenants WHERE max_concurrency IS NOT NULL)
        OR EXISTS (SELECT 1 FROM api_keys WHERE max_concurrency IS NOT NULL) AS found`);
  // The owners with a limit; each one's room is its limit less what it runs now.
  const limitedTenants = db.prepare<[], { owner: string; limit: number }>(`SELECT name AS owner, max_concurrency AS "limit" FROM tenants WHERE max_concurrency IS NOT NULL`);
  const limitedKeys = db.prepare<[], { owner: string; limit: number }>(`SELECT id AS owner, max_concurrency AS "limit" FROM api_keys WHERE max_concurrency IS NOT NULL`);
  const walkQueue = db.prepare<{ appId: string; now: number; window: number }, Candidate>(`
    SELECT seq, id, tenant, key_id FROM requests
    WHERE app_id = @appId AND state = 'QUEUED' AND (start_deadline IS NULL OR start_deadline >= @now)
    ORDER BY priority_rank, fair_tag, created_at, seq
    LIMIT @window`);
  const walkNamed = db.prepare<{ appId: string; now: number; only: string }, Candidate>(`
    SELECT r.seq, r.id, r.tenant, r.key_id FROM json_each(@only) AS named CROSS JOIN requests AS r ON r.id = named.value
    WHERE r.app_id = @appId AND r.state = 'QUEUED' AND (r.start_deadline IS NULL OR r.start_deadline >= @now)
    ORDER BY r.priority_rank, r.fair_tag, r.created_at, r.seq`);
  const takeAll = db.prepare<{ owner: string; now: number; leaseExpiresAt: number; seqs: string }, RequestRow>(`
    UPDATE requests
    SET state = 'RUNNING', lease_owner = @owner, lease_expires_at = @leaseExpiresAt, started_at = @now
    WHERE seq IN (SELECT value FROM json_each(@seqs)) AND state = 'QUEUED'
    RETURNING *`);

  // Every claim asks, and limits change rarely: asked of the tables only after a change.
  let anyLimitSet: boolean | null = null;

  return {
    active: () => (anyLimitSet ??= anyLimit.get()?.found === 1),
    limitsChanged: () => {
      anyLimitSet = null;
    },

    claim({ appId, owner, now, leaseExpiresAt, limit, filter }) {
      if (limit <= 0 || filter?.only?.length === 0) return [];
      const ledger = new RoomLedger(
        limitedTenants.all().map(({ owner, limit }) => ({ owner, room: limit - running({ tenant: owner }) })),
        limitedKeys.all().map(({ owner, limit }) => ({ owner, room: limit - running({ keyId: owner }) })),
      );
      const except = new Set(filter?.except ?? []);
      const picked: number[] = [];
      const candidates = filter?.only
        ? walkNamed.iterate({ appId, now, only: JSON.stringify(filter.only) })
        : walkQueue.iterate({ appId, now, window: CAPPED_CLAIM_WINDOW });
      for (const candidate of candidates) {
        if (except.has(candidate.id) || !ledger.take(candidate.tenant, candidate.key_id)) continue;
        picked.push(candidate.seq);
        if (picked.length >= limit) break; // leaving the loop closes the iterator
      }
      if (picked.length === 0) return [];
      return takeAll.all({ owner, now, leaseExpiresAt, seqs: JSON.stringify(picked) });
    },
  };
}
