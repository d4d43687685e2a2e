/**
 * Row shapes and row-to-record mappings that the SQLite and PostgreSQL drivers share: the tables for
 * logs, keys, usage and webhooks have the same columns in both, and numbers come back as numbers
 * from both (the PostgreSQL driver parses bigint columns).
 * @module
 */
import type { LogLevel, RequestLog, RequestState } from "../core/types.js";
import type { ApiKeyRecord, StorageReservation, StorageReserveOptions, UsageRecord, WebhookJob } from "./store.js";

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
}

export interface UsageRow {
  request_id: string;
  key_id: string | null;
  app_id: string;
  endpoint: string;
  state: string;
  queue_ms: number;
  run_ms: number;
  billable_units: number | null;
  finished_at: number;
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
  };
}

export function toUsageRecord(row: UsageRow): UsageRecord {
  return {
    requestId: row.request_id,
    keyId: row.key_id,
    appId: row.app_id,
    endpoint: row.endpoint,
    state: row.state as RequestState,
    queueMs: row.queue_ms,
    runMs: row.run_ms,
    billableUnits: row.billable_units,
    finishedAt: row.finished_at,
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
  };
}

export function toJsonColumn(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

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
