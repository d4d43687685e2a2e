/**
 * How many requests each tenant and each key has queued and running, kept in memory for the SQLite
 * driver: the per-tenant and per-key limits (`max_queued`, `max_concurrency`, docs/fair-share.md)
 * read them. Indexes on the table answered the same question, but a busy gateway paid for them on
 * every submit and every state change (about 15 % of its CPU per request, bench/README.md), while
 * the question is only asked once a limit is set.
 *
 * The counts are read from the table when the store opens (from the indexes of queued and running
 * rows, so in time proportional to the live requests, not the history), then moved by every write
 * that changes a request's state, in the same group-commit write: a write that is rolled back takes
 * its moves back with it (GroupCommit.onRollback). As with the fair-share tags, one process owns a
 * database file; several gateways share PostgreSQL, whose driver counts in SQL.
 * @module
 */
import type Database from "better-sqlite3";
import type { RequestRow } from "../rows.js";

export type LiveState = "QUEUED" | "RUNNING";

interface Counts {
  QUEUED: number;
  RUNNING: number;
}

type Owned = Pick<RequestRow, "tenant" | "key_id">;

export class LiveCounts {
  readonly #tenants = new Map<string, Counts>();
  readonly #keys = new Map<string, Counts>();
  readonly #onRollback: (undo: () => void) => void;

  /** `onRollback` registers how to undo a move if the write making it is rolled back. */
  constructor(db: Database.Database, onRollback: (undo: () => void) => void) {
    this.#onRollback = onRollback;
    // Running rows through their partial lease index, queued ones through the claim index of each
    // app with any queued (queue_counts): neither reads a finished request.
    const running = db.prepare<[], { tenant: string; key_id: string | null; n: number }>(`
      SELECT tenant, key_id, COUNT(*) AS n FROM requests WHERE state = 'RUNNING' GROUP BY tenant, key_id`);
    const queued = db.prepare<[], { tenant: string; key_id: string | null; n: number }>(`
      SELECT r.tenant, r.key_id, COUNT(*) AS n
      FROM (SELECT DISTINCT app_id FROM queue_counts WHERE queued > 0) AS apps
      CROSS JOIN requests AS r ON r.app_id = apps.app_id AND r.state = 'QUEUED'
      GROUP BY r.tenant, r.key_id`);
    for (const row of running.all()) this.#add(row, "RUNNING", row.n);
    for (const row of queued.all()) this.#add(row, "QUEUED", row.n);
  }

  /** How many requests of a tenant or a key are in `state` now. */
  count(owner: { tenant: string } | { keyId: string }, state: LiveState): number {
    const counts = "tenant" in owner ? this.#tenants.get(owner.tenant) : this.#keys.get(owner.keyId);
    return counts?.[state] ?? 0;
  }

  /** A request went from `from` to `to` (null: not live, i.e. new or finished), inside a write. */
  moved(row: Owned, from: LiveState | null, to: LiveState | null): void {
    if (from === to) return;
    if (from) this.#add(row, from, -1);
    if (to) this.#add(row, to, 1);
    this.#onRollback(() => {
      if (to) this.#add(row, to, -1);
      if (from) this.#add(row, from, 1);
    });
  }

  #add(row: Owned, state: LiveState, delta: number): void {
    bump(this.#tenants, row.tenant, state, delta);
    if (row.key_id !== null) bump(this.#keys, row.key_id, state, delta);
  }
}

/** Moves one count, forgetting an owner with nothing live so that the maps stay as small as the live set. */
function bump(map: Map<string, Counts>, owner: string, state: LiveState, delta: number): void {
  let counts = map.get(owner);
  if (!counts) {
    counts = { QUEUED: 0, RUNNING: 0 };
    map.set(owner, counts);
  }
  counts[state] += delta;
  if (counts.QUEUED <= 0 && counts.RUNNING <= 0) map.delete(owner);
}
