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
import { chmodSync, closeSync, constants as fsConstants, openSync, statSync } from "node:fs";
import Database from "better-sqlite3";
import { PRIVATE_FILE_MODE } from "../../auth/private-file.js";
import type { Priority, RequestLog, RequestMode, RequestRecord, RequestState } from "../../core/types.js";
import type {
  ApiKeyRecord,
  CancelResult,
  ClaimFor,
  NewRequest,
  RequestListFilter,
  Store,
  TerminalWrite,
  StorageEntry,
  StorageReservation,
  StorageReserveOptions,
  StorageSettlement,
  UsageFilter,
  UsageRecord,
  WebhookAttempt,
  WebhookJob,
} from "../store.js";
import {
  assertStorageBytes,
  decideReservation,
  toApiKeyRecord,
  toJsonColumn,
  toRequestLog,
  toUsageRecord,
  toWebhookJob,
  type ApiKeyRow,
  type LogRow,
  type UsageRow,
  type WebhookRow,
} from "../rows.js";
import { createMemoryBus } from "../memory-bus.js";
import { startCheckpointer } from "./checkpointer.js";
import { GroupCommit } from "./group-commit.js";
import { migrate } from "./schema.js";

export interface SqliteStoreOptions {
  /** Database file, or ":memory:". */
  path: string;
}

const LIST_DEFAULT_LIMIT = 50;
const LIST_MAX_LIMIT = 500;
const USAGE_DEFAULT_LIMIT = 1000;
const USAGE_MAX_LIMIT = 10_000;
/** How long a statement waits for another process's write lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

/** How many requests behind a queued one are counted before counting those ahead instead. */
const TAIL_SCAN_LIMIT = 64;

const CANCELLED_BY_CLIENT: TerminalWrite = {
  state: "CANCELLED",
  // The body fal's clients get from the result endpoint, as for any other request error.
  output: { detail: "Request cancelled by client", error_type: "client_cancelled" },
  statusCode: 499,
  error: "Request cancelled by client",
  errorType: "client_cancelled",
  billableUnits: null,
};

// --- rows as SQLite returns them ---

interface RequestRow {
  seq: number;
  id: string;
  app_id: string;
  endpoint: string;
  input: string;
  state: string;
  priority: string;
  priority_rank: number;
  mode: string;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  start_deadline: number | null;
  attempt: number;
  max_attempts: number;
  lease_owner: string | null;
  lease_expires_at: number | null;
  cancel_requested: number;
  webhook_url: string | null;
  key_id: string | null;
  base_url: string;
  output_ttl_seconds: number | null;
  output: string | null;
  status_code: number | null;
  error: string | null;
  error_type: string | null;
  billable_units: number | null;
}

interface WebhookAttemptRow {
  webhook_id: number;
  request_id: string;
  attempt: number;
  at: number;
  status: number | null;
  ok: number;
  error: string | null;
  duration_ms: number;
}

// --- rows to records (the CHECK constraints in the schema guarantee the enum casts) ---

/**
 * Defines a JSON column as a property parsed on first read. Inputs can be megabytes of data URIs,
 * and most readers (status polls, claims, listings) never look at them.
 */
function lazyJson(target: object, key: "input" | "output", text: string | null): void {
  let parsed = false;
  let value: unknown = null;
  Object.defineProperty(target, key, {
    enumerable: true,
    configurable: true,
    get() {
      if (!parsed) {
        value = text === null ? null : (JSON.parse(text) as unknown);
        parsed = true;
      }
      return value;
    },
    set(next: unknown) {
      value = next;
      parsed = true;
    },
  });
}

function toRequestRecord(row: RequestRow): RequestRecord {
  const record = {
    id: row.id,
    appId: row.app_id,
    endpoint: row.endpoint,
    state: row.state as RequestState,
    priority: row.priority as Priority,
    mode: row.mode as RequestMode,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    startDeadline: row.start_deadline,
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    leaseOwner: row.lease_owner,
    leaseExpiresAt: row.lease_expires_at,
    cancelRequested: row.cancel_requested !== 0,
    webhookUrl: row.webhook_url,
    keyId: row.key_id,
    baseUrl: row.base_url,
    outputTtlSeconds: row.output_ttl_seconds,
    statusCode: row.status_code,
    error: row.error,
    errorType: row.error_type,
    billableUnits: row.billable_units,
  } as RequestRecord;
  lazyJson(record, "input", row.input);
  lazyJson(record, "output", row.output);
  return record;
}

function toWebhookAttempt(row: WebhookAttemptRow): WebhookAttempt {
  return {
    webhookId: row.webhook_id,
    requestId: row.request_id,
    attempt: row.attempt,
    at: row.at,
    status: row.status,
    ok: row.ok !== 0,
    error: row.error,
    durationMs: row.duration_ms,
  };
}

/** JSON for a nullable column: an absent value (null or undefined) is stored as NULL. */

function clampLimit(limit: number | undefined, fallback: number, max: number): number {
  if (limit === undefined || !Number.isFinite(limit)) return fallback;
  return Math.min(Math.max(Math.trunc(limit), 1), max);
}

// --- statement parameters ---

interface InsertRequestParams {
  id: string;
  appId: string;
  endpoint: string;
  input: string;
  priority: Priority;
  mode: RequestMode;
  createdAt: number;
  startDeadline: number | null;
  maxAttempts: number;
  webhookUrl: string | null;
  keyId: string | null;
  baseUrl: string;
  outputTtlSeconds: number | null;
}

interface TerminalParams {
  id: string;
  state: TerminalWrite["state"];
  output: string | null;
  statusCode: number;
  error: string | null;
  errorType: string | null;
  billableUnits: number | null;
  finishedAt: number;
}

interface GuardedTerminalParams extends TerminalParams {
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
  since: number | null;
  until: number | null;
  limit: number;
}

function terminalParams(id: string, write: TerminalWrite, finishedAt: number): TerminalParams {
  return {
    id,
    state: write.state,
    output: toJsonColumn(write.output),
    statusCode: write.statusCode,
    error: write.error,
    errorType: write.errorType,
    billableUnits: write.billableUnits,
    finishedAt,
  };
}

function insertParams(req: NewRequest, createdAt: number): InsertRequestParams {
  return {
    id: req.id,
    appId: req.appId,
    endpoint: req.endpoint,
    // Input is never NULL in the table: an absent input is the JSON `null`.
    input: req.inputJson ?? JSON.stringify(req.input ?? null),
    priority: req.priority,
    mode: req.mode,
    createdAt,
    startDeadline: req.startDeadline,
    maxAttempts: req.maxAttempts,
    webhookUrl: req.webhookUrl,
    keyId: req.keyId,
    baseUrl: req.baseUrl,
    outputTtlSeconds: req.outputTtlSeconds ?? null,
  };
}

/** RETURNING gives no order guarantee: claimed rows are put back in claim order. */
function sortInClaimOrder(rows: RequestRow[]): RequestRow[] {
  return rows.sort((a, b) => a.priority_rank - b.priority_rank || a.created_at - b.created_at || a.seq - b.seq);
}

/**
 * The database holds every request's input and output, API key hashes and webhook URLs, so it is
 * owner-only (0600) like the secrets beside it in the data folder (src/auth/private-file.ts). SQLite
 * creates a new file with 0644 less the umask, but gives the `-wal` and `-shm` files it creates the
 * mode of the database file itself; so the database is created here first, empty (which SQLite takes
 * as a new database) and 0600, and files left wider by an earlier version are tightened. `:memory:`
 * and `""` (a temporary database) have no file to protect.
 */
function makeDatabaseFilePrivate(path: string): void {
  if (path === ":memory:" || path === "" || process.platform === "win32") return;
  try {
    // O_CREAT without O_TRUNC: an existing database is opened and left as it is.
    closeSync(openSync(path, fsConstants.O_RDWR | fsConstants.O_CREAT, PRIVATE_FILE_MODE));
  } catch {
    // A missing folder or a read-only file: better-sqlite3's own open reports it in its terms.
    return;
  }
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    let mode: number;
    try {
      mode = statSync(file).mode & 0o777;
    } catch {
      continue; // no such file yet
    }
    // Catches files an earlier version created wider. One this user cannot chmod (owned by another
    // user) is left alone rather than failing the start.
    if (mode !== PRIVATE_FILE_MODE) {
      try {
        chmodSync(file, PRIVATE_FILE_MODE);
      } catch {
        // see above
      }
    }
  }
}

/**
 * Durability: WAL with `synchronous = NORMAL`. A commit appends the transaction to the WAL file with
 * write(2) before the call returns, so the data is in the operating system's page cache; a crash of
 * this process (even kill -9) cannot lose it, because the kernel still writes those pages out. Only
 * the fsync is deferred to checkpoints, so what NORMAL can lose is the last commits before a power
 * loss or kernel crash, never a committed enqueue when only the process dies. FULL would fsync every
 * commit, which costs a disk flush per enqueue for protection this server does not promise.
 */
function openDatabase(path: string): Database.Database {
  makeDatabaseFilePrivate(path);
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  // Checkpoints run in a worker thread (checkpointer.ts); an in-memory database has no WAL.
  if (path !== ":memory:") db.pragma("wal_autocheckpoint = 0");
  // A fully checkpointed WAL is truncated back to this size rather than left at its peak.
  db.pragma("journal_size_limit = 67108864");
  db.pragma("cache_size = -65536");
  db.pragma("mmap_size = 268435456");
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  db.pragma("foreign_keys = ON");
  return db;
}

export function createSqliteStore(options: SqliteStoreOptions): Store {
  const db = openDatabase(options.path);
  // The schema is brought up to date on open, not only in migrate(), because the statements below
  // are prepared once here and preparing needs the tables to exist.
  migrate(db);
  const writes = new GroupCommit(db);
  const checkpointer = options.path === ":memory:" ? null : startCheckpointer(options.path);

  const insertRequest = db.prepare<InsertRequestParams, RequestRow>(`
    INSERT INTO requests (id, app_id, endpoint, input, state, priority, priority_rank, mode, created_at, start_deadline,
                          attempt, max_attempts, webhook_url, key_id, base_url, output_ttl_seconds)
    VALUES (@id, @appId, @endpoint, @input, 'QUEUED', @priority, CASE @priority WHEN 'normal' THEN 0 ELSE 1 END, @mode,
            @createdAt, @startDeadline, 1, @maxAttempts, @webhookUrl, @keyId, @baseUrl, @outputTtlSeconds)
    RETURNING *`);
  const selectRequest = db.prepare<[string], RequestRow>(`SELECT * FROM requests WHERE id = ?`);
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
      ORDER BY priority_rank, created_at, seq
      LIMIT 1
    )
    RETURNING *`);
  const claimBatch = db.prepare<{ appId: string; owner: string; now: number; leaseExpiresAt: number; limit: number }, RequestRow>(`
    UPDATE requests
    SET state = 'RUNNING', lease_owner = @owner, lease_expires_at = @leaseExpiresAt, started_at = @now
    WHERE seq IN (
      SELECT seq FROM requests
      WHERE app_id = @appId AND state = 'QUEUED' AND (start_deadline IS NULL OR start_deadline >= @now)
      ORDER BY priority_rank, created_at, seq
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
      ORDER BY r.priority_rank, r.created_at, r.seq
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
      ORDER BY priority_rank, created_at, seq
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
  const finishUnguarded = db.prepare<TerminalParams, RequestRow>(`
    UPDATE requests
    SET state = @state, output = @output, status_code = @statusCode, error = @error, error_type = @errorType,
        billable_units = @billableUnits, finished_at = @finishedAt, lease_expires_at = NULL
    WHERE id = @id AND state IN ('QUEUED', 'RUNNING')
    RETURNING *`);
  // created_at is left alone so that the request keeps its place in the queue.
  const putBackInQueue = db.prepare<[string], RequestRow>(`
    UPDATE requests SET state = 'QUEUED', attempt = attempt + 1, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = ? AND state = 'RUNNING'
    RETURNING *`);
  const releaseClaim = db.prepare<[string, string, number], RequestRow>(`
    UPDATE requests SET state = 'QUEUED', lease_owner = NULL, lease_expires_at = NULL
    WHERE id = ? AND state = 'RUNNING' AND lease_owner = ? AND attempt = ?
    RETURNING *`);
  const requestCancel = db.prepare<[string], RequestRow>(`
    UPDATE requests SET cancel_requested = 1 WHERE id = ? AND state = 'RUNNING' RETURNING *`);
  // NULL position when the request exists but is not queued; no row when it does not exist.
  const selectQueueDepths = db.prepare<[], { app_id: string; depth: number }>(`
    SELECT app_id, SUM(queued) AS depth FROM queue_counts GROUP BY app_id HAVING SUM(queued) > 0`);
  const selectPositionOf = db.prepare<[string], { app_id: string; state: string; priority_rank: number; created_at: number; seq: number }>(
    `SELECT app_id, state, priority_rank, created_at, seq FROM requests WHERE id = ?`,
  );
  const selectQueueCounts = db.prepare<[string], { priority_rank: number; queued: number }>(
    `SELECT priority_rank, queued FROM queue_counts WHERE app_id = ?`,
  );
  const countSameRankBehind = db.prepare<[string, number, number, number, number], { n: number }>(`
    SELECT COUNT(*) AS n FROM (
      SELECT 1 FROM requests
      WHERE app_id = ? AND state = 'QUEUED' AND priority_rank = ? AND (created_at, seq) > (?, ?)
      LIMIT ?
    )`);
  const countSameRankAhead = db.prepare<[string, number, number, number], { n: number }>(`
    SELECT COUNT(*) AS n FROM requests
    WHERE app_id = ? AND state = 'QUEUED' AND priority_rank = ? AND (created_at, seq) < (?, ?)`);
  /**
   * Position = queued requests of lower rank (from the counters) + those of the same rank ahead.
   * The same-rank part is counted from whichever end is cheap: a request near the tail (every new
   * submit) counts the few behind it and subtracts from the counter; otherwise those ahead are counted.
   */
  const queuePositionTransaction = db.transaction((id: string): number | null => {
    const me = selectPositionOf.get(id);
    if (!me || me.state !== "QUEUED") return null;
    let lower = 0;
    let sameRank = 0;
    for (const c of selectQueueCounts.all(me.app_id)) {
      if (c.priority_rank < me.priority_rank) lower += c.queued;
      else if (c.priority_rank === me.priority_rank) sameRank = c.queued;
    }
    const behind = countSameRankBehind.get(me.app_id, me.priority_rank, me.created_at, me.seq, TAIL_SCAN_LIMIT)?.n ?? 0;
    if (behind < TAIL_SCAN_LIMIT) return lower + sameRank - 1 - behind;
    return lower + (countSameRankAhead.get(me.app_id, me.priority_rank, me.created_at, me.seq)?.n ?? 0);
  });
  /**
   * Insert, optional claim and queue position in one write. The new request is the newest of its
   * priority (created now, highest seq), so it is last among the queued requests of its rank: its
   * position follows from the queue counters alone, without the index walk of queuePosition.
   */
  const submitTransaction = (req: NewRequest, claim: ClaimFor | null, now: number): { row: RequestRow; claimed: RequestRow[]; queuePosition: number | null } => {
    const row = insertRequest.get(insertParams(req, now));
    if (!row) throw new Error(`Enqueue of request ${req.id} returned no row`);
    const claimed = claim && claim.limit > 0
      ? claimBatch.all({ appId: req.appId, owner: claim.owner, now, leaseExpiresAt: now + claim.leaseMs, limit: Math.trunc(claim.limit) })
      : [];
    const mine = claimed.find((r) => r.id === row.id);
    if (mine) return { row: mine, claimed, queuePosition: null };
    let position = -1;
    for (const c of selectQueueCounts.all(req.appId)) if (c.priority_rank <= row.priority_rank) position += c.queued;
    return { row, claimed, queuePosition: Math.max(0, position) };
  };
  const selectExpiredLeases = db.prepare<[number], RequestRow>(`
    SELECT * FROM requests WHERE state = 'RUNNING' AND lease_expires_at < ? ORDER BY lease_expires_at, seq`);
  const selectRunning = db.prepare<[], RequestRow>(`SELECT * FROM requests WHERE state = 'RUNNING' ORDER BY seq`);
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

  const insertKey = db.prepare<ApiKeyRecord>(`
    INSERT INTO api_keys (id, secret_hash, name, scope, created_at, revoked_at, last_used_at)
    VALUES (@id, @secretHash, @name, @scope, @createdAt, @revokedAt, @lastUsedAt)`);
  const selectKey = db.prepare<[string], ApiKeyRow>(`SELECT * FROM api_keys WHERE id = ?`);
  const selectKeys = db.prepare<[], ApiKeyRow>(`SELECT * FROM api_keys ORDER BY created_at, id`);
  const upsertRemoteApp = db.prepare<[string, string, number]>(
    `INSERT INTO remote_apps (id, manifest, updated_at) VALUES (?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET manifest = excluded.manifest, updated_at = excluded.updated_at`,
  );
  const selectRemoteApps = db.prepare<[], { id: string; manifest: string; updated_at: number }>(`SELECT * FROM remote_apps ORDER BY id`);
  // A second revoke keeps the first revocation time: that is when the key stopped working.
  const revokeKeyById = db.prepare<[number, string]>(
    `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`,
  );
  const touchKeyById = db.prepare<[number, string]>(`UPDATE api_keys SET last_used_at = ? WHERE id = ?`);
  const updateKeyById = db.prepare<{ id: string; secretHash: string | null; scope: string | null; name: string | null; setRevoked: number; revokedAt: number | null }>(`
    UPDATE api_keys SET
      secret_hash = COALESCE(@secretHash, secret_hash),
      scope = COALESCE(@scope, scope),
      name = COALESCE(@name, name),
      revoked_at = CASE WHEN @setRevoked = 1 THEN @revokedAt ELSE revoked_at END
    WHERE id = @id`);

  const upsertUsage = db.prepare<UsageRecord>(`
    INSERT OR REPLACE INTO usage (request_id, key_id, app_id, endpoint, state, queue_ms, run_ms, billable_units, finished_at)
    VALUES (@requestId, @keyId, @appId, @endpoint, @state, @queueMs, @runMs, @billableUnits, @finishedAt)`);
  const selectUsage = db.prepare<UsageListParams, UsageRow>(`
    SELECT * FROM usage
    WHERE (@appId IS NULL OR app_id = @appId)
      AND (@keyId IS NULL OR key_id = @keyId)
      AND (@since IS NULL OR finished_at >= @since)
      AND (@until IS NULL OR finished_at < @until)
    ORDER BY finished_at DESC, request_id
    LIMIT @limit`);

  const insertWebhook = db.prepare<{ requestId: string; url: string; body: string; now: number }, WebhookRow>(`
    INSERT INTO webhooks (request_id, url, body, attempts, next_attempt_at, state, created_at)
    VALUES (@requestId, @url, @body, 0, @now, 'pending', @now)
    RETURNING *`);
  // Pushing next_attempt_at forward is the lease: until it passes, the job is not due for anyone else.
  const leaseDueWebhooks = db.prepare<{ now: number; limit: number; leaseUntil: number }, WebhookRow>(`
    UPDATE webhooks SET next_attempt_at = @leaseUntil
    WHERE id IN (
      SELECT id FROM webhooks WHERE state = 'pending' AND next_attempt_at <= @now ORDER BY id LIMIT @limit
    )
    RETURNING *`);
  const insertWebhookAttempt = db.prepare<
    { webhookId: number; requestId: string; attempt: number; at: number; status: number | null; ok: number; error: string | null; durationMs: number }
  >(`
    INSERT INTO webhook_attempts (webhook_id, request_id, attempt, at, status, ok, error, duration_ms)
    VALUES (@webhookId, @requestId, @attempt, @at, @status, @ok, @error, @durationMs)`);
  // attempts is recounted from the attempt rows so it always agrees with them. A job already delivered
  // or failed keeps its state: a late attempt (after its lease passed) is recorded but cannot reopen it.
  const updateWebhookAfterAttempt = db.prepare<{ id: number; state: WebhookJob["state"]; nextAttemptAt: number }>(`
    UPDATE webhooks
    SET attempts = (SELECT COUNT(*) FROM webhook_attempts WHERE webhook_id = @id),
        state = CASE WHEN state = 'pending' THEN @state ELSE state END,
        next_attempt_at = CASE WHEN state = 'pending' THEN @nextAttemptAt ELSE next_attempt_at END
    WHERE id = @id`);
  const selectWebhooksOfRequest = db.prepare<[string], WebhookRow>(
    `SELECT * FROM webhooks WHERE request_id = ? ORDER BY id`,
  );
  const selectAttemptsOfRequest = db.prepare<[string], WebhookAttemptRow>(`
    SELECT webhook_id, request_id, attempt, at, status, ok, error, duration_ms FROM webhook_attempts
    WHERE webhook_id IN (SELECT id FROM webhooks WHERE request_id = ?)
    ORDER BY webhook_id, attempt, seq`);

  // Storage quota: entries per key; storage_usage holds their sum, kept by triggers (schema.ts).
  const pruneExpiredEntries = db.prepare<[string, number]>(
    `DELETE FROM storage_entries WHERE key_id = ? AND expires_at IS NOT NULL AND expires_at <= ?`,
  );
  const selectKeyStorage = db.prepare<[string], { bytes: number }>(`SELECT bytes FROM storage_usage WHERE key_id = ?`);
  const selectExpiredEntryBytes = db.prepare<[string, number], { bytes: number }>(
    `SELECT COALESCE(SUM(bytes), 0) AS bytes FROM storage_entries WHERE key_id = ? AND expires_at IS NOT NULL AND expires_at <= ?`,
  );
  const selectEntryBytes = db.prepare<[string, string], { bytes: number }>(`SELECT bytes FROM storage_entries WHERE id = ? AND key_id = ?`);
  const upsertEntry = db.prepare<StorageEntry>(`
    INSERT INTO storage_entries (id, key_id, bytes, upload_id, expires_at) VALUES (@id, @keyId, @bytes, @uploadId, @expiresAt)
    ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, bytes = excluded.bytes, upload_id = excluded.upload_id, expires_at = excluded.expires_at`);
  const deleteEntry = db.prepare<[string, string]>(`DELETE FROM storage_entries WHERE id = ? AND key_id = ?`);
  const deleteUploadEntries = db.prepare<[string, string]>(`DELETE FROM storage_entries WHERE upload_id = ? AND key_id = ?`);
  const touchUploadEntries = db.prepare<[number | null, string, string]>(`UPDATE storage_entries SET expires_at = ? WHERE upload_id = ? AND key_id = ?`);

  const reserveStorageTransaction = (entry: StorageEntry, options: StorageReserveOptions, now: number): StorageReservation => {
    pruneExpiredEntries.run(entry.keyId, now);
    const used = selectKeyStorage.get(entry.keyId)?.bytes ?? 0;
    const replaced = options.replaces ? (selectEntryBytes.get(options.replaces, entry.keyId)?.bytes ?? 0) : 0;
    const decision = decideReservation(used, replaced, entry.bytes, options);
    if (decision.ok) upsertEntry.run({ ...entry, bytes: decision.bytes });
    return decision;
  };

  const settleStorageTransaction = (s: StorageSettlement): void => {
    if (s.reservationId) deleteEntry.run(s.reservationId, s.keyId);
    if (s.completesUpload) deleteUploadEntries.run(s.completesUpload, s.keyId);
    if (s.entry) {
      upsertEntry.run({ ...s.entry, keyId: s.keyId });
      if (s.entry.uploadId !== null && s.entry.uploadId !== s.completesUpload) touchUploadEntries.run(s.entry.expiresAt, s.entry.uploadId, s.keyId);
    }
  };

  /**
   * Every terminal write records the request's usage in the same transaction, so metering sees each
   * finished request exactly once, whatever crashes in between.
   */
  const withUsage = (row: RequestRow | undefined): RequestRow | undefined => {
    if (!row || row.finished_at === null) return row;
    const started = row.started_at ?? row.finished_at;
    upsertUsage.run({
      requestId: row.id,
      keyId: row.key_id,
      appId: row.app_id,
      endpoint: row.endpoint,
      state: row.state as RequestState,
      queueMs: Math.max(0, started - row.created_at),
      runMs: row.started_at === null ? 0 : Math.max(0, row.finished_at - row.started_at),
      billableUnits: row.billable_units,
      finishedAt: row.finished_at,
    });
    return row;
  };

  // --- read-then-write transactions (run with .immediate(), see the module comment) ---

  const requeueTransaction = db.transaction(
    (id: string, guard: { owner: string; attempt: number } | null, exhausted: TerminalWrite): RequestRow | undefined => {
      const row = selectRequest.get(id);
      if (!row || row.state !== "RUNNING") return undefined;
      if (guard && (row.lease_owner !== guard.owner || row.attempt !== guard.attempt)) return undefined;
      if (row.attempt >= row.max_attempts) return withUsage(finishUnguarded.get(terminalParams(id, exhausted, Date.now())));
      return putBackInQueue.get(id);
    },
  );

  const cancelTransaction = db.transaction((id: string): CancelResult => {
    const row = selectRequest.get(id);
    if (!row) return { kind: "not_found" };
    if (row.state === "QUEUED") {
      const cancelled = withUsage(finishUnguarded.get(terminalParams(id, CANCELLED_BY_CLIENT, Date.now())));
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

  const recordWebhookAttemptTransaction = db.transaction(
    (attempt: WebhookAttempt, next: { state: WebhookJob["state"]; nextAttemptAt: number }): void => {
      insertWebhookAttempt.run({
        webhookId: attempt.webhookId,
        requestId: attempt.requestId,
        attempt: attempt.attempt,
        at: attempt.at,
        status: attempt.status,
        ok: attempt.ok ? 1 : 0,
        error: attempt.error,
        durationMs: attempt.durationMs,
      });
      updateWebhookAfterAttempt.run({ id: attempt.webhookId, state: next.state, nextAttemptAt: next.nextAttemptAt });
    },
  );

  const listWebhooksTransaction = db.transaction((requestId: string) => {
    const jobs = selectWebhooksOfRequest.all(requestId).map(toWebhookJob);
    const attempts = selectAttemptsOfRequest.all(requestId).map(toWebhookAttempt);
    return jobs.map((job) => ({ job, attempts: attempts.filter((a) => a.webhookId === job.id) }));
  });

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
      const row = await writes.run(() => insertRequest.get(insertParams(req, Date.now())));
      if (!row) throw new Error(`Enqueue of request ${req.id} returned no row`);
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
          limit: clampLimit(filter.limit, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT),
        })
        .map(toRequestRecord);
    },

    async claim(appId, owner, leaseMs, now = Date.now()) {
      const row = await writes.run(() => claimNext.get({ appId, owner, now, leaseExpiresAt: now + leaseMs }));
      return row ? toRequestRecord(row) : null;
    },

    async claimMany(appId, owner, leaseMs, limit, now = Date.now(), filter) {
      if (limit <= 0 || filter?.only?.length === 0) return [];
      const params = { appId, owner, now, leaseExpiresAt: now + leaseMs, limit: Math.trunc(limit) };
      const except = JSON.stringify(filter?.except ?? []);
      const rows = await writes.run(() => {
        if (filter?.only) return claimOnly.all({ ...params, only: JSON.stringify(filter.only), except });
        if (filter?.except && filter.except.length > 0) return claimExcept.all({ ...params, except });
        return claimBatch.all(params);
      });
      return sortInClaimOrder(rows).map(toRequestRecord);
    },

    async heartbeat(id, owner, leaseMs, now = Date.now()) {
      return (await writes.run(() => extendLease.run({ id, owner, leaseExpiresAt: now + leaseMs }))).changes > 0;
    },

    async finish(id, write, guard) {
      const params = terminalParams(id, write, Date.now());
      const row = await writes.run(() =>
        withUsage(guard ? finishGuarded.get({ ...params, owner: guard.owner, attempt: guard.attempt }) : finishUnguarded.get(params)),
      );
      return row ? toRequestRecord(row) : null;
    },

    async requeue(id, guard, exhausted) {
      const row = await writes.run(() => requeueTransaction(id, guard, exhausted));
      return row ? toRequestRecord(row) : null;
    },

    async release(id, guard) {
      const row = await writes.run(() => releaseClaim.get(id, guard.owner, guard.attempt));
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
      return selectRemoteApps.all().map((r) => ({ id: r.id, manifest: r.manifest, updatedAt: r.updated_at }));
    },

    async createKey(key) {
      insertKey.run(key);
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
      return (
        updateKeyById.run({
          id,
          secretHash: patch.secretHash ?? null,
          scope: patch.scope ?? null,
          name: patch.name ?? null,
          setRevoked: "revokedAt" in patch ? 1 : 0,
          revokedAt: patch.revokedAt ?? null,
        }).changes > 0
      );
    },

    async touchKey(id, now) {
      touchKeyById.run(now, id);
    },

    async recordUsage(usage) {
      await writes.run(() => upsertUsage.run(usage));
    },

    async listUsage(filter: UsageFilter) {
      return selectUsage
        .all({
          appId: filter.appId ?? null,
          keyId: filter.keyId ?? null,
          since: filter.since ?? null,
          until: filter.until ?? null,
          limit: clampLimit(filter.limit, USAGE_DEFAULT_LIMIT, USAGE_MAX_LIMIT),
        })
        .map(toUsageRecord);
    },

    async reserveStorage(entry, options) {
      assertStorageBytes(entry.bytes);
      const now = options.now ?? Date.now();
      return writes.run(() => reserveStorageTransaction(entry, options, now));
    },

    async settleStorage(settlement) {
      if (settlement.entry) assertStorageBytes(settlement.entry.bytes);
      await writes.run(() => settleStorageTransaction(settlement));
    },

    async releaseStorage(keyId, id) {
      await writes.run(() => deleteEntry.run(id, keyId));
    },

    async storageUsed(keyId, now = Date.now()) {
      const total = selectKeyStorage.get(keyId)?.bytes ?? 0;
      return total - (selectExpiredEntryBytes.get(keyId, now)?.bytes ?? 0);
    },

    async enqueueWebhook(job) {
      const row = insertWebhook.get({ requestId: job.requestId, url: job.url, body: job.body, now: job.now ?? Date.now() });
      if (!row) throw new Error(`Enqueue of a webhook for request ${job.requestId} returned no row`);
      return toWebhookJob(row);
    },

    async claimDueWebhooks(now, limit, leaseMs) {
      if (limit <= 0) return [];
      const rows = leaseDueWebhooks.all({ now, limit: Math.trunc(limit), leaseUntil: now + leaseMs });
      // RETURNING gives no order guarantee.
      return rows.map(toWebhookJob).sort((a, b) => a.id - b.id);
    },

    async recordWebhookAttempt(attempt, next) {
      recordWebhookAttemptTransaction.immediate(attempt, next);
    },

    async listWebhooks(requestId) {
      return listWebhooksTransaction(requestId);
    },
  };
}
