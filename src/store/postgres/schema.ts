/**
 * The PostgreSQL schema as an ordered list of migrations, recorded in `darkroom_migrations`.
 * Migrations are append-only: once released, a migration's SQL never changes; a change to the schema
 * is a new migration at the end.
 *
 * Column choices that differ from the SQLite schema, and why:
 * - JSON (`input`, `output`) is `text`, not `jsonb`: the exact text written is the text read back
 *   (jsonb reorders keys, drops duplicate keys and refuses `\u0000` in strings), and megabyte inputs
 *   are not parsed by the server on every insert.
 * - No queue counter table: counters updated by every submit are one hot row per app that serializes
 *   gateways; queue positions are counted on a partial index of queued requests instead.
 * - Log indexes come from `request_log_counts`, whose upsert serializes appenders of one request only.
 * @module
 */
import type pg from "pg";

interface Migration {
  version: number;
  sql: string;
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE requests (
        -- Breaks created_at ties in claim order; an identity never hands out a value twice.
        seq                bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id                 text    NOT NULL UNIQUE,
        app_id             text    NOT NULL,
        endpoint           text    NOT NULL,
        input              text    NOT NULL, -- JSON
        state              text    NOT NULL CHECK (state IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
        priority           text    NOT NULL CHECK (priority IN ('normal', 'low')),
        priority_rank      smallint NOT NULL CHECK (priority_rank = CASE priority WHEN 'normal' THEN 0 ELSE 1 END),
        mode               text    NOT NULL CHECK (mode IN ('queue', 'sync', 'stream')),
        created_at         bigint  NOT NULL,
        started_at         bigint,
        finished_at        bigint,
        start_deadline     bigint,
        attempt            integer NOT NULL DEFAULT 1,
        max_attempts       integer NOT NULL,
        lease_owner        text,
        lease_expires_at   bigint,
        cancel_requested   boolean NOT NULL DEFAULT false,
        webhook_url        text,
        key_id             text,
        base_url           text    NOT NULL,
        output             text, -- JSON, NULL when there is none
        status_code        integer,
        error              text,
        error_type         text,
        billable_units     double precision,
        output_ttl_seconds integer
      );

      -- Claims and queue positions walk this index in claim order within one app's queue. Partial, so
      -- it holds only the live queue however many finished requests the table keeps.
      CREATE INDEX requests_queue_order ON requests (app_id, priority_rank, created_at, seq) WHERE state = 'QUEUED';
      CREATE INDEX requests_created ON requests (created_at, seq);
      CREATE INDEX requests_app_created ON requests (app_id, created_at, seq);
      CREATE INDEX requests_key_created ON requests (key_id, created_at) WHERE key_id IS NOT NULL;
      CREATE INDEX requests_running_lease ON requests (lease_expires_at) WHERE state = 'RUNNING';
      CREATE INDEX requests_queued_deadline ON requests (start_deadline)
        WHERE state = 'QUEUED' AND start_deadline IS NOT NULL;

      CREATE TABLE request_logs (
        request_id text    NOT NULL,
        idx        integer NOT NULL, -- 0-based position within the request's logs
        message    text    NOT NULL,
        level      text    NOT NULL,
        source     text    NOT NULL,
        timestamp  text    NOT NULL,
        PRIMARY KEY (request_id, idx)
      );
      CREATE TABLE request_log_counts (
        request_id text    PRIMARY KEY,
        count      integer NOT NULL
      );

      CREATE TABLE api_keys (
        id           text   PRIMARY KEY,
        secret_hash  text   NOT NULL,
        name         text   NOT NULL,
        scope        text   NOT NULL CHECK (scope IN ('admin', 'api')),
        created_at   bigint NOT NULL,
        revoked_at   bigint,
        last_used_at bigint
      );

      CREATE TABLE usage (
        -- One row per request: recording a request's usage again replaces the row.
        request_id     text   PRIMARY KEY,
        key_id         text,
        app_id         text   NOT NULL,
        endpoint       text   NOT NULL,
        state          text   NOT NULL,
        queue_ms       bigint NOT NULL,
        run_ms         bigint NOT NULL,
        billable_units double precision,
        finished_at    bigint NOT NULL
      );
      CREATE INDEX usage_finished ON usage (finished_at);
      CREATE INDEX usage_app_finished ON usage (app_id, finished_at);
      CREATE INDEX usage_key_finished ON usage (key_id, finished_at) WHERE key_id IS NOT NULL;

      CREATE TABLE webhooks (
        id              bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request_id      text    NOT NULL,
        url             text    NOT NULL,
        body            text    NOT NULL,
        attempts        integer NOT NULL DEFAULT 0,
        next_attempt_at bigint  NOT NULL,
        state           text    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        created_at      bigint  NOT NULL
      );
      CREATE INDEX webhooks_request ON webhooks (request_id, id);
      CREATE INDEX webhooks_due ON webhooks (next_attempt_at) WHERE state = 'pending';

      CREATE TABLE webhook_attempts (
        seq         bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        webhook_id  bigint  NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
        request_id  text    NOT NULL,
        attempt     integer NOT NULL,
        at          bigint  NOT NULL,
        status      integer,
        ok          boolean NOT NULL,
        error       text,
        duration_ms bigint  NOT NULL
      );
      CREATE INDEX webhook_attempts_webhook ON webhook_attempts (webhook_id, attempt, seq);

      -- Bus messages too large for a NOTIFY payload; the notification carries the row id.
      CREATE TABLE bus_spill (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message    text   NOT NULL,
        created_at bigint NOT NULL
      );
      CREATE INDEX bus_spill_created ON bus_spill (created_at);
    `,
  },
  {
    version: 2,
    sql: `
      -- Apps that remote runners described (no gateway loads their module): every gateway on the
      -- store serves them, also while no runner is connected.
      CREATE TABLE remote_apps (
        id         text   PRIMARY KEY,
        manifest   text   NOT NULL,
        updated_at bigint NOT NULL
      );
    `,
  },
  {
    version: 3,
    sql: `
      -- Bytes each API key holds in storage (its storage quota): one entry per stored file, staged
      -- multipart part or reservation of an upload in progress. See Store.reserveStorage.
      CREATE TABLE storage_entries (
        id         text   PRIMARY KEY,
        key_id     text   NOT NULL,
        bytes      bigint NOT NULL CHECK (bytes >= 0),
        upload_id  text,
        expires_at bigint
      );
      CREATE INDEX storage_entries_key_expiry ON storage_entries (key_id, expires_at) WHERE expires_at IS NOT NULL;
      CREATE INDEX storage_entries_upload ON storage_entries (upload_id, key_id) WHERE upload_id IS NOT NULL;

      -- The sum of each key's entries (expired ones included until they are removed), kept by the
      -- trigger below in the same transaction as every change, so a quota check reads one row. Every
      -- transaction that changes a key's entries locks this row first (one key's changes serialize,
      -- different keys never wait on each other).
      CREATE TABLE storage_usage (
        key_id text   PRIMARY KEY,
        bytes  bigint NOT NULL
      );
      CREATE FUNCTION darkroom_storage_entries_count() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
          UPDATE storage_usage SET bytes = bytes - OLD.bytes WHERE key_id = OLD.key_id;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
          INSERT INTO storage_usage (key_id, bytes) VALUES (NEW.key_id, NEW.bytes)
            ON CONFLICT (key_id) DO UPDATE SET bytes = storage_usage.bytes + EXCLUDED.bytes;
        END IF;
        RETURN NULL;
      END
      $fn$;
      CREATE TRIGGER storage_entries_count AFTER INSERT OR DELETE OR UPDATE OF key_id, bytes ON storage_entries
        FOR EACH ROW EXECUTE PROCEDURE darkroom_storage_entries_count();
    `,
  },
  {
    version: 4,
    // Tenants and fair share (docs/fair-share.md).
    sql: `
      ALTER TABLE requests ADD COLUMN tenant text NOT NULL DEFAULT '';
      -- Start tag (start-time fair queueing): claim order within a priority. Requests queued before
      -- this version have 0 and go first, in their old order.
      ALTER TABLE requests ADD COLUMN fair_tag double precision NOT NULL DEFAULT 0;
      DROP INDEX IF EXISTS requests_queue_order;
      CREATE INDEX requests_queue_order ON requests (app_id, priority_rank, fair_tag, created_at, seq) WHERE state = 'QUEUED';
      -- The fair-share clock of an app's priority: the latest start tag handed to a runner.
      CREATE INDEX requests_started_tag ON requests (app_id, priority_rank, fair_tag) WHERE started_at IS NOT NULL;
      -- Limits on queued and running requests per tenant and per key (Store.countLive): live rows only.
      CREATE INDEX requests_tenant_live ON requests (tenant, state) WHERE state IN ('QUEUED', 'RUNNING');
      CREATE INDEX requests_key_live ON requests (key_id, state) WHERE state IN ('QUEUED', 'RUNNING') AND key_id IS NOT NULL;
      -- Each tenant's position in each queue: the start tag of its latest request and where the next
      -- starts. A submit locks its tenant's row until it commits, so one tenant's tags follow commit order.
      CREATE TABLE fair_flows (
        app_id        text             NOT NULL,
        priority_rank smallint         NOT NULL,
        tenant        text             NOT NULL,
        start_tag     double precision NOT NULL,
        finish_tag    double precision NOT NULL,
        PRIMARY KEY (app_id, priority_rank, tenant)
      );

      ALTER TABLE usage ADD COLUMN tenant text NOT NULL DEFAULT '';
      CREATE INDEX usage_tenant_finished ON usage (tenant, finished_at);

      ALTER TABLE api_keys ADD COLUMN tenant text;
      ALTER TABLE api_keys ADD COLUMN limits text NOT NULL DEFAULT '{}';
      -- Claims read the concurrency limits that are set (docs/fair-share.md): an index of just those.
      ALTER TABLE api_keys ADD COLUMN max_concurrency integer
        GENERATED ALWAYS AS (((limits::jsonb ->> 'maxConcurrency')::numeric)::integer) STORED;
      CREATE INDEX api_keys_max_concurrency ON api_keys (id, max_concurrency) WHERE max_concurrency IS NOT NULL;
      CREATE TABLE tenants (
        name            text             PRIMARY KEY,
        weight          double precision NOT NULL CHECK (weight > 0),
        limits          text             NOT NULL DEFAULT '{}', -- JSON
        created_at      bigint           NOT NULL,
        updated_at      bigint           NOT NULL,
        max_concurrency integer GENERATED ALWAYS AS (((limits::jsonb ->> 'maxConcurrency')::numeric)::integer) STORED
      );
      CREATE INDEX tenants_max_concurrency ON tenants (name, max_concurrency) WHERE max_concurrency IS NOT NULL;
    `,
  },
  {
    version: 5,
    // Prices and their history (docs/pricing-and-usage.md).
    sql: `
      -- A price applies from effective_from until a later one of the same endpoint_id: rows are only
      -- ever added, so usage is costed at the price of its time. The unit is checked by the gateway,
      -- not here: a unit added later needs no migration.
      CREATE TABLE prices (
        id             bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        endpoint_id    text             NOT NULL,
        unit           text             NOT NULL,
        unit_price     double precision NOT NULL CHECK (unit_price >= 0),
        currency       text             NOT NULL,
        effective_from bigint           NOT NULL,
        source         text             NOT NULL CHECK (source IN ('api', 'file'))
      );
      -- The price in effect at a time: the last entry at or before it (Store.aggregateUsage).
      CREATE INDEX prices_endpoint_effective ON prices (endpoint_id, effective_from, id);
    `,
  },
  {
    version: 6,
    // Fair-share tags computed by the submit's own statement (postgres-store.ts FAIR_TAG): a
    // tenant's latest live tag is read from the requests, so no row per tenant is locked and moved on.
    sql: `
      CREATE INDEX requests_tenant_tag ON requests (app_id, priority_rank, tenant, fair_tag) WHERE state IN ('QUEUED', 'RUNNING');
      DROP TABLE fair_flows;
    `,
  },
  {
    version: 7,
    // Idempotency keys of submits (src/gateway/idempotency.ts), per API key, kept 24 h.
    sql: `
      CREATE TABLE idempotency_keys (
        key_id      text   NOT NULL,
        idem_key    text   NOT NULL,
        fingerprint text   NOT NULL,
        request_id  text   NOT NULL,
        created_at  bigint NOT NULL,
        expires_at  bigint NOT NULL,
        PRIMARY KEY (key_id, idem_key)
      );
      CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
    `,
  },
  {
    version: 8,
    // Registered workflows (src/workflows/document.ts), their documents kept as given.
    sql: `
      CREATE TABLE workflows (
        id         text   PRIMARY KEY,
        document   text   NOT NULL,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL
      );
    `,
  },
  {
    version: 9,
    // Result reuse (src/reuse/), as in the SQLite schema's version 9.
    sql: `
      ALTER TABLE requests ADD COLUMN cache text CHECK (cache IN ('HIT', 'JOINED'));
      ALTER TABLE requests ADD COLUMN reused_from text;
      ALTER TABLE usage ADD COLUMN cache text;
      CREATE TABLE result_cache (
        cache_key  text   PRIMARY KEY,
        request_id text   NOT NULL,
        app_id     text   NOT NULL,
        created_at bigint NOT NULL
      );
      ALTER TABLE webhooks ADD COLUMN scheme text NOT NULL DEFAULT 'fal';
      CREATE TABLE prediction_webhooks (
        request_id text   PRIMARY KEY,
        events     text   NOT NULL,
        tenant     text   NOT NULL,
        created_at bigint NOT NULL
      );
      CREATE TABLE runners (
        id          text   PRIMARY KEY,
        app_id      text   NOT NULL,
        description text   NOT NULL,
        started_at  bigint NOT NULL
      );
    `,
  },
];

export const LATEST_SCHEMA_VERSION: number = MIGRATIONS.reduce((latest, m) => Math.max(latest, m.version), 0);

/**
 * Every migrating process takes this transaction-scoped advisory lock first, so two gateways starting
 * at once apply each migration once: the second waits, then finds the versions already recorded.
 * The value is arbitrary; it only has to be the same in every Darkroom build.
 */
const MIGRATION_LOCK_KEY = 0x6461726b; // "dark"

/**
 * Brings the tables up to {@link LATEST_SCHEMA_VERSION} in one transaction: a failure part-way leaves
 * the database as it was. `schema`, when given, is the schema on the connection's search path; it is
 * created if missing.
 */
export async function migrate(client: pg.ClientBase, schema: string | null): Promise<void> {
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY]);
    // Looked up first: CREATE SCHEMA IF NOT EXISTS still needs the CREATE privilege on the database,
    // which a managed database's application role often lacks even when the schema exists.
    if (schema !== null) {
      const exists = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema]);
      if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${client.escapeIdentifier(schema)}`);
    }
    await client.query(`
      CREATE TABLE IF NOT EXISTS darkroom_migrations (
        version    integer PRIMARY KEY,
        applied_at bigint  NOT NULL
      )`);
    const current = await readSchemaVersion(client);
    if (current > LATEST_SCHEMA_VERSION) {
      throw new Error(
        `Database schema version ${current} is newer than this build supports (${LATEST_SCHEMA_VERSION}); upgrade Darkroom`,
      );
    }
    for (const migration of MIGRATIONS) {
      if (migration.version <= current) continue;
      await client.query(migration.sql);
      await client.query("INSERT INTO darkroom_migrations (version, applied_at) VALUES ($1, $2)", [migration.version, Date.now()]);
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    throw error;
  }
}

/** The highest migration applied, 0 for an empty schema. Needs `darkroom_migrations` on the search path. */
export async function readSchemaVersion(client: pg.ClientBase): Promise<number> {
  const result = await client.query<{ version: number | null }>("SELECT max(version) AS version FROM darkroom_migrations");
  return result.rows[0]?.version ?? 0;
}
