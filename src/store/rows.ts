/**
 * Row shapes and row-to-record mappings that the SQLite and PostgreSQL drivers share: the tables have
 * the same columns in both, and numbers come back as numbers from both (the PostgreSQL driver parses
 * bigint columns). What differs is normalised here: booleans are 0/1 in SQLite and booleans in
 * PostgreSQL; text PostgreSQL cannot hold is passed in by the driver (`text`).
 * @module
 */
import { PlatformError } from "../core/errors.js";
import { DEFAULT_TENANT_WEIGHT, type TenantRecord, type UsageLimits } from "../core/tenants.js";
import type { LogLevel, Priority, RequestLog, RequestMode, RequestRecord, RequestState } from "../core/types.js";
import type {
  ApiKeyRecord,
  NewRequest,
  RemoteAppRecord,
  StorageReservation,
  StorageReserveOptions,
  TerminalWrite,
  UsageRecord,
  WebhookAttempt,
  WebhookJob,
} from "./store.js";

// --- rows as the drivers return them (the CHECK constraints in the schemas guarantee the enum casts) ---

export interface RequestRow {
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
  /** 0 or 1 in SQLite, a boolean in PostgreSQL. */
  cancel_requested: number | boolean;
  webhook_url: string | null;
  key_id: string | null;
  tenant: string;
  /** The request's start tag in fair share (docs/fair-share.md): claim order within a priority. */
  fair_tag: number;
  base_url: string;
  output_ttl_seconds: number | null;
  output: string | null;
  status_code: number | null;
  error: string | null;
  error_type: string | null;
  billable_units: number | null;
  /** 'HIT' or 'JOINED' (src/reuse/), else null. */
  cache: string | null;
  reused_from: string | null;
}

export interface LogRow {
  message: string;
  level: string;
  source: string;
  timestamp: string;
}

export interface ApiKeyRow {
  id: string;
  secret_hash: string;
  name: string;
  scope: string;
  created_at: number;
  revoked_at: number | null;
  last_used_at: number | null;
  tenant: string | null;
  /** JSON of UsageLimits */
  limits: string;
}

export interface TenantRow {
  name: string;
  weight: number;
  /** JSON of UsageLimits */
  limits: string;
  created_at: number;
  updated_at: number;
}

export interface UsageRow {
  request_id: string;
  key_id: string | null;
  tenant: string;
  app_id: string;
  endpoint: string;
  state: string;
  queue_ms: number;
  run_ms: number;
  billable_units: number | null;
  finished_at: number;
  cache: string | null;
}

export interface WebhookRow {
  id: number;
  request_id: string;
  url: string;
  body: string;
  attempts: number;
  next_attempt_at: number;
  state: string;
  created_at: number;
  scheme: string;
}

export interface WebhookAttemptRow {
  webhook_id: number;
  request_id: string;
  attempt: number;
  at: number;
  status: number | null;
  /** 0 or 1 in SQLite, a boolean in PostgreSQL. */
  ok: number | boolean;
  error: string | null;
  duration_ms: number;
}

export interface RemoteAppRow {
  id: string;
  manifest: string;
  updated_at: number;
}

// --- rows to records ---

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

export function toRequestRecord(row: RequestRow): RequestRecord {
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
    cancelRequested: Boolean(row.cancel_requested),
    webhookUrl: row.webhook_url,
    keyId: row.key_id,
    tenant: row.tenant,
    baseUrl: row.base_url,
    outputTtlSeconds: row.output_ttl_seconds,
    statusCode: row.status_code,
    error: row.error,
    errorType: row.error_type,
    billableUnits: row.billable_units,
    cache: row.cache as RequestRecord["cache"],
    reusedFrom: row.reused_from,
  } as RequestRecord;
  lazyJson(record, "input", row.input);
  lazyJson(record, "output", row.output);
  return record;
}

/** RETURNING gives no order guarantee: claimed rows are put back in claim order. */
export function sortInClaimOrder<R extends Pick<RequestRow, "priority_rank" | "fair_tag" | "created_at" | "seq">>(rows: R[]): R[] {
  return rows.sort((a, b) => a.priority_rank - b.priority_rank || a.fair_tag - b.fair_tag || a.created_at - b.created_at || a.seq - b.seq);
}

export function toRequestLog(row: LogRow): RequestLog {
  return {
    message: row.message,
    level: row.level as LogLevel,
    source: row.source as RequestLog["source"],
    timestamp: row.timestamp,
  };
}

export function toApiKeyRecord(row: ApiKeyRow): ApiKeyRecord {
  return {
    id: row.id,
    secretHash: row.secret_hash,
    name: row.name,
    scope: row.scope as ApiKeyRecord["scope"],
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    tenant: row.tenant,
    limits: JSON.parse(row.limits) as UsageLimits,
  };
}

export function toTenantRecord(row: TenantRow): TenantRecord {
  return { name: row.name, weight: row.weight, limits: JSON.parse(row.limits) as UsageLimits, createdAt: row.created_at, updatedAt: row.updated_at };
}

/** How far one request moves its tenant's fair-share clock: 1 / weight (a weight nobody set is 1). */
export function strideOf(weight: number | undefined): number {
  return 1 / (weight !== undefined && weight > 0 && Number.isFinite(weight) ? weight : DEFAULT_TENANT_WEIGHT);
}

export function toUsageRecord(row: UsageRow): UsageRecord {
  return {
    requestId: row.request_id,
    keyId: row.key_id,
    tenant: row.tenant,
    appId: row.app_id,
    endpoint: row.endpoint,
    state: row.state as RequestState,
    queueMs: row.queue_ms,
    runMs: row.run_ms,
    billableUnits: row.billable_units,
    finishedAt: row.finished_at,
    cache: row.cache as UsageRecord["cache"],
  };
}

/**
 * The usage record of a finished request (null while it is not finished): queue time up to its
 * latest start, run time from there. The PostgreSQL driver computes the same in SQL, in its terminal
 * statement.
 */
export function usageOfRequest(row: RequestRow): UsageRecord | null {
  if (row.finished_at === null) return null;
  const started = row.started_at ?? row.finished_at;
  // Built field by field rather than from a copy of the whole row: every finished request makes one.
  return {
    requestId: row.id,
    keyId: row.key_id,
    tenant: row.tenant,
    appId: row.app_id,
    endpoint: row.endpoint,
    state: row.state as RequestState,
    queueMs: Math.max(0, started - row.created_at),
    // A reused result (src/reuse/) ran nothing of its own.
    runMs: row.started_at === null || row.cache !== null ? 0 : Math.max(0, row.finished_at - row.started_at),
    billableUnits: row.billable_units,
    finishedAt: row.finished_at,
    cache: row.cache as UsageRecord["cache"],
  };
}

export function toWebhookJob(row: WebhookRow): WebhookJob {
  return {
    id: row.id,
    requestId: row.request_id,
    url: row.url,
    body: row.body,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    state: row.state as WebhookJob["state"],
    createdAt: row.created_at,
    scheme: row.scheme,
  };
}

/** Jobs leased by one UPDATE ... RETURNING (which gives no order guarantee), oldest first. */
export function toLeasedWebhookJobs(rows: WebhookRow[]): WebhookJob[] {
  return rows.map(toWebhookJob).sort((a, b) => a.id - b.id);
}

export function toWebhookAttempt(row: WebhookAttemptRow): WebhookAttempt {
  return {
    webhookId: row.webhook_id,
    requestId: row.request_id,
    attempt: row.attempt,
    at: row.at,
    status: row.status,
    ok: Boolean(row.ok),
    error: row.error,
    durationMs: row.duration_ms,
  };
}

export function toRemoteAppRecord(row: RemoteAppRow): RemoteAppRecord {
  return { id: row.id, manifest: row.manifest, updatedAt: row.updated_at };
}

// --- records to column values ---

/** JSON for a nullable column: an absent value (null or undefined) is stored as NULL. */
export function toJsonColumn(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

/** Leaves text as it is: the default for drivers whose text columns hold any string. */
function anyText<T extends string | null>(value: T): T {
  return value;
}

/** The values of a new request's row (the SQLite driver binds them by name, PostgreSQL by position). */
export interface NewRequestColumns {
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
  tenant: string;
  /** 1 / the tenant's weight: how far a request moves its tenant's fair-share clock. */
  stride: number;
  baseUrl: string;
  outputTtlSeconds: number | null;
}

export function newRequestColumns(req: NewRequest, createdAt: number): NewRequestColumns {
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
    tenant: req.tenant ?? "",
    stride: strideOf(req.weight),
    baseUrl: req.baseUrl,
    outputTtlSeconds: req.outputTtlSeconds ?? null,
  };
}

/** The values a terminal write sets on a request's row. */
export interface TerminalColumns {
  id: string;
  state: TerminalWrite["state"];
  output: string | null;
  statusCode: number;
  error: string | null;
  errorType: string | null;
  billableUnits: number | null;
  finishedAt: number;
}

/** `text` makes the free-text columns (error, error type) storable by the driver. */
export function terminalColumns(
  id: string,
  write: TerminalWrite,
  finishedAt: number,
  text: (value: string | null) => string | null = anyText,
): TerminalColumns {
  return {
    id,
    state: write.state,
    output: toJsonColumn(write.output),
    statusCode: write.statusCode,
    error: text(write.error),
    errorType: text(write.errorType),
    billableUnits: write.billableUnits,
    finishedAt,
  };
}

/**
 * What `cancel` writes for a request its client cancelled while it was queued: the registry's
 * ERR_CLIENT_CANCELLED, with the body fal's clients get from the result endpoint as for any other
 * request error (the scheduler writes the same for a running request the client cancelled).
 */
/** The terminal write of a request that ended with `error` (CANCELLED for ERR_CLIENT_CANCELLED, else FAILED). */
export function terminalWriteFor(error: PlatformError): TerminalWrite {
  return {
    state: error.code === "ERR_CLIENT_CANCELLED" ? "CANCELLED" : "FAILED",
    output: error.toBody(),
    statusCode: error.status,
    error: error.message,
    errorType: error.errorType ?? null,
    billableUnits: null,
  };
}

export const CANCELLED_BY_CLIENT: TerminalWrite = terminalWriteFor(new PlatformError("ERR_CLIENT_CANCELLED"));

// --- storage quota ---

/**
 * The quota decision both drivers make under their lock: `used` is what the key holds (expired
 * entries already removed), `replaced` the bytes of the entry the new one replaces.
 */
export function decideReservation(used: number, replaced: number, bytes: number, options: StorageReserveOptions): StorageReservation {
  const base = used - replaced;
  if (options.quotaBytes <= 0 || base + bytes <= options.quotaBytes) return { ok: true, bytes, usedBytes: used };
  const left = options.quotaBytes - base;
  if (options.partial && left > 0) return { ok: true, bytes: left, usedBytes: used };
  return { ok: false, usedBytes: used };
}

/** Throws unless `bytes` is a whole, non-negative number of bytes (a NaN would poison the key's total). */
export function assertStorageBytes(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new Error(`storage entry bytes must be a whole number >= 0, got ${bytes}`);
}

// --- concurrency limits in claims ---

/**
 * How many queued requests a claim under concurrency limits looks at, in claim order. Fair share keeps
 * every tenant's next request near the head of the queue (docs/fair-share.md), so requests that may
 * run are found within the first few; the bound keeps a claim cheap when the head is all requests of
 * owners at their limit.
 */
export const CAPPED_CLAIM_WINDOW = 1000;

/** The room each limited tenant and key has left during one claim; owners without a limit always have room. */
export class RoomLedger {
  readonly #tenants: Map<string, number>;
  readonly #keys: Map<string, number>;

  constructor(tenantRooms: readonly { owner: string; room: number }[], keyRooms: readonly { owner: string; room: number }[]) {
    this.#tenants = new Map(tenantRooms.map((r) => [r.owner, r.room]));
    this.#keys = new Map(keyRooms.map((r) => [r.owner, r.room]));
  }

  /** Takes one slot for a request of `tenant` and `keyId` when both have room; false (and nothing taken) otherwise. */
  take(tenant: string, keyId: string | null): boolean {
    const tenantRoom = this.#tenants.get(tenant);
    const keyRoom = keyId === null ? undefined : this.#keys.get(keyId);
    if ((tenantRoom !== undefined && tenantRoom <= 0) || (keyRoom !== undefined && keyRoom <= 0)) return false;
    if (tenantRoom !== undefined) this.#tenants.set(tenant, tenantRoom - 1);
    if (keyId !== null && keyRoom !== undefined) this.#keys.set(keyId, keyRoom - 1);
    return true;
  }
}
