/**
 * Result reuse at submit (docs/result-reuse.md): a request of an app that declares its results
 * reusable is keyed by what it asks (result-key.ts); the store says who holds the key
 * (Store.takeResultKey). A finished result is copied into the new request at once (HIT); an
 * identical request still queued or running is joined (JOINED): the new request waits, RUNNING under
 * this gateway's lease, and ends as its leader ends. Otherwise the request runs and holds the key
 * (MISS).
 *
 * A joined request whose leader is cancelled goes back to the queue and runs itself; one whose
 * gateway dies (its lease expires, or the restart recovers it) too. So joining never loses a request.
 * @module
 */
import type { AppManifest, CacheStatus, RequestRecord } from "../core/types.js";
import { isTerminal } from "../core/types.js";
import { originsOf, ownFileKey } from "../storage/own-files.js";
import type { StorageDriver } from "../storage/storage.js";
import { CANCELLED_BY_CLIENT } from "../store/rows.js";
import type { NewRequest, Store } from "../store/store.js";
import { appRevision } from "./app-revision.js";
import type { CacheMode } from "./cache-mode.js";
import { httpUrlsIn } from "./http-urls.js";
import { resultKeyOf, type FetchForKey } from "./result-key.js";

export interface Reused {
  record: RequestRecord;
  queuePosition: number | null;
  /** Null when the request did not use the cache (mode off). */
  cacheStatus: CacheStatus | null;
  /** Why a BYPASS was not kept. */
  bypassReason?: string;
}

export interface ResultReuseDeps {
  store: Store;
  storage: StorageDriver | undefined;
  /** Origins this server's files are served on, besides each request's own (file keys of inputs). */
  ownOrigins: readonly string[];
  /** Fetches another server's input file for its content; without it such inputs are not keyed. */
  fetchForKey?: FetchForKey | undefined;
  leaseMs: number;
  /** The plain durable submit. */
  submit: (request: NewRequest) => Promise<{ record: RequestRecord; queuePosition: number | null }>;
  waitForTerminal: (requestId: string, signal: AbortSignal) => Promise<RequestRecord>;
  /** A request ended: events, metrics, webhooks. */
  finished: (record: RequestRecord) => void;
  /** A request went (back) into its app's queue. */
  queued: (record: RequestRecord) => void;
  logger?: { warn: (obj: object, msg?: string) => void } | undefined;
}

const JOIN_OWNER_PREFIX = "join:";
/**
 * A key whose request is not written this long after it was taken is free again (its submit failed
 * or its gateway died); a request joined to such a one goes back to the queue after as long.
 */
const UNWRITTEN_LEADER_MS = 30_000;

/** The lease owner of a request joined to `leaderId`. */
export function joinOwnerOf(leaderId: string): string {
  return `${JOIN_OWNER_PREFIX}${leaderId}`;
}

export class ResultReuse {
  readonly #deps: ResultReuseDeps;
  readonly #revisions = new WeakMap<AppManifest, string>();
  /** Joined requests this gateway waits on, by id: how to stop waiting. */
  readonly #joins = new Map<string, AbortController>();

  constructor(deps: ResultReuseDeps) {
    this.#deps = deps;
  }

  /** Submits `request` of `app`, reusing a result as `mode` allows. */
  async submit(app: AppManifest, request: NewRequest, mode: CacheMode): Promise<Reused> {
    const deps = this.#deps;
    if (mode === "off") return { ...(await deps.submit(request)), cacheStatus: null };
    const keyed = await resultKeyOf(
      { app: { ...app, revision: this.revisionOf(app) }, endpoint: request.endpoint, input: request.input, baseUrl: request.baseUrl, tenant: request.tenant ?? "" },
      deps.storage,
      deps.ownOrigins,
      deps.fetchForKey,
    );
    if (keyed.key === null) return { ...(await deps.submit(request)), cacheStatus: "BYPASS", bypassReason: keyed.reason };
    const now = Date.now();
    const needUntil = request.outputTtlSeconds ? now + request.outputTtlSeconds * 1000 : null;
    let refresh = mode === "refresh";
    for (;;) {
      const outcome = await deps.store.takeResultKey({ key: keyed.key, appId: app.id, requestId: request.id, now, refresh, needUntil, staleBefore: now - UNWRITTEN_LEADER_MS });
      if (outcome.kind === "taken") return { ...(await deps.submit(request)), cacheStatus: "MISS" };
      if (outcome.kind === "hit") {
        // Its files may have been deleted or swept (an operator-wide lifetime): then run again.
        if (!(await this.#filesLive(outcome.source))) {
          refresh = true;
          continue;
        }
        const record = await deps.store.submitReused(request, { kind: "hit", source: outcome.source });
        deps.finished(record);
        return { record, queuePosition: null, cacheStatus: "HIT" };
      }
      const owner = joinOwnerOf(outcome.leaderId);
      const record = await deps.store.submitReused(request, { kind: "join", leaderId: outcome.leaderId, owner, leaseExpiresAt: Date.now() + deps.leaseMs });
      this.#follow(record, outcome.leaderId, owner);
      return { record, queuePosition: null, cacheStatus: "JOINED" };
    }
  }

  /** The app's revision (app-revision.ts), computed once per manifest. */
  revisionOf(app: AppManifest): string {
    let revision = this.#revisions.get(app);
    if (revision === undefined) {
      revision = app.revision ?? appRevision(app);
      this.#revisions.set(app, revision);
    }
    return revision;
  }

  /** Whether this gateway waits on `requestId` as a joined request. */
  joins(requestId: string): boolean {
    return this.#joins.has(requestId);
  }

  /** The client cancelled a joined request: it ends now (its leader runs on for the others). */
  async cancelJoined(record: RequestRecord): Promise<RequestRecord | null> {
    this.#joins.get(record.id)?.abort();
    const ended = await this.#deps.store.finish(record.id, CANCELLED_BY_CLIENT, { owner: record.leaseOwner ?? "", attempt: record.attempt });
    if (ended) this.#deps.finished(ended);
    return ended;
  }

  /** Stops waiting (the gateway stops): the joined requests' leases expire and they run elsewhere or after the restart. */
  stop(): void {
    for (const stop of this.#joins.values()) stop.abort();
    this.#joins.clear();
  }

  #follow(follower: RequestRecord, leaderId: string, owner: string): void {
    const deps = this.#deps;
    const stop = new AbortController();
    this.#joins.set(follower.id, stop);
    const renew = setInterval(() => void deps.store.heartbeat(follower.id, owner, deps.leaseMs).catch(() => undefined), Math.max(50, Math.floor(deps.leaseMs / 3)));
    renew.unref();
    const guard = { owner, attempt: follower.attempt };
    /** Back to the queue, at its place and without using an attempt: it runs itself. */
    const runItself = async (): Promise<void> => {
      const next = await deps.store.release(follower.id, guard);
      if (next) deps.queued(next);
    };
    // A leader still unwritten by now never will be (its submit failed): stop waiting for it.
    const unwritten = setTimeout(() => {
      void deps.store.get(leaderId).then(async (leader) => {
        if (leader || stop.signal.aborted) return;
        stop.abort();
        await runItself();
      }).catch(() => undefined);
    }, UNWRITTEN_LEADER_MS);
    unwritten.unref();
    const end = async (leader: RequestRecord): Promise<void> => {
      if (stop.signal.aborted) return;
      const current = await deps.store.get(follower.id);
      if (!current || isTerminal(current.state)) return;
      if (current.cancelRequested) {
        const ended = await deps.store.finish(follower.id, CANCELLED_BY_CLIENT, guard);
        if (ended) deps.finished(ended);
        return;
      }
      if (leader.state === "CANCELLED") {
        // Cancelled by its own client: this request still wants its result.
        await runItself();
        return;
      }
      const ended = await deps.store.finish(
        follower.id,
        {
          state: leader.state === "SUCCEEDED" ? "SUCCEEDED" : "FAILED",
          output: leader.output,
          statusCode: leader.statusCode ?? (leader.state === "SUCCEEDED" ? 200 : 500),
          error: leader.error,
          errorType: leader.errorType,
          billableUnits: leader.billableUnits,
        },
        guard,
      );
      if (ended) deps.finished(ended);
    };
    deps
      .waitForTerminal(leaderId, stop.signal)
      .then(end)
      .catch((err: unknown) => {
        if (!stop.signal.aborted) deps.logger?.warn({ err, request: follower.id, leader: leaderId }, "a joined request could not follow its leader");
      })
      .finally(() => {
        clearInterval(renew);
        clearTimeout(unwritten);
        this.#joins.delete(follower.id);
      });
  }

  /** Whether every file of this server that `record`'s output names is still there. */
  async #filesLive(record: RequestRecord): Promise<boolean> {
    const storage = this.#deps.storage;
    if (!storage) return true;
    const origins = originsOf([record.baseUrl, ...this.#deps.ownOrigins]);
    for (const url of httpUrlsIn(record.output)) {
      const key = ownFileKey(url, origins);
      if (key !== null && (await storage.head(key).catch(() => null)) === null) return false;
    }
    return true;
  }
}
