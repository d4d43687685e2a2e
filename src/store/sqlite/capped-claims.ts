/**
 * Claims under concurrency limits (`maxConcurrency` of a tenant or a key, docs/fair-share.md) for the
 * SQLite driver. While no limit is set anywhere, the driver's plain claim statements run and this
 * costs one probe of two small partial indexes. Once one is set, a claim walks the queue in claim
 * order and takes only requests whose tenant and key both have room, counting what it takes.
 *
 * Runs inside the driver's write transaction (the group commit takes the write lock first), so the
 * running counts it reads cannot change under it: a limit is never exceeded.
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
  claim(params: CappedClaim): RequestRow[];
}

type Candidate = Pick<RequestRow, "seq" | "id" | "tenant" | "key_id">;

export function createCappedClaims(db: Database.Database): CappedClaims {
  const anyLimit = db.prepare<[], { found: number }>(`
    SELECT EXISTS (SELECT 1 FROM tenants WHERE max_concurrency IS NOT NULL)
        OR EXISTS (SELECT 1 FROM api_keys WHERE max_concurrency IS NOT NULL) AS found`);
  // Each limited owner's room: its limit less what it runs now (counted on the live-request indexes,
  // so at most about the limit is read per owner).
  const tenantRooms = db.prepare<[], { owner: string; room: number }>(`
    SELECT t.name AS owner,
           t.max_concurrency - (SELECT COUNT(*) FROM requests r WHERE r.tenant = t.name AND r.state = 'RUNNING' AND r.state IN ('QUEUED', 'RUNNING')) AS room
    FROM tenants t WHERE t.max_concurrency IS NOT NULL`);
  const keyRooms = db.prepare<[], { owner: string; room: number }>(`
    SELECT k.id AS owner,
           k.max_concurrency - (SELECT COUNT(*) FROM requests r
                                WHERE r.key_id = k.id AND r.state = 'RUNNING' AND r.state IN ('QUEUED', 'RUNNING') AND r.key_id IS NOT NULL) AS room
    FROM api_keys k WHERE k.max_concurrency IS NOT NULL`);
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

  return {
    active: () => anyLimit.get()?.found === 1,

    claim({ appId, owner, now, leaseExpiresAt, limit, filter }) {
      if (limit <= 0 || filter?.only?.length === 0) return [];
      const ledger = new RoomLedger(tenantRooms.all(), keyRooms.all());
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
