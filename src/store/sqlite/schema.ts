/**
 * The SQLite schema as an ordered list of migrations. The version reached is kept in the database
 * header (`PRAGMA user_version`), so upgrading is: run every migration above it, in order.
 * Migrations are append-only: once released, a migration's SQL never changes; a change to the schema
 * is a new migration at the end.
 * @module
 */
import type Database from "better-sqlite3";

interface Migration {
  version: number;
  sql: string;
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE requests (
        -- AUTOINCREMENT so a sequence number is never reused: it breaks created_at ties in claim
        -- order deterministically, also after deletions.
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,
        id               TEXT    NOT NULL UNIQUE,
        app_id           TEXT    NOT NULL,
        endpoint         TEXT    NOT NULL,
        input            TEXT    NOT NULL, -- JSON
        state            TEXT    NOT NULL CHECK (state IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
        priority         TEXT    NOT NULL CHECK (priority IN ('normal', 'low')),
        -- Derived from priority so that the claim index can sort by it. A plain column, filled by the
        -- insert and checked against priority here, because an index on a VIRTUAL generated column is
        -- not covering: counting queue positions would then read every row behind the index entry.
        priority_rank    INTEGER NOT NULL CHECK (priority_rank = CASE priority WHEN 'normal' THEN 0 ELSE 1 END),
        mode             TEXT    NOT NULL CHECK (mode IN ('queue', 'sync', 'stream')),
        created_at       INTEGER NOT NULL,
        started_at       INTEGER,
        finished_at      INTEGER,
        start_deadline   INTEGER,
        attempt          INTEGER NOT NULL DEFAULT 1,
        max_attempts     INTEGER NOT NULL,
        lease_owner      TEXT,
        lease_expires_at INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        webhook_url      TEXT,
        key_id           TEXT,
        base_url         TEXT    NOT NULL,
        output           TEXT, -- JSON, NULL when there is none
        status_code      INTEGER,
        error            TEXT,
        error_type       TEXT,
        billable_units   REAL,
        output_ttl_seconds INTEGER
      );

      -- Claim and queue position walk this index in claim order within one app's queue.
      CREATE INDEX requests_claim_order ON requests (app_id, state, priority_rank, created_at, seq);
      CREATE INDEX requests_created ON requests (created_at, seq);
      CREATE INDEX requests_key_created ON requests (key_id, created_at) WHERE key_id IS NOT NULL;
      -- The reapers poll these often; partial indexes keep them small (only live requests).
      CREATE INDEX requests_running_lease ON requests (lease_expires_at) WHERE state = 'RUNNING';
      CREATE INDEX requests_queued_deadline ON requests (start_deadline)
        WHERE state = 'QUEUED' AND start_deadline IS NOT NULL;

      -- Queued requests per app and priority, kept by triggers in the same transaction as every state
      -- change. Counting index entries is linear in the queue's length; these counts make queue depth
      -- and the position of a request near either end of the queue cheap (see queuePosition).
      CREATE TABLE queue_counts (
        app_id        TEXT    NOT NULL,
        priority_rank INTEGER NOT NULL,
        queued        INTEGER NOT NULL,
        PRIMARY KEY (app_id, priority_rank)
      ) WITHOUT ROWID;
      CREATE TRIGGER queue_counts_insert AFTER INSERT ON requests WHEN NEW.state = 'QUEUED' BEGIN
        INSERT INTO queue_counts (app_id, priority_rank, queued) VALUES (NEW.app_id, NEW.priority_rank, 1)
          ON CONFLICT (app_id, priority_rank) DO UPDATE SET queued = queued + 1;
      END;
      CREATE TRIGGER queue_counts_leave AFTER UPDATE OF state ON requests
        WHEN OLD.state = 'QUEUED' AND NEW.state <> 'QUEUED' BEGIN
        UPDATE queue_counts SET queued = queued - 1 WHERE app_id = OLD.app_id AND priority_rank = OLD.priority_rank;
      END;
      CREATE TRIGGER queue_counts_enter AFTER UPDATE OF state ON requests
        WHEN OLD.state <> 'QUEUED' AND NEW.state = 'QUEUED' BEGIN
        INSERT INTO queue_counts (app_id, priority_rank, queued) VALUES (NEW.app_id, NEW.priority_rank, 1)
          ON CONFLICT (app_id, priority_rank) DO UPDATE SET queued = queued + 1;
      END;
      CREATE TRIGGER queue_counts_delete AFTER DELETE ON requests WHEN OLD.state = 'QUEUED' BEGIN
        UPDATE queue_counts SET queued = queued - 1 WHERE app_id = OLD.app_id AND priority_rank = OLD.priority_rank;
      END;

      CREATE TABLE request_logs (
        request_id TEXT    NOT NULL,
        idx        INTEGER NOT NULL, -- 0-based position within the request's logs
        message    TEXT    NOT NULL,
        level      TEXT    NOT NULL,
        source     TEXT    NOT NULL,
        timestamp  TEXT    NOT NULL,
        PRIMARY KEY (request_id, idx)
      ) WITHOUT ROWID;

      CREATE TABLE api_keys (
        id           TEXT    PRIMARY KEY,
        secret_hash  TEXT    NOT NULL,
        name         TEXT    NOT NULL,
        scope        TEXT    NOT NULL CHECK (scope IN ('admin', 'api')),
        created_at   INTEGER NOT NULL,
        revoked_at   INTEGER,
        last_used_at INTEGER
      );

      CREATE TABLE usage (
        -- One row per request: recording a request's usage again replaces the row instead of
        -- counting it twice.
        request_id     TEXT    PRIMARY KEY,
        key_id         TEXT,
        app_id         TEXT    NOT NULL,
        endpoint       TEXT    NOT NULL,
        state          TEXT    NOT NULL,
        queue_ms       INTEGER NOT NULL,
        run_ms         INTEGER NOT NULL,
        billable_units REAL,
        finished_at    INTEGER NOT NULL
      );
      CREATE INDEX usage_finished ON usage (finished_at);
      CREATE INDEX usage_app_finished ON usage (app_id, finished_at);
      CREATE INDEX usage_key_finished ON usage (key_id, finished_at) WHERE key_id IS NOT NULL;

      CREATE TABLE webhooks (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id      TEXT    NOT NULL,
        url             TEXT    NOT NULL,
        body            TEXT    NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        created_at      INTEGER NOT NULL
      );
      CREATE INDEX webhooks_request ON webhooks (request_id, id);
      CREATE INDEX webhooks_due ON webhooks (next_attempt_at) WHERE state = 'pending';

      CREATE TABLE webhook_attempts (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        webhook_id  INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
        request_id  TEXT    NOT NULL,
        attempt     INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        status      INTEGER,
        ok          INTEGER NOT NULL,
        error       TEXT,
        duration_ms INTEGER NOT NULL
      );
      CREATE INDEX webhook_attempts_webhook ON webhook_attempts (webhook_id, attempt, seq);
    `,
  },
  {
    version: 2,
    sql: `
      -- Apps that remote runners described (no gateway loads their module): every gateway on the
      -- store serves them, also while no runner is connected.
      CREATE TABLE remote_apps (
        id         TEXT    PRIMARY KEY,
        manifest   TEXT    NOT NULL, -- JSON
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 3,
    // IF NOT EXISTS throughout: a file whose user_version was set back by hand (or by a test) must
    // still upgrade.
    sql: `
      -- Bytes each API key holds in storage (its storage quota): one entry per stored file, staged
      -- multipart part or reservation of an upload in progress. See Store.reserveStorage.
      CREATE TABLE IF NOT EXISTS storage_entries (
        id         TEXT    PRIMARY KEY,
        key_id     TEXT    NOT NULL,
        bytes      INTEGER NOT NULL CHECK (bytes >= 0),
        upload_id  TEXT,
        expires_at INTEGER
      );
      CREATE INDEX IF NOT EXISTS storage_entries_key_expiry ON storage_entries (key_id, expires_at) WHERE expires_at IS NOT NULL;
      CREATE INDEX IF NOT EXISTS storage_entries_upload ON storage_entries (upload_id, key_id) WHERE upload_id IS NOT NULL;

      -- The sum of each key's entries (expired ones included until they are removed), kept by the
      -- triggers below in the same transaction as every change, so a quota check reads one row.
      CREATE TABLE IF NOT EXISTS storage_usage (
        key_id TEXT    PRIMARY KEY,
        bytes  INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TRIGGER IF NOT EXISTS storage_entries_insert AFTER INSERT ON storage_entries BEGIN
        INSERT INTO storage_usage (key_id, bytes) VALUES (NEW.key_id, NEW.bytes)
          ON CONFLICT (key_id) DO UPDATE SET bytes = bytes + excluded.bytes;
      END;
      CREATE TRIGGER IF NOT EXISTS storage_entries_delete AFTER DELETE ON storage_entries BEGIN
        UPDATE storage_usage SET bytes = bytes - OLD.bytes WHERE key_id = OLD.key_id;
      END;
      CREATE TRIGGER IF NOT EXISTS storage_entries_update AFTER UPDATE OF key_id, bytes ON storage_entries BEGIN
        UPDATE storage_usage SET bytes = bytes - OLD.bytes WHERE key_id = OLD.key_id;
        INSERT INTO storage_usage (key_id, bytes) VALUES (NEW.key_id, NEW.bytes)
          ON CONFLICT (key_id) DO UPDATE SET bytes = bytes + excluded.bytes;
      END;
    `,
  },
  {
    version: 4,
    // Tenants and fair share (docs/fair-share.md).
    sql: `
      ALTER TABLE requests ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
      -- Start tag (start-time fair queueing): claim order within a priority. Requests queued before
      -- this version have 0 and go first, in their old order.
      ALTER TABLE requests ADD COLUMN fair_tag REAL NOT NULL DEFAULT 0;
      DROP INDEX IF EXISTS requests_claim_order;
      CREATE INDEX requests_claim_order ON requests (app_id, state, priority_rank, fair_tag, created_at, seq);
      -- Limits on queued and running requests per tenant and per key (Store.countLive): live rows only.
      CREATE INDEX requests_tenant_live ON requests (tenant, state) WHERE state IN ('QUEUED', 'RUNNING');
      CREATE INDEX requests_key_live ON requests (key_id, state) WHERE state IN ('QUEUED', 'RUNNING') AND key_id IS NOT NULL;

      ALTER TABLE usage ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
      CREATE INDEX usage_tenant_finished ON usage (tenant, finished_at);

      ALTER TABLE api_keys ADD COLUMN tenant TEXT;
      ALTER TABLE api_keys ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
      -- Claims read the concurrency limits that are set (docs/fair-share.md): an index of just those.
      ALTER TABLE api_keys ADD COLUMN max_concurrency INTEGER GENERATED ALWAYS AS (json_extract(limits, '$.maxConcurrency')) VIRTUAL;
      CREATE INDEX api_keys_max_concurrency ON api_keys (id, max_concurrency) WHERE max_concurrency IS NOT NULL;
      CREATE TABLE tenants (
        name            TEXT    PRIMARY KEY,
        weight          REAL    NOT NULL CHECK (weight > 0),
        limits          TEXT    NOT NULL DEFAULT '{}', -- JSON
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        max_concurrency INTEGER GENERATED ALWAYS AS (json_extract(limits, '$.maxConcurrency')) VIRTUAL
      );
      CREATE INDEX tenants_max_concurrency ON tenants (name, max_concurrency) WHERE max_concurrency IS NOT NULL;
    `,
  },
  {
    version: 5,
    // Prices and their history (docs/pricing-and-usage.md). IF NOT EXISTS, as in version 3: a file
    // whose user_version was set back must still upgrade.
    sql: `
      -- A price applies from effective_from until a later one of the same endpoint_id: rows are only
      -- ever added, so usage is costed at the price of its time. The unit is checked by the gateway,
      -- not here: a unit added later needs no migration.
      CREATE TABLE IF NOT EXISTS prices (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        endpoint_id    TEXT    NOT NULL,
        unit           TEXT    NOT NULL,
        unit_price     REAL    NOT NULL CHECK (unit_price >= 0),
        currency       TEXT    NOT NULL,
        effective_from INTEGER NOT NULL,
        source         TEXT    NOT NULL CHECK (source IN ('api', 'file'))
      );
      -- The price in effect at a time: the last entry at or before it (Store.aggregateUsage).
      CREATE INDEX IF NOT EXISTS prices_endpoint_effective ON prices (endpoint_id, effective_from, id);
    `,
  },
  {
    version: 6,
    // The queued and running requests of each tenant and key are counted in memory (live-counts.ts):
    // these two indexes were rewritten on every submit and state change, and cost a busy gateway
    // about 15 % of its CPU per request (bench/README.md).
    sql: `
      DROP INDEX IF EXISTS requests_tenant_live;
      DROP INDEX IF EXISTS requests_key_live;
    `,
  },
  {
    version: 7,
    // Idempotency keys of submits (src/gateway/idempotency.ts), per API key, kept 24 h.
    sql: `
      CREATE TABLE IF NOT EXISTS idempotency_keys (
        key_id      TEXT    NOT NULL,
        idem_key    TEXT    NOT NULL,
        fingerprint TEXT    NOT NULL,
        request_id  TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        PRIMARY KEY (key_id, idem_key)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS idempotency_keys_expiry ON idempotency_keys (expires_at);
    `,
  },
  {
    version: 8,
    // Registered workflows (src/workflows/document.ts), their documents kept as given.
    sql: `
      CREATE TABLE IF NOT EXISTS workflows (
        id         TEXT    PRIMARY KEY,
        document   TEXT    NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 9,
    // Result reuse (src/reuse/): which request holds each result key, on requests and usage whether
    // a result was reused, and what each runner was (reproducibility manifests). The new columns are NULL on every request that is computed, so
    // the hot insert and its claim index do not change.
    sql: `
      ALTER TABLE requests ADD COLUMN cache TEXT CHECK (cache IN ('HIT', 'JOINED'));
      ALTER TABLE requests ADD COLUMN reused_from TEXT;
      ALTER TABLE usage ADD COLUMN cache TEXT;
      CREATE TABLE IF NOT EXISTS result_cache (
        cache_key  TEXT    PRIMARY KEY,
        request_id TEXT    NOT NULL,
        app_id     TEXT    NOT NULL,
        created_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      -- What each runner was (its app's revision, weights, runtime): a request's manifest is its
      -- runner's, found by the lease owner its record keeps.
      -- Webhooks signed otherwise than fal's (src/webhooks/standard-signature.ts), and what a
      -- Replicate prediction asked to hear of (src/gateway/routes/replicate.ts).
      ALTER TABLE webhooks ADD COLUMN scheme TEXT NOT NULL DEFAULT 'fal';
      CREATE TABLE IF NOT EXISTS prediction_webhooks (
        request_id TEXT    PRIMARY KEY,
        events     TEXT    NOT NULL,
        tenant     TEXT    NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS runners (
        id          TEXT    PRIMARY KEY,
        app_id      TEXT    NOT NULL,
        description TEXT    NOT NULL,
        started_at  INTEGER NOT NULL
      );
    `,
  },
  {
    version: 10,
    // The claim index holds queued requests only. Every request used to stay in it for good and
    // moved within it twice more (claimed, finished); now a finish does not touch it, and it stays as
    // small as the queue (bench/README.md, what tenants cost). Each queue's fair-share clock (the
    // largest start tag handed to a runner) had been read from that index after a restart; the
    // trigger that counts a claim keeps it in queue_counts instead. A joined request (result reuse)
    // is not claimed, so it does not move the clock.
    sql: `
      ALTER TABLE queue_counts ADD COLUMN clock REAL NOT NULL DEFAULT 0;
      UPDATE queue_counts SET clock = COALESCE((
        SELECT max(r.fair_tag) FROM requests AS r
        WHERE r.app_id = queue_counts.app_id AND r.priority_rank = queue_counts.priority_rank
          AND r.started_at IS NOT NULL AND r.cache IS NULL), 0);
      DROP TRIGGER queue_counts_leave;
      CREATE TRIGGER queue_counts_leave AFTER UPDATE OF state ON requests
        WHEN OLD.state = 'QUEUED' AND NEW.state <> 'QUEUED' BEGIN
        UPDATE queue_counts
        SET queued = queued - 1,
            clock = CASE WHEN NEW.state = 'RUNNING' AND NEW.cache IS NULL AND NEW.fair_tag > clock THEN NEW.fair_tag ELSE clock END
        WHERE app_id = OLD.app_id AND priority_rank = OLD.priority_rank;
      END;
      DROP INDEX IF EXISTS requests_claim_order;
      CREATE INDEX requests_queue_order ON requests (app_id, priority_rank, fair_tag, created_at, seq) WHERE state = 'QUEUED';
    `,
  },
];

/** The schema version a fully migrated database reports in `PRAGMA user_version`. */
export const LATEST_SCHEMA_VERSION: number = MIGRATIONS.reduce((latest, m) => Math.max(latest, m.version), 0);

export function readSchemaVersion(db: Database.Database): number {
  const version = db.pragma("user_version", { simple: true });
  return typeof version === "number" ? version : 0;
}

/**
 * Brings the schema up to {@link LATEST_SCHEMA_VERSION}. Idempotent. The version is read inside an
 * IMMEDIATE transaction so that two processes opening a fresh file at once cannot both apply the same
 * migration: the second waits for the first's write lock, then sees the new version and does nothing.
 * Each migration and its version bump commit together, so a crash mid-way leaves a consistent version.
 */
export function migrate(db: Database.Database): void {
  const applyPending = db.transaction(() => {
    const current = readSchemaVersion(db);
    if (current > LATEST_SCHEMA_VERSION) {
      throw new Error(
        `Database schema version ${current} is newer than this build supports (${LATEST_SCHEMA_VERSION}); upgrade Darkroom`,
      );
    }
    for (const migration of MIGRATIONS) {
      if (migration.version <= current) continue;
      db.exec(migration.sql);
      // PRAGMA cannot take a bound parameter; the version is a number from this file, not input.
      db.pragma(`user_version = ${migration.version}`);
    }
  });
  applyPending.immediate();
}
