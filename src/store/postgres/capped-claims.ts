/**
 * Claims under concurrency limits (`maxConcurrency` of a tenant or a key, docs/fair-share.md) for the
 * PostgreSQL driver. While no limit is set anywhere the driver's plain claims run (one locked, skipping
 * statement); whether one is set is read at most once a second, and at once after this process wrote
 * a tenant or key.
 *
 * Once one is set, every claim takes one transaction-scoped advisory lock first, so that claims of all
 * gateways count the running requests one after the other: two gateways cannot both see the last free
 * slot of a tenant. Then one statement walks the head of the queue in claim order and takes only
 * requests whose key and tenant both have room.
 * @module
 */
import type pg from "pg";
import { CAPPED_CLAIM_WINDOW, type RequestRow } from "../rows.js";
import type { ClaimFilter } from "../store.js";
import { transaction } from "./queries.js";

/** How long the answer to "is any limit set?" is trusted when this process did not change one. */
const ACTIVE_CHECK_MS = 1000;
/** Arbitrary, the same in every Darkroom build: the lock all capped claims take in turn. */
const CAPPED_CLAIM_LOCK_KEY = 0x6361_7070; // "capp"

const ORDER = "priority_rank, fair_tag, created_at, seq";

/**
 * $1 app, $2 owner, $3 now, $4 lease expiry, $5 limit; with `only`, $6 the ids to take; $7 (or $6
 * without `only`) the ids never to take. A key's rows pass up to its room; of those, a tenant's pass up
 * to the tenant's room (a key belongs to one tenant, so this takes what a greedy walk would).
 */
function cappedClaimStatement(narrowing: string): string {
  return `
  WITH tenant_rooms AS (
    SELECT t.name AS owner, t.max_concurrency - (SELECT count(*) FROM requests r WHERE r.tenant = t.name AND r.state = 'RUNNING') AS room
    FROM tenants t WHERE t.max_concurrency IS NOT NULL
  ), key_rooms AS (
    SELECT k.id AS owner, k.max_concurrency - (SELECT count(*) FROM requests r WHERE r.key_id = k.id AND r.state = 'RUNNING') AS room
    FROM api_keys k WHERE k.max_concurrency IS NOT NULL
  ), head AS (
    SELECT seq, tenant, key_id, priority_rank, fair_tag, created_at FROM requests
    WHERE app_id = $1 AND state = 'QUEUED' AND (start_deadline IS NULL OR start_deadline >= $3)${narrowing}
    ORDER BY ${ORDER}
    LIMIT ${CAPPED_CLAIM_WINDOW}
  ), key_ranked AS (
    SELECT head.*, row_number() OVER (PARTITION BY key_id ORDER BY ${ORDER}) AS key_n FROM head
  ), key_passed AS (
    SELECT k.* FROM key_ranked k LEFT JOIN key_rooms kr ON kr.owner = k.key_id
    WHERE kr.room IS NULL OR k.key_n <= kr.room
  ), tenant_ranked AS (
    SELECT key_passed.*, row_number() OVER (PARTITION BY tenant ORDER BY ${ORDER}) AS tenant_n FROM key_passed
  ), picked AS (
    SELECT t.seq FROM tenant_ranked t LEFT JOIN tenant_rooms tr ON tr.owner = t.tenant
    WHERE tr.room IS NULL OR t.tenant_n <= tr.room
    ORDER BY ${ORDER}
    LIMIT $5
  )
  UPDATE requests r
  SET state = 'RUNNING', lease_owner = $2, lease_expires_at = $4, started_at = $3
  FROM picked
  WHERE r.seq = picked.seq AND r.state = 'QUEUED'
  RETURNING r.*`;
}

const CAPPED_CLAIM = cappedClaimStatement("\n      AND NOT (id = ANY($6::text[]))");
const CAPPED_CLAIM_ONLY = cappedClaimStatement("\n      AND id = ANY($6::text[]) AND NOT (id = ANY($7::text[]))");

const ANY_LIMIT = `
  SELECT EXISTS (SELECT 1 FROM tenants WHERE max_concurrency IS NOT NULL)
      OR EXISTS (SELECT 1 FROM api_keys WHERE max_concurrency IS NOT NULL) AS found`;

export interface CappedClaims {
  /** Whether any tenant or key has a concurrency limit: only then must claims count. */
  active(): Promise<boolean>;
  /** Forgets the cached answer of `active` (this process wrote a tenant or a key). */
  changed(): void;
  claim(appId: string, owner: string, now: number, leaseExpiresAt: number, limit: number, filter?: ClaimFilter): Promise<RequestRow[]>;
}

export function createCappedClaims(pool: pg.Pool, leasePool: pg.Pool): CappedClaims {
  let known: { active: boolean; at: number } | null = null;
  return {
    async active() {
      if (known && Date.now() - known.at < ACTIVE_CHECK_MS) return known.active;
      const result = await pool.query<{ found: boolean }>({ name: "darkroom_any_concurrency_limit", text: ANY_LIMIT });
      known = { active: result.rows[0]?.found === true, at: Date.now() };
      return known.active;
    },

    changed() {
      known = null;
    },

    async claim(appId, owner, now, leaseExpiresAt, limit, filter) {
      if (limit <= 0 || filter?.only?.length === 0) return [];
      const values: unknown[] = [appId, owner, now, leaseExpiresAt, Math.trunc(limit)];
      const except = [...(filter?.except ?? [])];
      return transaction(leasePool, async (client) => {
        await client.query({ name: "darkroom_capped_claim_lock", text: "SELECT pg_advisory_xact_lock($1)", values: [CAPPED_CLAIM_LOCK_KEY] });
        const result = filter?.only
          ? await client.query<RequestRow>({ name: "darkroom_capped_claim_only", text: CAPPED_CLAIM_ONLY, values: [...values, [...filter.only], except] })
          : await client.query<RequestRow>({ name: "darkroom_capped_claim", text: CAPPED_CLAIM, values: [...values, except] });
        return result.rows;
      });
    },
  };
}
