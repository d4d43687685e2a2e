/**
 * The embedded store driver on SQLite (better-sqlite3). better-sqlite3 is synchronous; the methods are
 * still async because the {@link Store} interface is shaped for drivers that talk to a server.
 *
 * Within one process every call runs to completion before the next starts, so claims cannot
 * interleave. Transactions that read then write use BEGIN IMMEDIATE so that they stay correct when
 * another process has the same file open: the write lock is taken before the read, so no other writer
 * can slip in between.
 * @module
 */
import type { RequestLog, RequestState } from "../../core/types.js";
import { requestListLimit, usageListLimit } from "../limits.js";
import { createMemoryBus } from "../memory-bus.js";
import {
  CANCELLED_BY_CLIENT,
  newRequestColumns,
  sortInClaimOrder,
  terminalColumns,
  toApiKeyRecord,
  toJsonColumn,
  toRemoteAppRecord,
  toRequestLog,
  toRequestRecord,
  toTenantRecord,
  toUsageRecord,
  usageOfRequest,
  type ApiKeyRow,
  type LogRow,
  type NewRequestColumns,
  type RemoteAppRow,
  type RequestRow,
  type TenantRow,
  type TerminalColumns,
  type UsageRow,
} from "../rows.js";
import type { ApiKeyRecord, CancelResult, ClaimFor, NewRequest, RequestListFilter, ReusedSubmit, Store, TerminalWrite, UsageFilter, UsageRecord } from "../store.js";
import { createCappedClaims, type CappedClaim } from "./capped-claims.js";
import { FairTags } from "./fair-tags.js";
import { LiveCounts } from "./live-counts.js";
import { startCheckpointer } from "./checkpointer.js";
import { openDatabase } from "./database.js";
import { GroupCommit } from "./group-commit.js";
import { createPrices } from "./prices.js";
import { migrate } from "./schema.js";
import { createStorageEntries } from "./storage-entries.js";
import { createIdempotencyKeys } from "./idempotency-keys.js";
import { createWorkflows } from "./workflows.js";
import { createResultKeys } from "./result-keys.js";
import { createRunners } from "./runners.js";
import { createWebhookOutbox } from "./webhooks.js";

export interface SqliteStoreOptions {
  /** Database file, or ":memory:". */
  path: string;
}

/** How many requests behind a queued one are counted before counting those ahead instead. */
const TAIL_SCAN_LIMIT = 64;

/** What places a queued request in its app's claim order. */
type PositionKey = Pick<RequestRow, "app_id" | "state" | "priority_rank" | "fair_tag" | "created_at" | "seq">;

// --- statement parameters ---

interface GuardedTerminalParams extends TerminalColumns {
  owner: string;
  attempt: number;
}

interface RequestListParams {
  appId: string | null;
  state: RequestState | null;
  keyId: string | null;
  before: number | null;
  limit: number;
}

interface UsageListParams {
  appId: string | null;
  keyId: string | null;
  tenant: string | null;
  since: number | null;
  until: number | null;
  limit: number;
}

export function createSqliteStore(options: SqliteStoreOptions): Store {
  const db = openDatabase(options.path);
  // The schema is brought up to date on open, not only in migrate(), because the statements below
  // are prepared once here and preparing needs the tables to exist.
  migrate(db);
  const writes = new GroupCommit(db);
  const live = new LiveCounts(db, (undo) => writes.onRollback(undo));
  const cappedClaims = createCappedClaims(db, (owner) => live.count(owner, "RUNNING"));
  const checkpointer = options.path === ":memory:" ? null : startCheckpointer(options.path);

  const fairTags = new FairTags(db, (tenant) => live.count({ tenant }, "QUEUED"));
  const insertRequestRow = db.prepare<NewRequestColumns & { fairTag: number }, RequestRow>(`
    INSERT INTO requests (id, app_id, endpoint, input, state, priority, priority_rank, mode, created_at, start_deadline,
                          attempt, max_attempts, webhook_url, key_id, tenant, fair_tag, base_url, output_ttl_seconds)
    VALUES (@id, @appId, @endpoint, @input, 'QUEUED', @priority, CASE @priority WHEN 'normal' THEN 0 ELSE 1 END, @mode,
            @createdAt, @startDeadline, 1, @maxAttempts, @webhookUrl, @keyId, @tenant, @fairTag, @baseUrl, @outputTtlSeconds)
    RETURNING *`);
  /** Tags (fair-tags.ts) and inserts a queued request; runs inside the caller's write transaction. */
  const insertRequest = (columns: NewRequestColumns): { row: RequestRow; atTail: boolean } => {
    const { tag, atTail } = fairTags.next(columns.appId, columns.priority === "normal" ? 0 : 1, columns.tenant, columns.stride);
    const row = insertRequestRow.get({ ...columns, fairTag: tag });
    if (!row) throw new Error(`Enqueue of request ${columns.id} returned no row`);
    live.moved(row, null, "QUEUED");
    return { row, atTail };
  };
  const selectRequest = db.prepare<[string], RequestRow>(`SELECT * FROM requests WHERE id = ?`);
  const selectState = db.prepare<[string], { state: RequestState }>(`SELECT state FROM requests WHERE id = ?`);
  /** Claimed rows (each was queued) move their queues' clocks and their owners' counts. */
  const claimed = (rows: readonly RequestRow[]): void => {
    fairTags.claimed(rows);
    for (const row of rows) live.moved(row, "QUEUED", "RUNNING");
  };
  /** A finished row leaves the live counts from the state it had. */
  const finished = (row: RequestRow | undefined, from: RequestState | undefined): RequestRow | undefined => {
    if (row && (from === "QUEUED" || from === "RUNNING")) live.moved(row, from, null);
    return row;
  };
  /** A row put back in the queue (a retry, a released claim) was running. */
  const requeued = (row: RequestRow | undefined): RequestRow | undefined => {
    if (row) live.moved(row, "RUNNING", "QUEUED");
    return row;
  };
  const listRequests = db.prepare<RequestListParams, RequestRow>(`
    SELECT * FROM requests
    WHERE (@appId IS NULL OR app_id = @appId)
      AND (@state IS NULL OR state = @state)
      AND (@keyId IS NULL OR key_id = @keyId)
      AND (@before IS NULL OR created_at < @before)
    ORDER BY created_at DESC, seq DESC
    LIMIT @limit`);
  // One statement picks and takes the request, so there is no window between choosing and claiming: a
  // writing statement takes the write lock before it reads, so it is its own immediate transaction.
  // started_at is overwritten on every claim: it is the start of the latest attempt, which is what
  // run time is measured from; created_at keeps the original submission time.
  const claimNext = db.prepare<{ appId: string; owner: string; now: number; leaseExpiresAt: number }, RequestRow>(`
    UPDATE requests
    SET state = 'RUNNING', lease_owner = @owner, lease_expires_at = @leaseExpiresAt, started_at = @now
    WHERE seq = (
      SELECT seq FROM requests
      WHERE app_id = @appId AND state = 'QUEUED' AND (start_deadline IS NULL OR start_deadline >= @now)
      ORDER BY priority_rank, fair_tag, created_at, seq
      LIMIT 1
    )
    RETURNING *`);
  const claimBatch = db.prepare<{ appId: string; owner: string; now: number; leaseExpiresAt: number; limit: number }, RequestRow>(`
    UPDATE requests
    SET state = 'RUNNING', lease_owner = @owner, lease_expires_at = @leaseExpiresAt, started_at = @now
    WHERE seq IN (
      SELECT seq FROM requests
      WHERE app_id = @appId AND state = 'QUEUED' AND (start_deadline IS NULL OR start_deadline >= @now)
      ORDER BY priority_rank, fair_tag, created_at, seq
      LIMIT @limit
    )
    RETURNING *`);
  // Filtered claims (isolated retries, see ClaimFilter), with the lists as JSON arrays. One that names
  // the requests to take looks them up by id instead of walking the queue.
  const claimOnly = db.prepare<{ appId: string; owner: string; now: number; leaseExpiresAt: number; limit: number; only: string; except: string }, RequestRow>(`
    UPDATE requests
    SET state = 'RUNNING', lease_owner = @owner, lease_expires_at = @leaseExpiresAt, started_at = @now
    WHERE seq IN (
      SELECT r.seq FROM json_each(@only) AS named CROSS JOIN requests AS r ON r.id = named.value
      WHERE r.id NOT IN (SELECT value FROM json_each(@except))
        AND r.app_id = @appId AND r.state = 'QUEUED' AND (r.start_deadline IS NULL OR r.start_deadline >= @now)
      ORDER BY r.priority_rank, r.fair_tag, r.created_at, r.seq
      LIMIT @limit
    )
    RETURNING *`);
  const claimExcept = db.prepare<{ appId: string; owner: string; now: number; leaseExpiresAt: number; limit: number; except: string }, RequestRow>(`
    UPDATE requests
    SET state = 'RUNNING', lease_owner = @owner, lease_expires_at = @leaseExpiresAt, started_at = @now
    WHERE seq IN (
      SELECT seq FROM requests
      WHERE app_id = @appId AND state = 'QUEUED' AND (start_deadline IS NULL OR start_deadline >= @now)
        AND id NOT IN (SELECT value FROM json_each(@except))
      ORDER BY priority_rank, fair_tag, created_at, seq
      LIMIT @limit
    )
    RETURNING *`);
  const extendLease = db.prepare<{ id: string; owner: string; leaseExpiresAt: number }>(`
    UPDATE requests SET lease_expires_at = @leaseExpiresAt
    WHERE id = @id AND state = 'RUNNING' AND lease_owner = @owner`);
  // lease_owner is kept on terminal records (who ran it last); only the lease time is cleared.
  const finishGuarded = db.prepare<GuardedTerminalParams, RequestRow>(`
    UPDATE requests
    SET state = @state, output = @output, status_code = @statusCode, error = @error, error_type = @errorType,
        billable_units = @billableUnits, finished_at = @finishedAt, lease_expires_at = NULL
    WHERE id = @id AND state = 'RUNNING' AND lease_owner = @owner AND attempt = @attempt
    RETURNING *`);
  const finishUnguarded = db.prepare<TerminalColumns, RequestRow>(`
    UPDATE requests
    SET state = @state, output = @output, status_code = @statusCode, error = @error, error_type = @errorType,
        billable_units = @billableUnits, finished_at = @finishedAt, lease_expires_at = NULL
    WHERE id = @id AND state IN ('QUEUED', 'RUNNING')
    RETURNING *`);
  // created_at is left alone so that the request keeps its place in the queue.
  const putBackInQueue = db.prepare<[string], RequestRow>(`
    UPDATE requests SET state = 'QUEUED', attempt = attempt + 1, lease_owner = NULL, lease_expires_at = NULL,
                        cache = NULL, reused_from = NULL
    WHERE id = ? AND state = 'RUNNING'
    RETURNING *`);
  const releaseClaim = db.prepare<[string, string, number], RequestRow>(`
    UPDATE requests SET state = 'QUEUED', lease_owner = NULL, lease_expires_at = NULL, cache = NULL, reused_from = NULL
    WHERE id = ? AND state = 'RUNNING' AND lease_owner = ? AND attempt = ?
    RETURNING *`);
  const requestCancel = db.prepare<[string], RequestRow>(`
    UPDATE requests SET cancel_requested = 1 WHERE id = ? AND state = 'RUNNING' RETURNING *`);
  // NULL position when the request exists but is not queued; no row when it does not exist.
  const selectQueueDepths = db.prepare<[], { app_id: string; depth: number }>(`
    SELECT app_id, SUM(queued) AS depth FROM queue_counts GROUP BY app_id HAVING SUM(queued) > 0`);
  const selectPositionOf = db.prepare<[string], PositionKey>(
    `SELECT app_id, state, priority_rank, fair_tag, created_at, seq FROM requests WHERE id = ?`,
  );
  const selectQueueCounts = db.prepare<[string], { priority_rank: number; queued: number }>(
    `SELECT priority_rank, queued FROM queue_counts WHERE app_id = ?`,
  );
  const countSameRankBehind = db.prepare<[string, number, number, number, number, number], { n: number }>(`
    SELECT COUNT(*) AS n FROM (
      SELECT 1 FROM requests
      WHERE app_id = ? AND state = 'QUEUED' AND priority_rank = ? AND (fair_tag, created_at, seq) > (?, ?, ?)
      LIMIT ?
    )`);
  const countSameRankAhead = db.prepare<[string, number, number, number, number], { n: number }>(`
    SELECT COUNT(*) AS n FROM requests
    WHERE app_id = ? AND state = 'QUEUED' AND priority_rank = ? AND (fair_tag, created_at, seq) < (?, ?, ?)`);
  /**
   * Position = queued requests of lower rank (from the counters) + those of the same rank ahead.
   * The same-rank part is counted from whichever end is cheap: a request near the tail (every new
   * submit) counts the few behind it and subtracts from the counter; otherwise those ahead are counted.
   */
  const positionOf = (me: PositionKey): number => {
    let lower = 0;
    let sameRank = 0;
    for (const c of selectQueueCounts.all(me.app_id)) {
      if (c.priority_rank < me.priority_rank) lower += c.queued;
      else if (c.priority_rank === me.priority_rank) sameRank = c.queued;
    }
    const behind = countSameRankBehind.get(me.app_id, me.priority_rank, me.fair_tag, me.created_at, me.seq, TAIL_SCAN_LIMIT)?.n ?? 0;
    if (behind < TAIL_SCAN_LIMIT) return lower + sameRank - 1 - behind;
    return lower + (countSameRankAhead.get(me.app_id, me.priority_rank, me.fair_tag, me.created_at, me.seq)?.n ?? 0);
  };
  const queuePositionTransaction = db.transaction((id: string): number | null => {
    const me = selectPositionOf.get(id);
    return me && me.state === "QUEUED" ? positionOf(me) : null;
  });
  /** A claim inside a write: the plain statements, or the counting walk once a concurrency limit is set. */
  const claimRows = (params: CappedClaim): RequestRow[] => {
    const { filter, ...plain } = params;
    let rows: RequestRow[];
    if (cappedClaims.active()) rows = cappedClaims.claim(params);
    else if (filter?.only) rows = claimOnly.all({ ...plain, only: JSON.stringify(filter.only), except: JSON.stringify(filter.except ?? []) });
    else if (filter?.except && filter.except.length > 0) rows = claimExcept.all({ ...plain, except: JSON.stringify(filter.except) });
    else rows = claimBatch.all(plain);
    claimed(rows);
    return rows;
  };
  /**
   * Insert, optional claim and queue position in one write. A new request tagged behind every queued
   * one of its rank (a busy tenant's next) has its position from the queue counters alone; one that
   * fair share puts ahead of older ones (a quiet tenant's) is counted like any other (positionOf).
   */
  const submitTransaction = (req: NewRequest, claim: ClaimFor | null, now: number): { row: RequestRow; claimed: RequestRow[]; queuePosition: number | null } => {
    const { row, atTail } = insertRequest(newRequestColumns(req, now));
    const claimed = claim && claim.limit > 0 ? claimRows({ appId: req.appId, owner: claim.owner, now, leaseExpiresAt: now + claim.leaseMs, limit: Math.trunc(claim.limit) }) : [];
    const mine = claimed.find((r) => r.id === row.id);
    if (mine) return { row: mine, claimed, queuePosition: null };
    if (!atTail) return { row, claimed, queuePosition: positionOf(row) };
    let position = -1;
    for (const c of selectQueueCounts.all(req.appId)) if (c.priority_rank <= row.priority_rank) position += c.queued;
    return { row, claimed, queuePosition: Math.max(0, position) };
  };
  // A reused result (src/reuse/): a HIT finishes with its source's result at once, a JOINED one runs
  // under the joining gateway's lease until its leader ends. Neither ran anything, so started_at is
  // its creation (no queue time) and its usage has no run time.
  const insertHit = db.prepare<NewRequestColumns & { source: string; output: string | null; statusCode: number | null; billableUnits: number | null }, RequestRow>(`
    INSERT INTO requests (id, app_id, endpoint, input, state, priority, priority_rank, mode, created_at, start_deadline,
                          attempt, max_attempts, webhook_url, key_id, tenant, fair_tag, base_url, output_ttl_seconds,
                          started_at, finished_at, output, status_code, billable_units, cache, reused_from)
    VALUES (@id, @appId, @endpoint, @input, 'SUCCEEDED', @priority, CASE @priority WHEN 'normal' THEN 0 ELSE 1 END, @mode,
            @createdAt, @startDeadline, 1, @maxAttempts, @webhookUrl, @keyId, @tenant, 0, @baseUrl, @outputTtlSeconds,
            @createdAt, @createdAt, @output, @statusCode, @billableUnits, 'HIT', @source)
    RETURNING *`);
  const holdJoined = db.prepare<{ id: string; now: number; leader: string; owner: string; leaseExpiresAt: number }, RequestRow>(`
    UPDATE requests SET state = 'RUNNING', started_at = @now, lease_owner = @owner, lease_expires_at = @leaseExpiresAt,
                        cache = 'JOINED', reused_from = @leader
    WHERE id = @id
    RETURNING *`);
  const submitReusedTransaction = (req: NewRequest, reuse: ReusedSubmit, now: number): RequestRow => {
    const columns = newRequestColumns(req, now);
    if (reuse.kind === "hit") {
      // Never queued, so no fair-share tag (a hit does not use its tenant's turn) and never live.
      const row = withUsage(insertHit.get({ ...columns, source: reuse.source.id, output: toJsonColumn(reuse.source.output), statusCode: reuse.source.statusCode, billableUnits: reuse.source.billableUnits }));
      if (!row) throw new Error(`Insert of request ${req.id} returned no row`);
      return row;
    }
    // Tagged as any queued request: should its leader be cancelled it goes back to the queue (requeue).
    const { row: queued } = insertRequest(columns);
    const row = holdJoined.get({ id: req.id, now, leader: reuse.leaderId, owner: reuse.owner, leaseExpiresAt: reuse.leaseExpiresAt });
    if (!row) throw new Error(`Request ${req.id} vanished while being written`);
    live.moved(queued, "QUEUED", "RUNNING");
    return row;
  };
  const selectExpiredLeases = db.prepare<[number], RequestRow>(`
    SELECT * FROM requests WHERE state = 'RUNNING' AND lease_expires_at < ? ORDER BY lease_expires_at, seq`);
  // INDEXED BY: without statistics the planner would scan the whole table for the few running rows.
  const selectRunning = db.prepare<[], RequestRow>(`SELECT * FROM requests INDEXED BY requests_running_lease WHERE state = 'RUNNING' ORDER BY seq`);
  const selectExpiredStartDeadlines = db.prepare<[number], RequestRow>(`
    SELECT * FROM requests
    WHERE state = 'QUEUED' AND start_deadline IS NOT NULL AND start_deadline < ?
    ORDER BY start_deadline, seq`);

  const selectLogCount = db.prepare<[string], { count: number }>(
    `SELECT COUNT(*) AS count FROM request_logs WHERE request_id = ?`,
  );
  const insertLog = db.prepare<[string, number, string, string, string, string]>(`
    INSERT INTO request_logs (request_id, idx, message, level, source, timestamp) VALUES (?, ?, ?, ?, ?, ?)`);
  const selectLogs = db.prepare<[string, number], LogRow>(`
    SELECT message, level, source, timestamp FROM request_logs WHERE request_id = ? AND idx >= ? ORDER BY idx`);

  const insertKey = db.prepare<Omit<ApiKeyRecord, "limits"> & { limits: string }>(`
    INSERT INTO api_keys (id, secret_hash, name, scope, created_at, revoked_at, last_used_at, tenant, limits)
    VALUES (@id, @secretHash, @name, @scope, @createdAt, @revokedAt, @lastUsedAt, @tenant, @limits)`);
  const selectTenant = db.prepare<[string], TenantRow>(`SELECT * FROM tenants WHERE name = ?`);
  const selectTenants = db.prepare<[], TenantRow>(`SELECT * FROM tenants ORDER BY name`);
  const upsertTenant = db.prepare<{ name: string; weight: number; limits: string; now: number }, TenantRow>(`
    INSERT INTO tenants (name, weight, limits, created_at, updated_at) VALUES (@name, @weight, @limits, @now, @now)
    ON CONFLICT (name) DO UPDATE SET weight = excluded.weight, limits = excluded.limits, updated_at = excluded.updated_at
    RETURNING *`);
  const selectKey = db.prepare<[string], ApiKeyRow>(`SELECT * FROM api_keys WHERE id = ?`);
  const selectKeys = db.prepare<[], ApiKeyRow>(`SELECT * FROM api_keys ORDER BY created_at, id`);
  const upsertRemoteApp = db.prepare<[string, string, number]>(
    `INSERT INTO remote_apps (id, manifest, updated_at) VALUES (?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET manifest = excluded.manifest, updated_at = excluded.updated_at`,
  );
  const selectRemoteApps = db.prepare<[], RemoteAppRow>(`SELECT * FROM remote_apps ORDER BY id`);
  // A second revoke keeps the first revocation time: that is when the key stopped working.
  const revokeKeyById = db.prepare<[number, string]>(
    `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`,
  );
  const touchKeyById = db.prepare<[number, string]>(`UPDATE api_keys SET last_used_at = ? WHERE id = ?`);
  const updateKeyById = db.prepare<{
    id: string;
    secretHash: string | null;
    scope: string | null;
    name: string | null;
    setRevoked: number;
    revokedAt: number | null;
    setTenant: number;
    tenant: string | null;
    limits: string | null;
  }>(`
    UPDATE api_keys SET
      secret_hash = COALESCE(@secretHash, secret_hash),
      scope = COALESCE(@scope, scope),
      name = COALESCE(@name, name),
      revoked_at = CASE WHEN @setRevoked = 1 THEN @revokedAt ELSE revoked_at END,
      tenant = CASE WHEN @setTenant = 1 THEN @tenant ELSE tenant END,
      limits = COALESCE(@limits, limits)
    WHERE id = @id`);

  const upsertUsage = db.prepare<UsageRecord>(`
    INSERT OR REPLACE INTO usage (request_id, key_id, tenant, app_id, endpoint, state, queue_ms, run_ms, billable_units, finished_at, cache)
    VALUES (@requestId, @keyId, @tenant, @appId, @endpoint, @state, @queueMs, @runMs, @billableUnits, @finishedAt, @cache)`);
  const selectUsage = db.prepare<UsageListParams, UsageRow>(`
    SELECT * FROM usage
    WHERE (@appId IS NULL OR app_id = @appId)
      AND (@keyId IS NULL OR key_id = @keyId)
      AND (@tenant IS NULL OR tenant = @tenant)
      AND (@since IS NULL OR finished_at >= @since)
      AND (@until IS NULL OR finished_at < @until)
    ORDER BY finished_at DESC, request_id
    LIMIT @limit`);

  /**
   * Every terminal write records the request's usage in the same transaction, so metering sees each
   * finished request exactly once, whatever crashes in between.
   */
  const withUsage = (row: RequestRow | undefined): RequestRow | undefined => {
    const usage = row ? usageOfRequest(row) : null;
    if (usage) upsertUsage.run(usage);
    return row;
  };

  // --- read-then-write transactions (run with .immediate(), see the module comment) ---

  const requeueTransaction = db.transaction(
    (id: string, guard: { owner: string; attempt: number } | null, exhausted: TerminalWrite): RequestRow | undefined => {
      const row = selectRequest.get(id);
      if (!row || row.state !== "RUNNING") return undefined;
      if (guard && (row.lease_owner !== guard.owner || row.attempt !== guard.attempt)) return undefined;
      if (row.attempt >= row.max_attempts) return withUsage(finished(finishUnguarded.get(terminalColumns(id, exhausted, Date.now())), "RUNNING"));
      return requeued(putBackInQueue.get(id));
    },
  );

  const cancelTransaction = db.transaction((id: string): CancelResult => {
    const row = selectRequest.get(id);
    if (!row) return { kind: "not_found" };
    if (row.state === "QUEUED") {
      const cancelled = withUsage(finished(finishUnguarded.get(terminalColumns(id, CANCELLED_BY_CLIENT, Date.now())), "QUEUED"));
      if (cancelled) return { kind: "removed", record: toRequestRecord(cancelled) };
    } else if (row.state === "RUNNING") {
      const signalled = requestCancel.get(id);
      if (signalled) return { kind: "signalled", record: toRequestRecord(signalled) };
    }
    return { kind: "already_completed", record: toRequestRecord(row) };
  });

  // Indexes continue from the count already stored, so concurrent appenders cannot interleave inside
  // one batch and a batch lands contiguously.
  const appendLogsTransaction = db.transaction((requestId: string, logs: RequestLog[]): void => {
    let next = selectLogCount.get(requestId)?.count ?? 0;
    for (const log of logs) {
      insertLog.run(requestId, next, log.message, log.level, log.source, log.timestamp);
      next += 1;
    }
  });

  const storage = createStorageEntries(db, writes);
  const idempotencyKeys = createIdempotencyKeys(db, writes);
  const workflows = createWorkflows(db, writes);
  const webhooks = createWebhookOutbox(db);

  return {
    name: "sqlite",
    bus: createMemoryBus(),

    async migrate() {
      migrate(db);
    },

    async close() {
      writes.flush();
      await checkpointer?.stop();
      // Leave a compact file behind: fold the whole WAL into the database.
      if (options.path !== ":memory:") db.pragma("wal_checkpoint(TRUNCATE)");
      db.close();
    },

    async enqueue(req: NewRequest) {
      const { row } = await writes.run(() => insertRequest(newRequestColumns(req, Date.now())));
      return toRequestRecord(row);
    },

    async submit(req, claim) {
      const now = Date.now();
      const result = await writes.run(() => submitTransaction(req, claim, now));
      return {
        record: toRequestRecord(result.row),
        queuePosition: result.queuePosition,
        claimed: sortInClaimOrder(result.claimed).map(toRequestRecord),
      };
    },

    async submitReused(req, reuse) {
      const now = Date.now();
      return toRequestRecord(await writes.run(() => submitReusedTransaction(req, reuse, now)));
    },

    async get(id) {
      const row = selectRequest.get(id);
      return row ? toRequestRecord(row) : null;
    },

    async list(filter: RequestListFilter) {
      return listRequests
        .all({
          appId: filter.appId ?? null,
          state: filter.state ?? null,
          keyId: filter.keyId ?? null,
          before: filter.before ?? null,
          limit: requestListLimit(filter.limit),
        })
        .map(toRequestRecord);
    },

    async claim(appId, owner, leaseMs, now = Date.now()) {
      const row = await writes.run(() => {
        const row = cappedClaims.active() ? cappedClaims.claim({ appId, owner, now, leaseExpiresAt: now + leaseMs, limit: 1 })[0] : claimNext.get({ appId, owner, now, leaseExpiresAt: now + leaseMs });
        if (row) claimed([row]);
        return row;
      });
      return row ? toRequestRecord(row) : null;
    },

    async claimMany(appId, owner, leaseMs, limit, now = Date.now(), filter) {
      if (limit <= 0 || filter?.only?.length === 0) return [];
      const rows = await writes.run(() => claimRows({ appId, owner, now, leaseExpiresAt: now + leaseMs, limit: Math.trunc(limit), filter }));
      return sortInClaimOrder(rows).map(toRequestRecord);
    },

    async heartbeat(id, owner, leaseMs, now = Date.now()) {
      return (await writes.run(() => extendLease.run({ id, owner, leaseExpiresAt: now + leaseMs }))).changes > 0;
    },

    async finish(id, write, guard) {
      const params = terminalColumns(id, write, Date.now());
      const row = await writes.run(() => {
        if (guard) return withUsage(finished(finishGuarded.get({ ...params, owner: guard.owner, attempt: guard.attempt }), "RUNNING"));
        const from = selectState.get(id)?.state; // read before the write changes it
        return withUsage(finished(finishUnguarded.get(params), from));
      });
      return row ? toRequestRecord(row) : null;
    },

    async requeue(id, guard, exhausted) {
      const row = await writes.run(() => requeueTransaction(id, guard, exhausted));
      return row ? toRequestRecord(row) : null;
    },

    async release(id, guard) {
      const row = await writes.run(() => requeued(releaseClaim.get(id, guard.owner, guard.attempt)));
      return row ? toRequestRecord(row) : null;
    },

    async cancel(id) {
      return writes.run(() => cancelTransaction(id));
    },

    async queuePosition(id) {
      return queuePositionTransaction(id);
    },

    async queueDepths() {
      return new Map(selectQueueDepths.all().map((row) => [row.app_id, row.depth]));
    },

    async countLive(owner, state, atMost) {
      return Math.min(live.count(owner, state), Math.max(0, Math.trunc(atMost)));
    },

    async expiredLeases(now) {
      return selectExpiredLeases.all(now).map(toRequestRecord);
    },

    async running() {
      return selectRunning.all().map(toRequestRecord);
    },

    async expiredStartDeadlines(now) {
      return selectExpiredStartDeadlines.all(now).map(toRequestRecord);
    },

    async appendLogs(requestId, logs) {
      if (logs.length === 0) return;
      await writes.run(() => appendLogsTransaction(requestId, logs));
    },

    async getLogs(requestId, after = 0) {
      return selectLogs.all(requestId, Math.max(0, Math.trunc(after))).map(toRequestLog);
    },

    async saveRemoteApp(app) {
      upsertRemoteApp.run(app.id, app.manifest, app.updatedAt);
    },

    async listRemoteApps() {
      return selectRemoteApps.all().map(toRemoteAppRecord);
    },

    async createKey(key) {
      insertKey.run({ ...key, limits: JSON.stringify(key.limits) });
      cappedClaims.limitsChanged();
    },

    async getKey(id) {
      const row = selectKey.get(id);
      return row ? toApiKeyRecord(row) : null;
    },

    async listKeys() {
      return selectKeys.all().map(toApiKeyRecord);
    },

    async revokeKey(id, now = Date.now()) {
      return revokeKeyById.run(now, id).changes > 0;
    },

    async updateKey(id, patch) {
      cappedClaims.limitsChanged();
      return (
        updateKeyById.run({
          id,
          secretHash: patch.secretHash ?? null,
          scope: patch.scope ?? null,
          name: patch.name ?? null,
          setRevoked: "revokedAt" in patch ? 1 : 0,
          revokedAt: patch.revokedAt ?? null,
          setTenant: "tenant" in patch ? 1 : 0,
          tenant: patch.tenant ?? null,
          limits: patch.limits ? JSON.stringify(patch.limits) : null,
        }).changes > 0
      );
    },

    async getTenant(name) {
      const row = selectTenant.get(name);
      return row ? toTenantRecord(row) : null;
    },

    async listTenants() {
      return selectTenants.all().map(toTenantRecord);
    },

    async putTenant(settings, now = Date.now()) {
      const row = await writes.run(() => upsertTenant.get({ name: settings.name, weight: settings.weight, limits: JSON.stringify(settings.limits), now }));
      cappedClaims.limitsChanged();
      if (!row) throw new Error(`Writing tenant ${settings.name} returned no row`);
      return toTenantRecord(row);
    },

    async touchKey(id, now) {
      touchKeyById.run(now, id);
    },

    async recordUsage(usage) {
      await writes.run(() => upsertUsage.run({ ...usage, cache: usage.cache ?? null }));
    },

    async listUsage(filter: UsageFilter) {
      return selectUsage
        .all({
          appId: filter.appId ?? null,
          keyId: filter.keyId ?? null,
          tenant: filter.tenant ?? null,
          since: filter.since ?? null,
          until: filter.until ?? null,
          limit: usageListLimit(filter.limit),
        })
        .map(toUsageRecord);
    },

    ...storage,
    ...idempotencyKeys,
    ...createResultKeys(db, writes),
    ...createRunners(db, writes),
    ...workflows,
    ...webhooks,
    ...createPrices(db, writes),
  };
}