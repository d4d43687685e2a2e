/**
 * The store driver on PostgreSQL (node-postgres), for several gateways sharing one database.
 *
 * Claims pick rows with `FOR UPDATE SKIP LOCKED`: concurrent claimers, in this process or another,
 * each lock different queued rows and never wait on each other. Terminal writes are one statement
 * whose guard (`WHERE state ... AND lease_owner ... AND attempt ...`) is re-checked on the latest row
 * version after any concurrent writer commits (READ COMMITTED), so a second result finds nothing to
 * update; the usage row is written by the same statement. Read-then-write operations (requeue, cancel)
 * lock the request row first.
 *
 * Times are unix milliseconds from this process's clock, as in the SQLite driver (`bigint` columns,
 * parsed to numbers). Gateways are expected to run NTP: claim order by creation time is only as good
 * as their clocks agree.
 * @module
 */
import pg from "pg";
import { requestListLimit, usageListLimit } from "../limits.js";
import {
  CANCELLED_BY_CLIENT,
  newRequestColumns,
  sortInClaimOrder,
  strideOf,
  terminalColumns,
  toApiKeyRecord,
  toJsonColumn,
  toTenantRecord,
  toRemoteAppRecord,
  toRequestLog,
  toRequestRecord,
  toUsageRecord,
  type ApiKeyRow,
  type TenantRow,
  type LogRow,
  type RemoteAppRow,
  type RequestRow,
  type UsageRow,
} from "../rows.js";
import type { CancelResult, ClaimFor, NewRequest, RequestListFilter, Store, Submitted, TerminalWrite, UsageFilter } from "../store.js";
import { createPgBus, type PgBus } from "./pg-bus.js";
import { pgText, selectRows, transaction, TYPES } from "./queries.js";
import { createCappedClaims } from "./capped-claims.js";
import { FairTagFloors } from "./fair-tag-floors.js";
import { migrate } from "./schema.js";
import { createPrices } from "./prices.js";
import { createStorageEntries } from "./storage-entries.js";
import { createIdempotencyKeys } from "./idempotency-keys.js";
import { createResultKeys } from "./result-keys.js";
import { createRunners } from "./runners.js";
import { createWorkflows } from "./workflows.js";
import { createWebhookOutbox } from "./webhooks.js";

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database` (any libpq-style URL node-postgres accepts). */
  url: string;
  /**
   * Connections in the pool. The bus holds one more, outside the pool.
   * @default 10
   */
  poolSize?: number;
  /**
   * Schema that holds the tables, created by `migrate()` if missing. It also namespaces the bus
   * channels, so deployments in different schemas of one database do not hear each other.
   * @default the connection's own search path (normally `public`)
   */
  schema?: string;
  /**
   * Errors no caller is waiting for: a pooled idle connection lost, the bus connection lost, a bus
   * listener that threw.
   * @default a process warning
   */
  onError?: (error: unknown, context: string) => void;
}

/** A PostgreSQL store; its bus can also say when its subscriptions are live. */
export interface PostgresStore extends Store {
  readonly bus: PgBus;
}

const DEFAULT_POOL_SIZE = 10;
const CONNECT_TIMEOUT_MS = 10_000;
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,40}$/;

function warn(error: unknown, context: string): void {
  process.emitWarning(`${context}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
}

// --- statements ---

/**
 * Start-time fair queueing (docs/fair-share.md): the start tag of a new request, computed by its
 * submit's own statement. It starts, in its queue's virtual time, at the clock (the latest start tag
 * handed to a runner) or one stride (1 / weight) past its tenant's latest live request, whichever is
 * later, and at least at the floor this process gives overlapping submits of one tenant
 * (fair-tag-floors.ts). Both are index lookups (requests_started_tag, requests_tenant_tag) and lock
 * nothing, so one tenant's concurrent submits never wait for each other's commits. Finished requests
 * need not be read: they were started, so their tags are at most the clock. Parameters: $2 app, $5
 * priority, $14 tenant, $15 floor (or null), $16 stride.
 */
const FAIR_TAG = `
  fair AS (
    SELECT GREATEST(
      (SELECT COALESCE(max(fair_tag), 0) FROM requests
       WHERE app_id = $2 AND priority_rank = (CASE $5 WHEN 'normal' THEN 0 ELSE 1 END) AND started_at IS NOT NULL),
      (SELECT max(fair_tag) FROM requests
       WHERE app_id = $2 AND priority_rank = (CASE $5 WHEN 'normal' THEN 0 ELSE 1 END) AND tenant = $14
         AND state IN ('QUEUED', 'RUNNING')) + $16::double precision,
      $15::double precision
    ) AS tag
  )`;

/** The insert of a queued request, after `WITH ${FAIR_TAG}`; $1-$16 as insertValues. */
const INSERT_REQUEST = `
  INSERT INTO requests (id, app_id, endpoint, input, state, priority, priority_rank, mode, created_at, start_deadline,
                        attempt, max_attempts, webhook_url, key_id, base_url, output_ttl_seconds, tenant, fair_tag)
  SELECT $1, $2, $3, $4, 'QUEUED', $5, CASE $5 WHEN 'normal' THEN 0 ELSE 1 END, $6, $7, $8, 1, $9, $10, $11, $12, $13, $14, fair.tag
  FROM fair
  RETURNING *`;

/** The values of INSERT_REQUEST's $1-$16: `floor` from FairTagFloors, null for none. */
function insertValues(req: NewRequest, createdAt: number, floor: number | null): unknown[] {
  const c = newRequestColumns(req, createdAt);
  return [c.id, c.appId, c.endpoint, c.input, c.priority, c.mode, c.createdAt, c.startDeadline, c.maxAttempts, c.webhookUrl, c.keyId, c.baseUrl,
    c.outputTtlSeconds, c.tenant, floor, strideOf(req.weight)];
}

/**
 * The claim: an app's next queued requests in claim order, locked (skipping rows other gateways hold)
 * and leased in one statement. started_at is overwritten on every claim: it is the start of the
 * latest attempt, which run time is measured from. `narrowing` is the filter of an isolated retry (see ClaimFilter):
 * with CLAIM_ONLY, $6 the ids to take (looked up by id rather than by walking the queue) and $7 the
 * ids never to take; with CLAIM_EXCEPT, $6 the ids never to take.
 */
function claimStatement(narrowing = ""): string {
  return `
  UPDATE requests r
  SET state = 'RUNNING', lease_owner = $2, lease_expires_at = $4, started_at = $3
  FROM (
    SELECT seq FROM requests
    WHERE app_id = $1 AND state = 'QUEUED' AND (start_deadline IS NULL OR start_deadline >= $3)${narrowing}
    ORDER BY priority_rank, fair_tag, created_at, seq
    LIMIT $5
    FOR UPDATE SKIP LOCKED
  ) picked
  WHERE r.seq = picked.seq
  RETURNING r.*`;
}
const CLAIM = claimStatement();
const CLAIM_ONLY = claimStatement("\n      AND id = ANY($6::text[]) AND NOT (id = ANY($7::text[]))");
const CLAIM_EXCEPT = claimStatement("\n      AND NOT (id = ANY($6::text[]))");

/**
 * A terminal write and its usage row in one statement. `condition` is the guard; the usage insert
 * reads the updated row from the CTE, so it exists exactly when the write happened.
 */
function terminalStatement(condition: string): string {
  // lease_owner is kept on terminal records (who ran it last); only the lease time is cleared.
  return `
    WITH done AS (
      UPDATE requests
      SET state = $2, output = $3, status_code = $4, error = $5, error_type = $6,
          billable_units = $7, finished_at = $8, lease_expires_at = NULL
      WHERE id = $1 AND ${condition}
      RETURNING *
    ), recorded AS (
      INSERT INTO usage (request_id, key_id, tenant, app_id, endpoint, state, queue_ms, run_ms, billable_units, finished_at, cache)
      SELECT id, key_id, tenant, app_id, endpoint, state,
             GREATEST(0, COALESCE(started_at, finished_at) - created_at),
             -- A reused result (src/reuse/) ran nothing of its own.
             CASE WHEN started_at IS NULL OR cache IS NOT NULL THEN 0 ELSE GREATEST(0, finished_at - started_at) END,
             billable_units, finished_at, cache
      FROM done
      ON CONFLICT (request_id) DO UPDATE SET
        key_id = EXCLUDED.key_id, tenant = EXCLUDED.tenant, app_id = EXCLUDED.app_id, endpoint = EXCLUDED.endpoint, state = EXCLUDED.state,
        queue_ms = EXCLUDED.queue_ms, run_ms = EXCLUDED.run_ms, billable_units = EXCLUDED.billable_units,
        finished_at = EXCLUDED.finished_at, cache = EXCLUDED.cache
    )
    SELECT * FROM done`;
}

const FINISH_GUARDED = terminalStatement("state = 'RUNNING' AND lease_owner = $9 AND attempt = $10");
const FINISH_UNGUARDED = terminalStatement("state IN ('QUEUED', 'RUNNING')");

function terminalValues(id: string, write: TerminalWrite, finishedAt: number): unknown[] {
  const c = terminalColumns(id, write, finishedAt, pgText);
  // In the order of terminalStatement's $1-$8.
  return [c.id, c.state, c.output, c.statusCode, c.error, c.errorType, c.billableUnits, c.finishedAt];
}

const UPSERT_USAGE = `
  INSERT INTO usage (request_id, key_id, app_id, endpoint, state, queue_ms, run_ms, billable_units, finished_at, tenant, cache)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
  ON CONFLICT (request_id) DO UPDATE SET
    key_id = EXCLUDED.key_id, tenant = EXCLUDED.tenant, app_id = EXCLUDED.app_id, endpoint = EXCLUDED.endpoint, state = EXCLUDED.state,
    queue_ms = EXCLUDED.queue_ms, run_ms = EXCLUDED.run_ms, billable_units = EXCLUDED.billable_units,
    finished_at = EXCLUDED.finished_at, cache = EXCLUDED.cache`;

/**
 * `submit` with a claim as one statement (one round trip, one commit). The new request competes with
 * the head of the queue in claim order (its fair-share tag may put it ahead of older requests), so it
 * is taken only when fewer than `limit` claimable requests come before it, and then it is inserted
 * already RUNNING. Parameters: $1-$16 as insertValues, $17 owner, $18 lease expiry, $19 limit, $20
 * the new request's priority rank. `ahead` (on the new row) is its queue position: queued requests
 * before it in claim order in the statement's snapshot, which still shows the ones claimed here as
 * queued, less those.
 */
const SUBMIT_AND_CLAIM = `
  WITH ${FAIR_TAG}, candidates AS (
    SELECT seq, priority_rank, fair_tag, created_at FROM requests
    WHERE app_id = $2 AND state = 'QUEUED' AND (start_deadline IS NULL OR start_deadline >= $7)
    ORDER BY priority_rank, fair_tag, created_at, seq
    LIMIT $19
    FOR UPDATE SKIP LOCKED
  ), ranked AS (
    SELECT seq, row_number() OVER (ORDER BY priority_rank, fair_tag, created_at, seq) AS n,
           (priority_rank, fair_tag, created_at) <= ($20::smallint, fair.tag, $7::bigint) AS before_new
    FROM candidates, fair
  ), decision AS (
    SELECT ($8::bigint IS NULL OR $8::bigint >= $7::bigint) AND (SELECT count(*) FROM ranked WHERE before_new) < $19 AS take_new
  ), taken AS (
    UPDATE requests r
    SET state = 'RUNNING', lease_owner = $17, lease_expires_at = $18, started_at = $7
    FROM ranked, decision
    WHERE r.seq = ranked.seq AND ranked.n + CASE WHEN decision.take_new AND NOT ranked.before_new THEN 1 ELSE 0 END <= $19
    RETURNING r.*
  ), inserted AS (
    INSERT INTO requests (id, app_id, endpoint, input, state, priority, priority_rank, mode, created_at, start_deadline,
                          attempt, max_attempts, webhook_url, key_id, base_url, output_ttl_seconds, tenant, fair_tag,
                          lease_owner, lease_expires_at, started_at)
    SELECT $1, $2, $3, $4, CASE WHEN take_new THEN 'RUNNING' ELSE 'QUEUED' END, $5, $20, $6, $7, $8,
           1, $9, $10, $11, $12, $13, $14, fair.tag,
           CASE WHEN take_new THEN $17 END, CASE WHEN take_new THEN $18::bigint END, CASE WHEN take_new THEN $7::bigint END
    FROM decision, fair
    RETURNING *
  )
  SELECT true AS is_new, inserted.*,
         (SELECT count(*) FROM requests q WHERE q.app_id = $2 AND q.state = 'QUEUED'
            AND (q.priority_rank, q.fair_tag, q.created_at) <= (inserted.priority_rank, inserted.fair_tag, inserted.created_at))
           - (SELECT count(*) FROM taken
              WHERE (taken.priority_rank, taken.fair_tag, taken.created_at) <= (inserted.priority_rank, inserted.fair_tag, inserted.created_at)) AS ahead
  FROM inserted
  UNION ALL
  SELECT false, taken.*, NULL FROM taken`;

/**
 * A JOINED request (src/reuse/): inserted RUNNING under the joining gateway's lease, tagged as a
 * queued one would be so that it takes its place in the queue if it is put back (its leader was
 * cancelled). $1-$16 as insertValues, $17 owner, $18 lease expiry, $19 the leader.
 */
const INSERT_JOINED = `
  WITH ${FAIR_TAG}
  INSERT INTO requests (id, app_id, endpoint, input, state, priority, priority_rank, mode, created_at, start_deadline,
                        attempt, max_attempts, webhook_url, key_id, base_url, output_ttl_seconds, tenant, fair_tag,
                        started_at, lease_owner, lease_expires_at, cache, reused_from)
  SELECT $1, $2, $3, $4, 'RUNNING', $5, CASE $5 WHEN 'normal' THEN 0 ELSE 1 END, $6, $7, $8, 1, $9, $10, $11, $12, $13, $14, fair.tag,
         $7, $17, $18, 'JOINED', $19
  FROM fair
  RETURNING *`;

/**
 * A HIT (src/reuse/): inserted finished with its source's result, and its usage (no run time), in
 * one statement. Never queued, so no fair-share tag: a hit does not use its tenant's turn.
 */
const INSERT_HIT = `
  WITH done AS (
    INSERT INTO requests (id, app_id, endpoint, input, state, priority, priority_rank, mode, created_at, start_deadline,
                          attempt, max_attempts, webhook_url, key_id, base_url, output_ttl_seconds, tenant, fair_tag,
                          started_at, finished_at, output, status_code, billable_units, cache, reused_from)
    VALUES ($1, $2, $3, $4, 'SUCCEEDED', $5, CASE $5 WHEN 'normal' THEN 0 ELSE 1 END, $6, $7, $8, 1, $9, $10, $11, $12, $13, $14, 0,
            $7, $7, $15, $16, $17, 'HIT', $18)
    RETURNING *
  ), recorded AS (
    INSERT INTO usage (request_id, key_id, tenant, app_id, endpoint, state, queue_ms, run_ms, billable_units, finished_at, cache)
    SELECT id, key_id, tenant, app_id, endpoint, state, 0, 0, billable_units, finished_at, cache FROM done
  )
  SELECT * FROM done`;

/**
 * The upsert on the per-request counter takes a row lock that concurrent appenders of the same
 * request queue behind, and on conflict it reads the latest committed count: each batch gets its own
 * contiguous range of indexes, all in one statement.
 */
const APPEND_LOGS = `
  WITH counted AS (
    INSERT INTO request_log_counts (request_id, count) VALUES ($1, $2)
    ON CONFLICT (request_id) DO UPDATE SET count = request_log_counts.count + EXCLUDED.count
    RETURNING count - $2 AS first
  )
  INSERT INTO request_logs (request_id, idx, message, level, source, timestamp)
  SELECT $1, counted.first + line.ord - 1, line.message, line.level, line.source, line.timestamp
  FROM counted, unnest($3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY
    AS line (message, level, source, timestamp, ord)`;

export function createPostgresStore(options: PostgresStoreOptions): PostgresStore {
  const schema = options.schema ?? null;
  if (schema !== null && !SCHEMA_NAME.test(schema)) {
    throw new Error(`Invalid PostgreSQL schema name "${schema}": use lower-case letters, digits and _ (at most 41)`);
  }
  const onError = options.onError ?? warn;
  const clientConfig: pg.ClientConfig = {
    connectionString: options.url,
    types: TYPES,
    // An unreachable server fails the call instead of leaving it waiting forever.
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
    // The search path is set at connection start, so every pooled connection sees the same tables
    // without an extra round trip.
    ...(schema !== null ? { options: `-c search_path=${schema}` } : {}),
  };
  const pool = new pg.Pool({ ...clientConfig, max: options.poolSize ?? DEFAULT_POOL_SIZE, application_name: "darkroom" });
  /**
   * Claims and lease renewals commit without waiting for the WAL flush (synchronous_commit off, set
   * per connection). Nothing acknowledged depends on them: a claim lost to a database crash leaves
   * the request QUEUED, and the holder's guarded result is refused, so it runs again; a lost renewal
   * only shortens a lease. Submits, outcomes, keys and webhooks stay on the durable pool. This saves
   * a disk flush (milliseconds) on the path from submit to a runner starting the work.
   */
  const leasePool = new pg.Pool({
    ...clientConfig,
    options: [clientConfig.options, "-c synchronous_commit=off"].filter(Boolean).join(" "),
    max: Math.max(2, Math.ceil((options.poolSize ?? DEFAULT_POOL_SIZE) / 2)),
    application_name: "darkroom-leases",
  });
  let closed = false;
  // An idle pooled connection that dies (database restart, network) emits here; without a listener
  // the process would crash. The pool replaces it on the next checkout. Once the store is closing,
  // connections the server ends are expected: pool.end() resolves before their sockets are gone.
  pool.on("error", (error) => {
    if (!closed) onError(error, "idle PostgreSQL connection");
  });
  leasePool.on("error", (error) => {
    if (!closed) onError(error, "idle PostgreSQL connection");
  });
  const cappedClaims = createCappedClaims(pool, leasePool);

  const fairTagFloors = new FairTagFloors();

  /** Runs one submit statement of `req` under its tenant's floor (fair-tag-floors.ts). */
  function withFairTag<T>(req: NewRequest, submit: (floor: number | null) => Promise<{ tag: number; value: T }>): Promise<T> {
    return fairTagFloors.run(`${req.priority}\n${req.appId}\n${req.tenant ?? ""}`, strideOf(req.weight), submit);
  }

  /**
   * A submit without a claim, in one statement: the count runs on the statement's snapshot, which does
   * not include the new row (the newest, so it is behind any tie), so it is exactly the number of
   * requests ahead.
   */
  function enqueueWithPosition(req: NewRequest, now: number): Promise<Submitted> {
    return withFairTag(req, async (floor) => {
      const [row] = await rows<RequestRow & { ahead: number }>(
        `WITH ${FAIR_TAG}, inserted AS (${INSERT_REQUEST})
         SELECT inserted.*, (
           SELECT count(*) FROM requests q
           WHERE q.app_id = inserted.app_id AND q.state = 'QUEUED'
             AND (q.priority_rank, q.fair_tag, q.created_at) <= (inserted.priority_rank, inserted.fair_tag, inserted.created_at)
         ) AS ahead
         FROM inserted`,
        insertValues(req, now, floor),
        "darkroom_submit",
      );
      if (!row) throw new Error(`Enqueue of request ${req.id} returned no row`);
      return { tag: row.fair_tag, value: { record: toRequestRecord(row), queuePosition: row.ahead, claimed: [] } };
    });
  }
  const bus = createPgBus({
    pool,
    clientConfig,
    channelPrefix: schema === null ? "darkroom" : `darkroom_${schema}`,
    onError,
  });

  function rows<R extends pg.QueryResultRow>(text: string, values: unknown[], name?: string, on: pg.Pool = pool): Promise<R[]> {
    return selectRows<R>(on, text, values, name);
  }

  return {
    name: "postgres",
    bus,


    async migrate() {
      const client = await pool.connect();
      try {
        await migrate(client, schema);
      } finally {
        client.release();
      }
    },

    async close() {
      closed = true;
      await bus.close();
      await Promise.all([pool.end(), leasePool.end()]);
    },

    enqueue(req) {
      return withFairTag(req, async (floor) => {
        const [row] = await rows<RequestRow>(`WITH ${FAIR_TAG} ${INSERT_REQUEST}`, insertValues(req, Date.now(), floor), "darkroom_insert_request");
        if (!row) throw new Error(`Enqueue of request ${req.id} returned no row`);
        return { tag: row.fair_tag, value: toRequestRecord(row) };
      });
    },

    async submit(req: NewRequest, claim: ClaimFor | null) {
      const now = Date.now();
      if (claim && claim.limit > 0 && (await cappedClaims.active())) {
        // Under concurrency limits the claim needs its lock and count: enqueue first, then claim.
        const queued = await enqueueWithPosition(req, now);
        const claimed = sortInClaimOrder(await cappedClaims.claim(req.appId, claim.owner, now, now + claim.leaseMs, claim.limit)).map(toRequestRecord);
        const mine = claimed.find((r) => r.id === req.id);
        return mine ? { record: mine, queuePosition: null, claimed } : { ...queued, claimed };
      }
      if (!claim || claim.limit <= 0) return enqueueWithPosition(req, now);
      return withFairTag(req, async (floor) => {
        const found = await rows<RequestRow & { is_new: boolean; ahead: number | null }>(
          SUBMIT_AND_CLAIM,
          [...insertValues(req, now, floor), claim.owner, now + claim.leaseMs, Math.trunc(claim.limit), req.priority === "normal" ? 0 : 1],
          "darkroom_submit_and_claim",
        );
        const row = found.find((r) => r.is_new);
        if (!row) throw new Error(`Enqueue of request ${req.id} returned no row`);
        const claimed = sortInClaimOrder(found.filter((r) => r.is_new ? r.state === "RUNNING" : true)).map(toRequestRecord);
        return { tag: row.fair_tag, value: { record: toRequestRecord(row), queuePosition: row.state === "RUNNING" ? null : row.ahead, claimed } };
      });
    },

    async submitReused(req, reuse) {
      const now = Date.now();
      if (reuse.kind === "hit") {
        const c = newRequestColumns(req, now);
        const { source } = reuse;
        const [row] = await rows<RequestRow>(
          INSERT_HIT,
          [c.id, c.appId, c.endpoint, c.input, c.priority, c.mode, c.createdAt, c.startDeadline, c.maxAttempts, c.webhookUrl, c.keyId, c.baseUrl,
            c.outputTtlSeconds, c.tenant, toJsonColumn(source.output), source.statusCode, source.billableUnits, source.id],
          "darkroom_insert_hit",
        );
        if (!row) throw new Error(`Insert of request ${req.id} returned no row`);
        return toRequestRecord(row);
      }
      return withFairTag(req, async (floor) => {
        const [row] = await rows<RequestRow>(INSERT_JOINED, [...insertValues(req, now, floor), reuse.owner, reuse.leaseExpiresAt, reuse.leaderId], "darkroom_insert_joined");
        if (!row) throw new Error(`Insert of request ${req.id} returned no row`);
        return { tag: row.fair_tag, value: toRequestRecord(row) };
      });
    },

    async get(id) {
      const [row] = await rows<RequestRow>("SELECT * FROM requests WHERE id = $1", [id], "darkroom_get_request");
      return row ? toRequestRecord(row) : null;
    },

    async list(filter: RequestListFilter) {
      const where: string[] = [];
      const values: unknown[] = [];
      // Only the filters given go into the statement, so the planner sees plain equalities.
      if (filter.appId !== undefined) where.push(`app_id = $${values.push(filter.appId)}`);
      if (filter.state !== undefined) where.push(`state = $${values.push(filter.state)}`);
      if (filter.keyId !== undefined) where.push(`key_id = $${values.push(filter.keyId)}`);
      if (filter.before !== undefined) where.push(`created_at < $${values.push(filter.before)}`);
      const limit = `$${values.push(requestListLimit(filter.limit))}`;
      const found = await rows<RequestRow>(
        `SELECT * FROM requests ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY created_at DESC, seq DESC LIMIT ${limit}`,
        values,
      );
      return found.map(toRequestRecord);
    },

    async claim(appId, owner, leaseMs, now = Date.now()) {
      const [row] = (await cappedClaims.active())
        ? await cappedClaims.claim(appId, owner, now, now + leaseMs, 1)
        : await rows<RequestRow>(CLAIM, [appId, owner, now, now + leaseMs, 1], "darkroom_claim", leasePool);
      return row ? toRequestRecord(row) : null;
    },

    async claimMany(appId, owner, leaseMs, limit, now = Date.now(), filter) {
      if (limit <= 0 || filter?.only?.length === 0) return [];
      if (await cappedClaims.active()) return sortInClaimOrder(await cappedClaims.claim(appId, owner, now, now + leaseMs, limit, filter)).map(toRequestRecord);
      const values = [appId, owner, now, now + leaseMs, Math.trunc(limit)];
      const except = [...(filter?.except ?? [])];
      let claimed: RequestRow[];
      if (filter?.only) claimed = await rows<RequestRow>(CLAIM_ONLY, [...values, [...filter.only], except], "darkroom_claim_only", leasePool);
      else if (except.length > 0) claimed = await rows<RequestRow>(CLAIM_EXCEPT, [...values, except], "darkroom_claim_except", leasePool);
      else claimed = await rows<RequestRow>(CLAIM, values, "darkroom_claim", leasePool);
      return sortInClaimOrder(claimed).map(toRequestRecord);
    },

    async heartbeat(id, owner, leaseMs, now = Date.now()) {
      const result = await leasePool.query({
        name: "darkroom_heartbeat",
        text: "UPDATE requests SET lease_expires_at = $3 WHERE id = $1 AND state = 'RUNNING' AND lease_owner = $2",
        values: [id, owner, now + leaseMs],
      });
      return (result.rowCount ?? 0) > 0;
    },

    async finish(id, write, guard) {
      const values = terminalValues(id, write, Date.now());
      const [row] = guard
        ? await rows<RequestRow>(FINISH_GUARDED, [...values, guard.owner, guard.attempt], "darkroom_finish_guarded")
        : await rows<RequestRow>(FINISH_UNGUARDED, values, "darkroom_finish_unguarded");
      return row ? toRequestRecord(row) : null;
    },

    async requeue(id, guard, exhausted) {
      const row = await transaction(pool, async (client) => {
        const current = (await client.query<RequestRow>("SELECT * FROM requests WHERE id = $1 FOR UPDATE", [id])).rows[0];
        if (!current || current.state !== "RUNNING") return undefined;
        if (guard && (current.lease_owner !== guard.owner || current.attempt !== guard.attempt)) return undefined;
        if (current.attempt >= current.max_attempts) {
          return (await client.query<RequestRow>(FINISH_UNGUARDED, terminalValues(id, exhausted, Date.now()))).rows[0];
        }
        // created_at is left alone so that the request keeps its place in the queue.
        const requeued = await client.query<RequestRow>(
          `UPDATE requests SET state = 'QUEUED', attempt = attempt + 1, lease_owner = NULL, lease_expires_at = NULL,
                               cache = NULL, reused_from = NULL
           WHERE id = $1 AND state = 'RUNNING'
           RETURNING *`,
          [id],
        );
        return requeued.rows[0];
      });
      return row ? toRequestRecord(row) : null;
    },

    async release(id, guard) {
      const [row] = await rows<RequestRow>(
        `UPDATE requests SET state = 'QUEUED', lease_owner = NULL, lease_expires_at = NULL, cache = NULL, reused_from = NULL
         WHERE id = $1 AND state = 'RUNNING' AND lease_owner = $2 AND attempt = $3
         RETURNING *`,
        [id, guard.owner, guard.attempt],
        "darkroom_release",
      );
      return row ? toRequestRecord(row) : null;
    },

    async cancel(id): Promise<CancelResult> {
      return transaction(pool, async (client): Promise<CancelResult> => {
        const current = (await client.query<RequestRow>("SELECT * FROM requests WHERE id = $1 FOR UPDATE", [id])).rows[0];
        if (!current) return { kind: "not_found" };
        if (current.state === "QUEUED") {
          const [cancelled] = (await client.query<RequestRow>(FINISH_UNGUARDED, terminalValues(id, CANCELLED_BY_CLIENT, Date.now()))).rows;
          if (cancelled) return { kind: "removed", record: toRequestRecord(cancelled) };
        } else if (current.state === "RUNNING") {
          const [signalled] = (
            await client.query<RequestRow>(
              "UPDATE requests SET cancel_requested = true WHERE id = $1 AND state = 'RUNNING' RETURNING *",
              [id],
            )
          ).rows;
          if (signalled) return { kind: "signalled", record: toRequestRecord(signalled) };
        }
        return { kind: "already_completed", record: toRequestRecord(current) };
      });
    },

    async queuePosition(id) {
      const [row] = await rows<{ state: string; ahead: number }>(
        `SELECT r.state, (
           SELECT count(*) FROM requests q
           WHERE q.app_id = r.app_id AND q.state = 'QUEUED'
             AND (q.priority_rank, q.fair_tag, q.created_at, q.seq) < (r.priority_rank, r.fair_tag, r.created_at, r.seq)
         ) AS ahead
         FROM requests r WHERE r.id = $1`,
        [id],
        "darkroom_queue_position",
      );
      return row && row.state === "QUEUED" ? row.ahead : null;
    },

    async queueDepths() {
      const found = await rows<{ app_id: string; depth: number }>(
        "SELECT app_id, count(*) AS depth FROM requests WHERE state = 'QUEUED' GROUP BY app_id",
        [],
      );
      return new Map(found.map((row) => [row.app_id, row.depth]));
    },

    async countLive(owner, state, atMost) {
      const [column, value] = "tenant" in owner ? ["tenant", owner.tenant] : ["key_id", owner.keyId];
      const [row] = await rows<{ n: number }>(
        `SELECT count(*) AS n FROM (
           SELECT 1 FROM requests WHERE ${column} = $1 AND state = $2 AND state IN ('QUEUED', 'RUNNING')${column === "key_id" ? " AND key_id IS NOT NULL" : ""} LIMIT $3
         ) live`,
        [value, state, Math.max(0, Math.trunc(atMost))],
      );
      return row?.n ?? 0;
    },

    async expiredLeases(now) {
      const found = await rows<RequestRow>(
        "SELECT * FROM requests WHERE state = 'RUNNING' AND lease_expires_at < $1 ORDER BY lease_expires_at, seq",
        [now],
      );
      return found.map(toRequestRecord);
    },

    async running() {
      return (await rows<RequestRow>("SELECT * FROM requests WHERE state = 'RUNNING' ORDER BY seq", [])).map(toRequestRecord);
    },

    async expiredStartDeadlines(now) {
      const found = await rows<RequestRow>(
        `SELECT * FROM requests
         WHERE state = 'QUEUED' AND start_deadline IS NOT NULL AND start_deadline < $1
         ORDER BY start_deadline, seq`,
        [now],
      );
      return found.map(toRequestRecord);
    },

    async appendLogs(requestId, logs) {
      if (logs.length === 0) return;
      await pool.query({
        name: "darkroom_append_logs",
        text: APPEND_LOGS,
        values: [
          requestId,
          logs.length,
          logs.map((l) => pgText(l.message)),
          logs.map((l) => l.level),
          logs.map((l) => l.source),
          logs.map((l) => l.timestamp),
        ],
      });
    },

    async getLogs(requestId, after = 0) {
      const found = await rows<LogRow>(
        "SELECT message, level, source, timestamp FROM request_logs WHERE request_id = $1 AND idx >= $2 ORDER BY idx",
        [requestId, Math.max(0, Math.trunc(after))],
        "darkroom_get_logs",
      );
      return found.map(toRequestLog);
    },

    async saveRemoteApp(app) {
      await pool.query(
        `INSERT INTO remote_apps (id, manifest, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET manifest = EXCLUDED.manifest, updated_at = EXCLUDED.updated_at`,
        [app.id, app.manifest, app.updatedAt],
      );
    },

    async listRemoteApps() {
      return (await rows<RemoteAppRow>("SELECT * FROM remote_apps ORDER BY id", [])).map(toRemoteAppRecord);
    },

    async createKey(key) {
      cappedClaims.changed();
      await pool.query(
        `INSERT INTO api_keys (id, secret_hash, name, scope, created_at, revoked_at, last_used_at, tenant, limits)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [key.id, key.secretHash, key.name, key.scope, key.createdAt, key.revokedAt, key.lastUsedAt, key.tenant, JSON.stringify(key.limits)],
      );
    },

    async getKey(id) {
      const [row] = await rows<ApiKeyRow>("SELECT * FROM api_keys WHERE id = $1", [id], "darkroom_get_key");
      return row ? toApiKeyRecord(row) : null;
    },

    async listKeys() {
      return (await rows<ApiKeyRow>("SELECT * FROM api_keys ORDER BY created_at, id", [])).map(toApiKeyRecord);
    },

    async revokeKey(id, now = Date.now()) {
      // A second revoke keeps the first revocation time: that is when the key stopped working.
      const result = await pool.query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1", [id, now]);
      return (result.rowCount ?? 0) > 0;
    },

    async touchKey(id, now) {
      await pool.query({ name: "darkroom_touch_key", text: "UPDATE api_keys SET last_used_at = $2 WHERE id = $1", values: [id, now] });
    },

    async updateKey(id, patch) {
      if (patch.limits) cappedClaims.changed();
      const result = await pool.query(
        `UPDATE api_keys SET
           secret_hash = COALESCE($2, secret_hash),
           scope = COALESCE($3, scope),
           name = COALESCE($4, name),
           revoked_at = CASE WHEN $5 THEN $6::bigint ELSE revoked_at END,
           tenant = CASE WHEN $7 THEN $8::text ELSE tenant END,
           limits = COALESCE($9, limits)
         WHERE id = $1`,
        [
          id,
          patch.secretHash ?? null,
          patch.scope ?? null,
          patch.name ?? null,
          "revokedAt" in patch,
          patch.revokedAt ?? null,
          "tenant" in patch,
          patch.tenant ?? null,
          patch.limits ? JSON.stringify(patch.limits) : null,
        ],
      );
      return (result.rowCount ?? 0) > 0;
    },

    async getTenant(name) {
      const [row] = await rows<TenantRow>("SELECT * FROM tenants WHERE name = $1", [name], "darkroom_get_tenant");
      return row ? toTenantRecord(row) : null;
    },

    async listTenants() {
      return (await rows<TenantRow>("SELECT * FROM tenants ORDER BY name", [])).map(toTenantRecord);
    },

    async putTenant(settings, now = Date.now()) {
      cappedClaims.changed();
      const [row] = await rows<TenantRow>(
        `INSERT INTO tenants (name, weight, limits, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (name) DO UPDATE SET weight = EXCLUDED.weight, limits = EXCLUDED.limits, updated_at = EXCLUDED.updated_at
         RETURNING *`,
        [settings.name, settings.weight, JSON.stringify(settings.limits), now],
      );
      if (!row) throw new Error(`Writing tenant ${settings.name} returned no row`);
      return toTenantRecord(row);
    },

    async recordUsage(usage) {
      await pool.query(UPSERT_USAGE, [
        usage.requestId,
        usage.keyId,
        usage.appId,
        usage.endpoint,
        usage.state,
        usage.queueMs,
        usage.runMs,
        usage.billableUnits,
        usage.finishedAt,
        usage.tenant,
        usage.cache ?? null,
      ]);
    },

    async listUsage(filter: UsageFilter) {
      const where: string[] = [];
      const values: unknown[] = [];
      if (filter.appId !== undefined) where.push(`app_id = $${values.push(filter.appId)}`);
      if (filter.keyId !== undefined) where.push(`key_id = $${values.push(filter.keyId)}`);
      if (filter.tenant !== undefined) where.push(`tenant = $${values.push(filter.tenant)}`);
      if (filter.since !== undefined) where.push(`finished_at >= $${values.push(filter.since)}`);
      if (filter.until !== undefined) where.push(`finished_at < $${values.push(filter.until)}`);
      const limit = `$${values.push(usageListLimit(filter.limit))}`;
      const found = await rows<UsageRow>(
        `SELECT * FROM usage ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY finished_at DESC, request_id LIMIT ${limit}`,
        values,
      );
      return found.map(toUsageRecord);
    },

    ...createStorageEntries(pool),
    ...createIdempotencyKeys(pool),
    ...createResultKeys(pool),
    ...createRunners(pool),
    ...createWorkflows(pool),
    ...createWebhookOutbox(pool),
    ...createPrices(pool),
  };
}
