/**
 * The store: requests and their queue, logs, API keys, usage, the bytes each key holds in storage
 * (its storage quota) and the webhook outbox behind one interface. Drivers: `sqlite` (embedded,
 * default) and `postgres` (several gateways on one database). Every driver passes the shared
 * conformance suite in `test/store/store.case.ts`.
 *
 * Semantics every driver must keep:
 * - `enqueue` is durable when it resolves (the gateway answers 200 after it).
 * - `claim` hands a QUEUED request to exactly one runner slot, skipping requests whose start deadline
 *   has passed; it sets state RUNNING and a lease. Claim order: `normal` before `low`; within a
 *   priority, by fair share between tenants (each request's start tag, set at enqueue by start-time
 *   fair queueing over the tenants' weights, see docs/fair-share.md); then oldest first. A tenant alone
 *   in the queue is served oldest first, as before tenants existed.
 * - Every write of a terminal state (`finish`, an exhausted `requeue`, `cancel` of a queued request)
 *   records the request's usage in the same transaction: exactly one usage record per finished request.
 * - `finish` writes a terminal state at most once: it succeeds only while the request is RUNNING under
 *   the given lease owner and attempt (or QUEUED, for cancellations and deadline expiry) and returns
 *   null otherwise, so a late or duplicate result can never overwrite an outcome.
 * @module
 */
import type { Priority, RequestLog, RequestMode, RequestRecord, RequestState, ReuseStatus } from "../core/types.js";
import type { TenantRecord, UsageLimits } from "../core/tenants.js";
import type { Bus } from "./bus.js";

export interface NewRequest {
  id: string;
  appId: string;
  endpoint: string;
  input: unknown;
  priority: Priority;
  mode: RequestMode;
  startDeadline: number | null;
  maxAttempts: number;
  webhookUrl: string | null;
  keyId: string | null;
  baseUrl: string;
  /** Seconds until output files expire (`x-fal-object-lifecycle-preference`); absent or null keeps them. */
  outputTtlSeconds?: number | null;
  /**
   * `input` already serialized (the scheduler measures it to decide whether it spills to storage,
   * src/storage/spilled-inputs.ts): written as it is rather than serialized again. Must be
   * `JSON.stringify(input ?? null)`.
   */
  inputJson?: string;
  /** The tenant the request shares the queue as (fair share, src/core/tenants.ts); absent: "". */
  tenant?: string;
  /** The tenant's weight (its share of runner slots against other tenants'); absent: 1. */
  weight?: number;
}

/** A claim made in the same transaction as an enqueue (see `Store.submit`). */
export interface ClaimFor {
  owner: string;
  leaseMs: number;
  /** Most requests to claim (the runner's free slots). */
  limit: number;
}

/**
 * Narrows a `claimMany` to some of the app's queued requests: the scheduler retries the requests of
 * a runner that died apart from other work (`only` for the runner that takes them, `except` for all
 * other claims). Either list may be empty: `only: []` claims nothing, `except: []` excludes nothing.
 */
export interface ClaimFilter {
  /** Claim none but these requests (those of them that are claimable, in claim order). */
  only?: readonly string[];
  /** Never claim these requests. */
  except?: readonly string[];
}

/** What `Store.submit` did. */
/**
 * An `Idempotency-Key` of a submit (src/gateway/idempotency.ts): the request id it stands for, held
 * per API key until `expiresAt`.
 */
export interface IdempotencyReservation {
  /** The API key that sent it ("" for none): keys of different callers never meet. */
  keyId: string;
  key: string;
  /** A hash of what was submitted with it: the same key with another body is refused. */
  fingerprint: string;
  /** The request the submit will create. */
  requestId: string;
  now: number;
  expiresAt: number;
  /**
   * A reservation older than this whose request was never written (its gateway died between the two)
   * is taken over rather than left to block the key until it expires.
   */
  staleBefore: number;
}

export type IdempotencyOutcome =
  /** The key is this submit's now: go on and write the request. */
  | { kind: "reserved" }
  /** Another submit holds the key: its request (which may still be being written) and fingerprint. */
  | { kind: "taken"; requestId: string; fingerprint: string };

/** A registered workflow (src/workflows/document.ts): its document as JSON text, kept as given. */
/** A result key asked for at submit (Store.takeResultKey, src/reuse/). */
export interface ResultKeyClaim {
  key: string;
  appId: string;
  /** The new request, which holds the key if nothing live or reusable does. */
  requestId: string;
  now: number;
  /** Take the key whatever holds it (`X-Darkroom-Cache: refresh`). */
  refresh: boolean;
  /**
   * A key taken before this time whose request was never written is free again (its gateway died
   * or its submit failed); one taken since is a submit still being written, which is joined.
   */
  staleBefore: number;
  /**
   * Until when the new request's output files must live (unix ms), null for ever: a finished result
   * whose files expire sooner is not reused.
   */
  needUntil: number | null;
}

export type ResultKeyOutcome =
  /** The key now names the new request: run it. */
  | { kind: "taken" }
  /** A finished result to copy. */
  | { kind: "hit"; source: RequestRecord }
  /** An identical request still queued or running (null: still being written): wait for it. */
  | { kind: "join"; leaderId: string; leader: RequestRecord | null };

/** How a request that reuses a result is written (Store.submitReused). */
export type ReusedSubmit =
  /** Finished at once with `source`'s result. */
  | { kind: "hit"; source: RequestRecord }
  /** RUNNING under `owner` (lease until `leaseExpiresAt`) while `leaderId` runs; ended by the gateway that joined it. */
  | { kind: "join"; leaderId: string; owner: string; leaseExpiresAt: number };

/** What a runner was (src/reuse/provenance.ts): kept so that each result's manifest can say what made it. */
export interface RunnerRecord {
  id: string;
  appId: string;
  /** JSON: the runner's provenance. */
  description: string;
  startedAt: number;
}

export interface WorkflowRecord {
  /** `owner/name`. */
  id: string;
  document: string;
  createdAt: number;
  updatedAt: number;
}

export interface Submitted {
  /** The new request as it stands when the transaction commits (RUNNING if it was claimed). */
  record: RequestRecord;
  /** Its 0-based queue position at commit; null when it was claimed. */
  queuePosition: number | null;
  /** Requests claimed for `ClaimFor.owner`, in claim order (the new one among them when it was next). */
  claimed: RequestRecord[];
}

export interface TerminalWrite {
  state: Extract<RequestState, "SUCCEEDED" | "FAILED" | "CANCELLED">;
  output: unknown;
  statusCode: number;
  error: string | null;
  errorType: string | null;
  billableUnits: number | null;
}

/** What `cancel` did. */
export type CancelResult =
  | { kind: "removed"; record: RequestRecord } // was queued: now CANCELLED
  | { kind: "signalled"; record: RequestRecord } // running: cancel_requested set, runner must stop it
  | { kind: "already_completed"; record: RequestRecord }
  | { kind: "not_found" };

export interface ApiKeyRecord {
  id: string;
  /** scrypt hash of the secret, `scrypt$N$r$p$salt$hash` */
  secretHash: string;
  name: string;
  scope: "admin" | "api";
  createdAt: number;
  revokedAt: number | null;
  lastUsedAt: number | null;
  /** The tenant the key belongs to; null: the key is a tenant of its own (tenantOf). */
  tenant: string | null;
  /** The key's own limits; its tenant's apply as well (the stricter wins). */
  limits: UsageLimits;
}

export type KeyPatch = Partial<Pick<ApiKeyRecord, "secretHash" | "scope" | "revokedAt" | "name" | "tenant" | "limits">>;

/** Whose live requests `countLive` counts. */
export type LiveOwner = { tenant: string } | { keyId: string };

/** A tenant's settings as written by `putTenant` (the store keeps the times). */
export type TenantSettings = Pick<TenantRecord, "name" | "weight" | "limits">;

export interface UsageRecord {
  requestId: string;
  keyId: string | null;
  /** The request's tenant ("" for none; records from before tenants have ""). */
  tenant: string;
  appId: string;
  endpoint: string;
  state: RequestState;
  queueMs: number;
  runMs: number;
  billableUnits: number | null;
  finishedAt: number;
  /** HIT or JOINED when the request reused another's result (run time 0); absent or null otherwise. */
  cache?: ReuseStatus | null;
}

/** Usage is listed newest first (by `finishedAt`). */
export interface UsageFilter {
  appId?: string;
  keyId?: string;
  tenant?: string;
  /** Inclusive lower bound on `finishedAt`. */
  since?: number;
  /** Exclusive upper bound on `finishedAt`. */
  until?: number;
  /** Default 1000, at most 10000. */
  limit?: number;
}

export interface WebhookJob {
  id: number;
  requestId: string;
  url: string;
  /** Exact body bytes to send (signed as-is). */
  body: string;
  attempts: number;
  nextAttemptAt: number;
  state: "pending" | "delivered" | "failed";
  createdAt: number;
  /** How it is signed: `fal` (fal's ED25519 headers), or `standard:<tenant>` (Standard Webhooks, that tenant's secret). */
  scheme: string;
}

/** What a Replicate prediction asked to hear of (`webhook_events_filter`), kept for its webhooks. */
export interface PredictionWebhook {
  requestId: string;
  events: ("start" | "output" | "logs" | "completed")[];
  tenant: string;
  createdAt: number;
}

export interface WebhookAttempt {
  webhookId: number;
  requestId: string;
  attempt: number;
  at: number;
  /** HTTP status, or null when no response (refused, network error). */
  status: number | null;
  ok: boolean;
  /** Why it failed: "refused: loopback address 127.0.0.1", "timeout", "HTTP 500"... */
  error: string | null;
  durationMs: number;
}

/** An app a remote runner described to a gateway (its manifest as JSON), shared by every gateway on the store. */
export interface RemoteAppRecord {
  id: string;
  /** The app manifest, JSON. */
  manifest: string;
  updatedAt: number;
}

/**
 * Bytes an API key holds in storage: one entry per stored file, staged multipart part, or upload
 * still in progress (a reservation). The per-key total is kept by the store in the same transaction
 * as every change to the entries, so checking a quota never scans storage or the entries.
 */
export interface StorageEntry {
  /**
   * What the bytes are: a storage key (`uploads/…`, `outputs/…`), a staged part
   * (`~multipart/<uploadId>/<n>`) or a reservation (`~reserved/<random>`). An entry written again
   * under the same id replaces the earlier one (a re-uploaded part, a replaced object).
   */
  id: string;
  keyId: string;
  bytes: number;
  /** The multipart upload a staged part belongs to; null for everything else. */
  uploadId: string | null;
  /** Unix ms from which the bytes no longer count (the file expired, the upload was abandoned); null: until removed. */
  expiresAt: number | null;
}

export interface StorageReserveOptions {
  /** The key's quota in bytes; 0 or less reserves whatever is asked (no quota). */
  quotaBytes: number;
  /** An entry the new bytes will replace once stored (a re-uploaded part): it does not count against them. */
  replaces?: string | null;
  /** Reserve what is left of the quota when less than `bytes` is left (an upload of unknown length); refused only when nothing is left. */
  partial?: boolean;
  now?: number;
}

export type StorageReservation =
  /** `bytes`: what was reserved (less than asked only with `partial`); `usedBytes`: the key's bytes before it. */
  | { ok: true; bytes: number; usedBytes: number }
  /** Nothing was reserved: the key holds `usedBytes`, and the entry would pass the quota. */
  | { ok: false; usedBytes: number };

/** What `settleStorage` writes, all in one transaction. */
export interface StorageSettlement {
  keyId: string;
  /** The reservation the upload held, removed. */
  reservationId?: string | null;
  /**
   * The stored file or part, replacing an entry of the same id. A part (with `uploadId`) also
   * moves the expiry of its upload's other parts to its own: an upload is abandoned a day after its
   * last part, not its first.
   */
  entry?: StorageEntry | null;
  /** A completed multipart upload: every entry of its parts is removed (their bytes are now `entry`). */
  completesUpload?: string | null;
}

export interface RequestListFilter {
  appId?: string;
  state?: RequestState;
  keyId?: string;
  /** Default 50, at most 500. Records are listed newest first. */
  limit?: number;
  /** Return records created strictly before this time (pagination). */
  before?: number;
}

export interface Store {
  readonly name: string;
  /**
   * Notifications between the processes sharing this store (queue wake-ups, request events). The
   * embedded SQLite store has an in-process bus (`distributed` false: one process holds the file);
   * PostgreSQL's crosses processes with LISTEN/NOTIFY. A hint only: see `src/store/bus.ts`.
   */
  readonly bus: Bus;
  /** Creates or upgrades the schema. Idempotent. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  // --- requests and queue ---
  enqueue(req: NewRequest): Promise<RequestRecord>;
  /**
   * Enqueues like `enqueue` and, in the same transaction, claims up to `claim.limit` requests of the
   * app for `claim.owner` by the rules of `claimMany` (so the new request is taken only when nothing
   * is ahead of it), and reports the new request's queue position. One commit instead of three
   * (enqueue, position read, claim): the path every submit takes.
   */
  submit(req: NewRequest, claim: ClaimFor | null): Promise<Submitted>;
  /**
   * Takes an idempotency key for a submit, atomically: the first caller gets it; later ones, until it
   * expires, learn the request it stands for. An expired key, or a stale one whose request was never
   * written, is taken over.
   */
  reserveIdempotencyKey(reservation: IdempotencyReservation): Promise<IdempotencyOutcome>;
  /**
   * Result reuse (src/reuse/): atomically finds what holds a result key, or gives it to the new
   * request. A key whose request failed, was cancelled, was never written (see `staleBefore`) or whose
   * files expire too soon is taken over.
   */
  takeResultKey(claim: ResultKeyClaim): Promise<ResultKeyOutcome>;
  /**
   * Writes a request that reuses a result: a HIT finished at once (and its usage, run time 0), or a
   * JOINED one RUNNING under the joining gateway's lease. A JOINED request put back in the queue
   * (`requeue`, when its leader was cancelled or its gateway died) runs as any other and is no longer
   * marked JOINED.
   */
  submitReused(req: NewRequest, reuse: ReusedSubmit): Promise<RequestRecord>;
  /** Records (or replaces) what a runner is, when it starts or registers. */
  recordRunner(runner: RunnerRecord): Promise<void>;
  getRunner(id: string): Promise<RunnerRecord | null>;
  /** Gives a key back when its submit failed, so that a retry is a new submit (only `requestId`'s reservation). */
  releaseIdempotencyKey(keyId: string, key: string, requestId: string): Promise<void>;
  /** Deletes the keys that expired before `now`; how many. */
  sweepIdempotencyKeys(now: number): Promise<number>;
  /** Creates or replaces a workflow (a replacement keeps its creation time). */
  putWorkflow(id: string, document: string, now: number): Promise<WorkflowRecord>;
  getWorkflow(id: string): Promise<WorkflowRecord | null>;
  /** Every workflow, by id. */
  listWorkflows(): Promise<WorkflowRecord[]>;
  /** False when there was none. */
  deleteWorkflow(id: string): Promise<boolean>;
  get(id: string): Promise<RequestRecord | null>;
  list(filter: RequestListFilter): Promise<RequestRecord[]>;
  /**
   * Claims the next runnable request of `appId` for `owner` with a lease of `leaseMs`.
   * `now` is injectable for tests.
   */
  claim(appId: string, owner: string, leaseMs: number, now?: number): Promise<RequestRecord | null>;
  /**
   * Claims up to `limit` runnable requests of `appId` for one `owner` at once (a runner with several
   * free slots), in claim order. Same rules as `claim`, among the requests `filter` lets through.
   */
  claimMany(appId: string, owner: string, leaseMs: number, limit: number, now?: number, filter?: ClaimFilter): Promise<RequestRecord[]>;
  /** Extends the lease if `owner` still holds it. Returns false if the lease was lost. */
  heartbeat(id: string, owner: string, leaseMs: number, now?: number): Promise<boolean>;
  /**
   * Writes the terminal state once. With `owner` set, only a RUNNING request held by that owner at
   * `attempt` is finished; without it, a QUEUED or RUNNING request is (cancellations, expiries,
   * recovery). Returns the updated record, or null when nothing was written.
   */
  finish(id: string, write: TerminalWrite, guard?: { owner: string; attempt: number }): Promise<RequestRecord | null>;
  /**
   * Puts a RUNNING request back in the queue for another attempt (attempt + 1), keeping its place by
   * creation time. If attempts are exhausted, it is finished with `exhausted` instead.
   * Returns the resulting record, or null if the guard did not match.
   */
  requeue(id: string, guard: { owner: string; attempt: number } | null, exhausted: TerminalWrite): Promise<RequestRecord | null>;
  /**
   * Hands a claim back untouched: the RUNNING request held by `guard` returns to the queue at the same
   * attempt, keeping its place, as if it had never been claimed. For claims that never reached their
   * runner (it hung up during a long poll); no attempt is used. Null when the guard does not match.
   */
  release(id: string, guard: { owner: string; attempt: number }): Promise<RequestRecord | null>;
  cancel(id: string): Promise<CancelResult>;
  /** 0-based position among QUEUED requests of the same app in claim order; null if not queued. */
  queuePosition(id: string): Promise<number | null>;
  /** Number of QUEUED requests per app. */
  queueDepths(): Promise<Map<string, number>>;
  /**
   * How many requests of a tenant or a key are in `state` (all apps), counted up to `atMost` and no
   * further: a limit check costs at most the limit, however many the tenant has.
   */
  countLive(owner: LiveOwner, state: "QUEUED" | "RUNNING", atMost: number): Promise<number>;
  /** RUNNING requests whose lease expired before `now`. */
  expiredLeases(now: number): Promise<RequestRecord[]>;
  /** All RUNNING requests (startup recovery: their runners died with the previous process). */
  running(): Promise<RequestRecord[]>;
  /** QUEUED requests whose start deadline passed before `now`. */
  expiredStartDeadlines(now: number): Promise<RequestRecord[]>;

  // --- logs ---
  appendLogs(requestId: string, logs: RequestLog[]): Promise<void>;
  /** Logs in order; `after` is the count already seen (returns logs from index `after`). */
  getLogs(requestId: string, after?: number): Promise<RequestLog[]>;

  // --- keys ---
  createKey(key: ApiKeyRecord): Promise<void>;
  getKey(id: string): Promise<ApiKeyRecord | null>;
  /** Oldest first (by `createdAt`). */
  listKeys(): Promise<ApiKeyRecord[]>;
  /** Returns false if no such key. Revoking a revoked key keeps its first `revokedAt`. */
  revokeKey(id: string, now?: number): Promise<boolean>;
  touchKey(id: string, now: number): Promise<void>;
  /** Changes a key's secret hash, scope, name, revocation, tenant or limits. False if no such key. */
  updateKey(id: string, patch: KeyPatch): Promise<boolean>;

  // --- tenants ---
  getTenant(name: string): Promise<TenantRecord | null>;
  /** By name. */
  listTenants(): Promise<TenantRecord[]>;
  /** Creates the tenant or replaces its weight and limits; returns it as stored. */
  putTenant(settings: TenantSettings, now?: number): Promise<TenantRecord>;

  // --- usage ---
  /** One record per request: recording the same `requestId` again replaces the earlier record. */
  /** Writes a usage record directly (imports, corrections); terminal writes record usage themselves. */
  recordUsage(usage: UsageRecord): Promise<void>;
  listUsage(filter: UsageFilter): Promise<UsageRecord[]>;

  // --- apps described by remote runners ---
  /** Saves (or replaces) the manifest of an app that a remote runner registered. */
  saveRemoteApp(app: RemoteAppRecord): Promise<void>;
  /** Every saved remote app, by id. */
  listRemoteApps(): Promise<RemoteAppRecord[]>;

  // --- storage quota (bytes each key holds in storage) ---
  /**
   * Atomically checks `entry.bytes` against what `entry.keyId` holds (its live entries, expired ones
   * removed on the way) and the quota, and records the entry if it fits: the reservation an upload
   * holds while its bytes arrive. Concurrent reservations of one key, from any gateway, are
   * serialized, so together they never pass the quota.
   */
  reserveStorage(entry: StorageEntry, options: StorageReserveOptions): Promise<StorageReservation>;
  /** Records a stored file or part in place of its reservation, without a quota check (its bytes were reserved). */
  settleStorage(settlement: StorageSettlement): Promise<void>;
  /** Removes an entry (a failed upload's reservation, a deleted file): its bytes no longer count. */
  releaseStorage(keyId: string, id: string): Promise<void>;
  /** The bytes `keyId` holds at `now`: its entries that have not expired. */
  storageUsed(keyId: string, now?: number): Promise<number>;

  // --- webhook outbox ---
  enqueueWebhook(job: { requestId: string; url: string; body: string; now?: number; scheme?: string }): Promise<WebhookJob>;
  /** Records what a Replicate prediction's webhook wants (before its request is written). */
  savePredictionWebhook(webhook: PredictionWebhook): Promise<void>;
  getPredictionWebhook(requestId: string): Promise<PredictionWebhook | null>;
  /** Pending jobs due at `now`, oldest first; each is leased for `leaseMs` so that two deliverers never send it at once. */
  claimDueWebhooks(now: number, limit: number, leaseMs: number): Promise<WebhookJob[]>;
  /** Records one attempt; sets delivered, failed (no more tries), or the next attempt time. */
  recordWebhookAttempt(attempt: WebhookAttempt, next: { state: WebhookJob["state"]; nextAttemptAt: number }): Promise<void>;
  listWebhooks(requestId: string): Promise<{ job: WebhookJob; attempts: WebhookAttempt[] }[]>;

  // --- prices ---
  /**
   * Records prices, all in one transaction. A price never replaces another: each is in effect from
   * its `effectiveFrom` until a later one of the same `endpointId`, so usage keeps the price of its
   * time (docs/pricing-and-usage.md). Returns them as stored, in the order given.
   */
  addPrices(prices: readonly NewPrice[]): Promise<PriceRecord[]>;
  /** Every price of these endpoint ids (all when absent), history included: by endpoint id, then `effectiveFrom`, then `id`. */
  listPrices(endpointIds?: readonly string[]): Promise<PriceRecord[]>;
  /**
   * Usage records finished in [`since`, `until`) summed per bucket, app, endpoint, the price in
   * effect at each record's finish and (with `byKey`) key, in SQL: a range of millions of records
   * never comes into memory. Rows in order of bucket, app id, endpoint, key id, price id.
   *
   * The price of a record is the latest price with `effectiveFrom` at or before its `finishedAt`
   * whose `endpointId` is the record's endpoint (`appId/endpoint`), or else its app (`appId`); null
   * when neither has one. What is billed (src/pricing/billable-units.ts keeps the same rule for one
   * request): a SUCCEEDED record counts its billable units, 1 when it has none; a CANCELLED record
   * that ran (`runMs` above 0) counts its billable units, 0 when it has none; nothing else is billed.
   */
  aggregateUsage(query: UsageAggregateQuery): Promise<UsageAggregate[]>;
}

// --- prices ---

/** fal's billing units (docs/pricing-and-usage.md): what one unit of a price is. */
export type PriceUnit = "request" | "image" | "megapixel" | "second" | "compute_second";

/** Where a price came from: `PUT /v1/models/pricing`, or the pricing file given at startup. */
export type PriceSource = "api" | "file";

export interface PriceRecord {
  /** Grows with every price stored: orders two prices of one endpoint in effect from the same millisecond. */
  id: number;
  /** `owner/alias` (every endpoint of the app) or `owner/alias/path` (that endpoint only). */
  endpointId: string;
  unit: PriceUnit;
  /** Price of one unit, at least 0. */
  unitPrice: number;
  /** ISO 4217 code, `USD`. */
  currency: string;
  /** Unix ms from which the price applies: to usage that finished at or after it. */
  effectiveFrom: number;
  source: PriceSource;
}

export type NewPrice = Omit<PriceRecord, "id">;

export interface UsageAggregateQuery {
  /** Inclusive lower bound on `finishedAt`; buckets start here. */
  since: number;
  /** Exclusive upper bound on `finishedAt`. */
  until: number;
  /** Bucket width in ms (a whole number above 0): a record falls in the bucket `since + k * bucketMs` it finished in. */
  bucketMs: number;
  /** Only these apps (all when absent). */
  appIds?: readonly string[];
  keyId?: string;
  tenant?: string;
  /** Sum each key's records apart (`UsageAggregate.keyId` set); otherwise keys are summed together. */
  byKey?: boolean;
}

export interface UsageAggregate {
  /** Unix ms at which the row's bucket starts. */
  bucketStart: number;
  appId: string;
  endpoint: string;
  /** The key, with `byKey`; null otherwise (and for records without a key). */
  keyId: string | null;
  /** The price in effect when the records finished; null: none was set (the default applies). */
  priceId: number | null;
  /** Every record, whatever its state. */
  requests: number;
  /** Records that are billed. */
  billedRequests: number;
  /** Billable units of the billed records. */
  billedUnits: number;
  /** Run time of the billed records, ms (what a `compute_second` price bills). */
  billedRunMs: number;
  /** Run time of every record, ms. */
  runMs: number;
}
