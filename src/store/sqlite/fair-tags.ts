/**
 * Start-time fair queueing for the SQLite driver (docs/fair-share.md), kept in memory: the queue's
 * clock (the latest start tag handed to a runner) and each tenant's finish tag (where its next request
 * starts). A submit then costs no statement beyond its insert. The state is rebuilt from the table
 * the first time a queue or a tenant is seen, so a restart carries on where the file left off: the
 * clock as the claim trigger keeps it in queue_counts, a tenant's finish tag from its queued ones (one with none queued
 * starts at the clock, which is where the stored finish tag would put it, give or take one stride).
 *
 * One gateway process owns a database file (several gateways share PostgreSQL); another process
 * writing the same file would see its own clock and tags, which orders fairly within each process.
 * @module
 */
import type Database from "better-sqlite3";
import type { RequestRow } from "../rows.js";

interface QueueClock {
  /** The latest start tag handed to a runner. */
  clock: number;
  /** The largest tag handed out: a new request tagged at or past it is behind every queued one. */
  highest: number;
  /** Each tenant's finish tag; absent: not read from the table yet. */
  finish: Map<string, number>;
}

export interface FairTag {
  tag: number;
  /** Behind every queued request of its queue (its position then follows from the queue's length). */
  atTail: boolean;
}

export class FairTags {
  /** Each app's queues, by priority rank (0 normal, 1 low). */
  readonly #queues = new Map<string, QueueClock[]>();
  readonly #storedClock: Database.Statement<[string, number], { tag: number | null }>;
  readonly #queuedMax: Database.Statement<[string, number], { tag: number | null }>;
  readonly #tenantQueuedMax: Database.Statement<[string, number, string], { tag: number | null }>;
  readonly #queuedOf: (tenant: string) => number;

  /** `queuedOf` says how many requests a tenant has queued now, over all queues (live-counts.ts). */
  constructor(db: Database.Database, queuedOf: (tenant: string) => number) {
    this.#queuedOf = queuedOf;
    // Read once per queue: the clock the claim trigger keeps (schema version 10).
    this.#storedClock = db.prepare(`SELECT clock AS tag FROM queue_counts WHERE app_id = ? AND priority_rank = ?`);
    this.#queuedMax = db.prepare(`SELECT max(fair_tag) AS tag FROM requests WHERE app_id = ? AND state = 'QUEUED' AND priority_rank = ?`);
    // Once per tenant and queue, and only for a tenant with requests queued: on the claim index.
    this.#tenantQueuedMax = db.prepare(`
      SELECT max(fair_tag) AS tag FROM requests WHERE app_id = ? AND state = 'QUEUED' AND priority_rank = ? AND tenant = ?`);
  }

  /** The start tag of a new request of `tenant`, moving the tenant's finish tag on by `stride`. */
  next(appId: string, rank: number, tenant: string, stride: number): FairTag {
    const queue = this.#queue(appId, rank);
    let finish = queue.finish.get(tenant);
    if (finish === undefined) {
      const queued = this.#queuedOf(tenant) > 0 ? this.#tenantQueuedMax.get(appId, rank, tenant)?.tag : null;
      finish = queued === null || queued === undefined ? queue.clock : queued + stride;
    }
    const tag = Math.max(queue.clock, finish);
    queue.finish.set(tenant, tag + stride);
    const atTail = tag >= queue.highest;
    queue.highest = Math.max(queue.highest, tag);
    return { tag, atTail };
  }

  /** Requests handed to runners move their queues' clocks on. */
  claimed(rows: readonly Pick<RequestRow, "app_id" | "priority_rank" | "fair_tag">[]): void {
    for (const row of rows) {
      const queue = this.#queue(row.app_id, row.priority_rank);
      if (row.fair_tag > queue.clock) queue.clock = row.fair_tag;
      if (row.fair_tag > queue.highest) queue.highest = row.fair_tag;
    }
  }

  #queue(appId: string, rank: number): QueueClock {
    let ranks = this.#queues.get(appId);
    if (!ranks) {
      ranks = [];
      this.#queues.set(appId, ranks);
    }
    let queue = ranks[rank];
    if (!queue) {
      const clock = this.#storedClock.get(appId, rank)?.tag ?? 0;
      queue = { clock, highest: Math.max(clock, this.#queuedMax.get(appId, rank)?.tag ?? 0), finish: new Map() };
      ranks[rank] = queue;
    }
    return queue;
  }
}
