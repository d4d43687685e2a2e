/**
 * The store conformance suite: every {@link Store} driver runs it through its own test file, so all
 * drivers keep the semantics documented in `src/store/store.ts`. Each test gets a fresh store from
 * the factory and uses random app ids, so tests never see each other's data.
 * @module
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import type { RequestLog, RequestRecord } from "../../src/core/types.js";
import type {
  IdempotencyReservation,
  ResultKeyClaim,
  ApiKeyRecord,
  NewPrice,
  NewRequest,
  StorageEntry,
  Store,
  TerminalWrite,
  UsageAggregate,
  UsageAggregateQuery,
  UsageRecord,
  WebhookAttempt,
  WebhookJob,
} from "../../src/store/store.js";
import { billableUnitsOf, isBilled } from "../../src/pricing/billable-units.js";
import { EXHAUSTED, newRequest } from "../helpers/store-requests.js";

/** The tables every store driver's schema has (each driver adds its own bookkeeping tables). */
export const STORE_TABLES: readonly string[] = [
  "api_keys",
  "idempotency_keys",
  "prediction_webhooks",
  "prices",
  "remote_apps",
  "request_logs",
  "requests",
  "result_cache",
  "runners",
  "storage_entries",
  "storage_usage",
  "tenants",
  "usage",
  "webhook_attempts",
  "webhooks",
  "workflows",
];

const LEASE_MS = 30_000;

const SUCCESS: TerminalWrite = {
  state: "SUCCEEDED",
  output: { images: [{ url: "http://localhost/files/a.png", width: 64 }] },
  statusCode: 200,
  error: null,
  errorType: null,
  billableUnits: 1.5,
};

const DEADLINE_EXPIRED: TerminalWrite = {
  state: "FAILED",
  output: null,
  statusCode: 504,
  error: "Request timed out",
  errorType: "request_timeout",
  billableUnits: null,
};

function randomAppId(): string {
  return `app-${randomUUID()}`;
}

function ids(records: readonly { id: string }[]): string[] {
  return records.map((r) => r.id);
}

function webhookIds(jobs: readonly { id: number }[]): number[] {
  return jobs.map((j) => j.id);
}

async function rejects(promise: Promise<unknown>): Promise<void> {
  await assert.rejects(promise);
}

function required<T>(value: T | null | undefined, what: string): T {
  assert.ok(value !== null && value !== undefined, `expected ${what}`);
  return value;
}

export function runStoreConformance(driverName: string, createStore: () => Promise<Store>): void {
  /** Runs `body` against a fresh, migrated store and closes it afterwards. */
  async function withStore(body: (store: Store) => Promise<void>): Promise<void> {
    const store = await createStore();
    try {
      await store.migrate();
      await body(store);
    } finally {
      await store.close();
    }
  }

  async function enqueueAll(store: Store, requests: NewRequest[]): Promise<RequestRecord[]> {
    const records: RequestRecord[] = [];
    // One at a time: the order of enqueue is the order under test.
    for (const request of requests) records.push(await store.enqueue(request));
    return records;
  }

  async function positions(store: Store, requestIds: string[]): Promise<(number | null)[]> {
    return Promise.all(requestIds.map((id) => store.queuePosition(id)));
  }

  describe(`store conformance: ${driverName}`, () => {
    describe("enqueue and get", () => {
      it("round-trips every field of a new request", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const input = {
            prompt: "日本語のプロンプト 🎞️ — «quotes» \"escaped\" \\ back\nslash",
            nested: { deep: { list: [1, 2.5, -3e-7, true, false, null, "x"], empty: {}, emptyList: [] } },
            "": "empty key",
            "ключ": "значение",
          };
          const request = newRequest(appId, {
            endpoint: "image-to-image/fast",
            input,
            priority: "low",
            mode: "stream",
            startDeadline: Date.now() + 60_000,
            maxAttempts: 5,
            webhookUrl: "https://hooks.example.com/fal?x=1&y=ü",
            keyId: "key_123",
            tenant: "team-ü",
            baseUrl: "http://darkroom.local:9000",
            outputTtlSeconds: 3600,
          });
          const before = Date.now();
          const created = await store.enqueue(request);
          const after = Date.now();

          assert.ok(created.createdAt >= before && created.createdAt <= after, "createdAt is the enqueue time");
          const expected: RequestRecord = {
            id: request.id,
            appId,
            endpoint: "image-to-image/fast",
            input,
            state: "QUEUED",
            priority: "low",
            mode: "stream",
            createdAt: created.createdAt,
            startedAt: null,
            finishedAt: null,
            startDeadline: request.startDeadline,
            attempt: 1,
            maxAttempts: 5,
            leaseOwner: null,
            leaseExpiresAt: null,
            cancelRequested: false,
            webhookUrl: "https://hooks.example.com/fal?x=1&y=ü",
            keyId: "key_123",
            tenant: "team-ü",
            baseUrl: "http://darkroom.local:9000",
            output: null,
            statusCode: null,
            error: null,
            errorType: null,
            billableUnits: null,
            outputTtlSeconds: 3600,
            cache: null,
            reusedFrom: null,
          };
          assert.deepEqual(created, expected);
          assert.deepEqual(await store.get(request.id), expected);
        }));

      it("round-trips nulls and non-object inputs", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const inputs: unknown[] = [null, "just a string", 42, [1, "two", { three: 3 }]];
          for (const input of inputs) {
            const request = newRequest(appId, { input, mode: "sync" });
            await store.enqueue(request);
            const got = required(await store.get(request.id), "the record");
            assert.deepEqual(got.input, input);
            assert.equal(got.startDeadline, null);
            assert.equal(got.webhookUrl, null);
            assert.equal(got.keyId, null);
            assert.equal(got.mode, "sync");
          }
        }));

      it("returns null for an unknown id and refuses a duplicate id", () =>
        withStore(async (store) => {
          assert.equal(await store.get(randomUUID()), null);
          const request = newRequest(randomAppId());
          await store.enqueue(request);
          await assert.rejects(store.enqueue(request));
        }));
    });

    describe("claim", () => {
      it("claims several requests at once for one owner, in claim order", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const low = await store.enqueue(newRequest(appId, { priority: "low" }));
          const a = await store.enqueue(newRequest(appId));
          const expired = await store.enqueue(newRequest(appId, { startDeadline: 1 }));
          const b = await store.enqueue(newRequest(appId));
          const c = await store.enqueue(newRequest(appId));
          const other = await store.enqueue(newRequest(randomAppId()));
          const now = Date.now();
          const first = await store.claimMany(appId, "runner-1", LEASE_MS, 3, now);
          assert.deepEqual(ids(first), [a.id, b.id, c.id], "normal before low, FIFO, deadline-expired skipped");
          for (const r of first) {
            assert.equal(r.state, "RUNNING");
            assert.equal(r.leaseOwner, "runner-1");
            assert.equal(r.leaseExpiresAt, now + LEASE_MS);
          }
          assert.deepEqual(ids(await store.claimMany(appId, "runner-2", LEASE_MS, 10, now)), [low.id]);
          assert.deepEqual(await store.claimMany(appId, "runner-2", LEASE_MS, 10, now), []);
          assert.deepEqual(await store.claimMany(appId, "runner-2", LEASE_MS, 0, now), []);
          assert.equal((await store.get(expired.id))?.state, "QUEUED");
          assert.equal((await store.get(other.id))?.state, "QUEUED", "other apps are untouched");
        }));

      it("never hands one request to two concurrent claimMany calls", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          for (let i = 0; i < 30; i++) await store.enqueue(newRequest(appId));
          const results = await Promise.all(Array.from({ length: 8 }, (_, i) => store.claimMany(appId, `runner-${i}`, LEASE_MS, 5)));
          const all = results.flat();
          assert.equal(all.length, 30);
          assert.equal(new Set(ids(all)).size, 30);
        }));

      it("claims only the requests a filter names, or all but those it excludes, by the same rules", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const otherApp = randomAppId();
          const low = await store.enqueue(newRequest(appId, { priority: "low" }));
          const [a, b, c, d, e] = await enqueueAll(store, Array.from({ length: 5 }, () => newRequest(appId)));
          const expired = await store.enqueue(newRequest(appId, { startDeadline: 1 }));
          const other = await store.enqueue(newRequest(otherApp));
          const now = Date.now();

          // `only`: those of the named requests that are claimable, in claim order, up to the limit.
          const named = [e!.id, low.id, expired.id, other.id, "no-such-request", b!.id];
          const first = await store.claimMany(appId, "isolated", LEASE_MS, 2, now, { only: named });
          assert.deepEqual(ids(first), [b!.id, e!.id], "normal before low, FIFO, within the limit");
          for (const r of first) {
            assert.equal(r.state, "RUNNING");
            assert.equal(r.leaseOwner, "isolated");
            assert.equal(r.leaseExpiresAt, now + LEASE_MS);
          }
          assert.deepEqual(ids(await store.claimMany(appId, "isolated", LEASE_MS, 10, now, { only: named })), [low.id], "running, expired and foreign requests are not claimed");
          assert.deepEqual(await store.claimMany(appId, "isolated", LEASE_MS, 10, now, { only: [] }), [], "an empty `only` claims nothing");
          assert.deepEqual(await store.claimMany(appId, "isolated", LEASE_MS, 10, now, { only: [a!.id], except: [a!.id] }), [], "`except` wins over `only`");

          // `except`: the queue in claim order, skipping the excluded requests.
          assert.deepEqual(ids(await store.claimMany(appId, "runner", LEASE_MS, 1, now, { except: [a!.id, c!.id] })), [d!.id]);
          assert.deepEqual(ids(await store.claimMany(appId, "runner", LEASE_MS, 10, now, { except: [a!.id] })), [c!.id]);
          assert.deepEqual(ids(await store.claimMany(appId, "runner", LEASE_MS, 10, now, { except: [] })), [a!.id], "an empty `except` excludes nothing");
          assert.equal((await store.get(expired.id))?.state, "QUEUED");
          assert.equal((await store.get(other.id))?.state, "QUEUED", "other apps are untouched");
        }));

      it("never hands one request to both a filtered and an unfiltered concurrent claim", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const queued = await enqueueAll(store, Array.from({ length: 20 }, () => newRequest(appId)));
          const picked = queued.filter((_, i) => i % 3 === 0).map((r) => r.id);
          const results = await Promise.all([
            store.claimMany(appId, "isolated", LEASE_MS, 20, undefined, { only: picked }),
            ...Array.from({ length: 4 }, (_, i) => store.claimMany(appId, `runner-${i}`, LEASE_MS, 5)),
            store.claimMany(appId, "careful", LEASE_MS, 20, undefined, { except: picked }),
          ]);
          const all = ids(results.flat());
          assert.equal(all.length, 20);
          assert.equal(new Set(all).size, 20);
          for (const id of ids(results[0] ?? [])) assert.ok(picked.includes(id), "the filtered claim took only what it named");
          for (const id of ids(results.at(-1) ?? [])) assert.ok(!picked.includes(id), "the excluding claim took none of the excluded");
        }));

      it("claims normal before low, oldest first within a priority, and only from its app", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const otherApp = randomAppId();
          const [low1, normal1, low2, normal2] = await enqueueAll(store, [
            newRequest(appId, { priority: "low" }),
            newRequest(appId, { priority: "normal" }),
            newRequest(appId, { priority: "low" }),
            newRequest(appId, { priority: "normal" }),
          ]);
          const other = await store.enqueue(newRequest(otherApp));

          const claimed: string[] = [];
          for (;;) {
            const record = await store.claim(appId, "runner-1", LEASE_MS, 1_000);
            if (!record) break;
            claimed.push(record.id);
          }
          assert.deepEqual(claimed, ids([normal1!, normal2!, low1!, low2!]));
          assert.equal((await store.get(other.id))?.state, "QUEUED", "another app's request is untouched");
        }));

      it("sets RUNNING, the lease and the start time on the claimed record", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const created = await store.enqueue(newRequest(appId));
          const claimed = required(await store.claim(appId, "runner-7", 5_000, 123_456), "a claim");
          const expected: RequestRecord = {
            ...created,
            state: "RUNNING",
            leaseOwner: "runner-7",
            leaseExpiresAt: 128_456,
            startedAt: 123_456,
          };
          assert.deepEqual(claimed, expected);
          assert.deepEqual(await store.get(created.id), expected);
          assert.equal(await store.claim(appId, "runner-7", 5_000, 123_456), null, "the queue is empty");
        }));

      it("never hands one request to two concurrent claims", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const created = await enqueueAll(
            store,
            Array.from({ length: 20 }, () => newRequest(appId)),
          );
          const results = await Promise.all(
            Array.from({ length: 50 }, (_, i) => store.claim(appId, `runner-${i}`, LEASE_MS)),
          );
          const won = results.filter((r): r is RequestRecord => r !== null);
          assert.equal(won.length, 20);
          assert.equal(new Set(ids(won)).size, 20, "every claimed request is distinct");
          assert.deepEqual(new Set(ids(won)), new Set(ids(created)));
          for (const [i, result] of results.entries()) {
            if (result) assert.equal(result.leaseOwner, `runner-${i}`, "the record names the claimer that got it");
          }
          const stored = await Promise.all(created.map((r) => store.get(r.id)));
          assert.ok(stored.every((r) => r?.state === "RUNNING"));
        }));

      it("skips requests whose start deadline passed and lists them as expired", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const now = Date.now() + 10_000;
          const [expired, onTheDot, later, noDeadline] = await enqueueAll(store, [
            newRequest(appId, { startDeadline: now - 1 }),
            newRequest(appId, { startDeadline: now }),
            newRequest(appId, { startDeadline: now + 60_000 }),
            newRequest(appId, { startDeadline: null }),
          ]);

          assert.deepEqual(ids(await store.expiredStartDeadlines(now)), [expired!.id]);
          assert.deepEqual(await store.expiredStartDeadlines(now - 1), [], "a deadline equal to now has not passed");

          const claimed: string[] = [];
          for (;;) {
            const record = await store.claim(appId, "runner", LEASE_MS, now);
            if (!record) break;
            claimed.push(record.id);
          }
          assert.deepEqual(claimed, ids([onTheDot!, later!, noDeadline!]));
          assert.equal((await store.get(expired!.id))?.state, "QUEUED", "claim skips it but does not finish it");

          const failed = required(await store.finish(expired!.id, DEADLINE_EXPIRED), "the expiry write");
          assert.equal(failed.state, "FAILED");
          assert.equal(failed.errorType, "request_timeout");
          assert.deepEqual(await store.expiredStartDeadlines(now), []);
        }));
    });

    describe("queue position", () => {
      it("is exact across a long queue, from either end, after cancels and requeues", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const order: { id: string; rank: number }[] = [];
          for (let i = 0; i < 250; i++) {
            const priority = i % 3 === 2 ? "low" : "normal";
            const r = await store.enqueue(newRequest(appId, { priority }));
            order.push({ id: r.id, rank: priority === "normal" ? 0 : 1 });
          }
          for (let i = 5; i < 250; i += 7) assert.equal((await store.cancel(order[i]!.id)).kind, "removed");
          const claimed = await store.claimMany(appId, "runner", LEASE_MS, 10);
          for (const r of claimed.slice(0, 3)) await store.requeue(r.id, { owner: "runner", attempt: 1 }, EXHAUSTED);
          const queued = new Set<string>();
          for (const { id } of order) if ((await store.get(id))?.state === "QUEUED") queued.add(id);
          // Expected: normal before low, then enqueue order (requeued requests keep their place).
          const expected = order.filter((o) => queued.has(o.id)).sort((a, b) => a.rank - b.rank);
          assert.equal((await store.queueDepths()).get(appId), expected.length);
          for (const [position, { id }] of expected.entries()) {
            assert.equal(await store.queuePosition(id), position, `position of request #${order.findIndex((o) => o.id === id)}`);
          }
        }));

      it("is exact with mixed priorities as requests are enqueued, cancelled and claimed", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const [n1, l1, n2, l2, n3] = await enqueueAll(store, [
            newRequest(appId, { priority: "normal" }),
            newRequest(appId, { priority: "low" }),
            newRequest(appId, { priority: "normal" }),
            newRequest(appId, { priority: "low" }),
            newRequest(appId, { priority: "normal" }),
          ]);
          // Another app's queue never counts.
          await enqueueAll(store, [newRequest(randomAppId()), newRequest(randomAppId(), { priority: "low" })]);
          const all = ids([n1!, l1!, n2!, l2!, n3!]);
          assert.deepEqual(await positions(store, all), [0, 3, 1, 4, 2]);

          const n4 = await store.enqueue(newRequest(appId, { priority: "normal" }));
          const l3 = await store.enqueue(newRequest(appId, { priority: "low" }));
          all.push(n4.id, l3.id);
          assert.deepEqual(await positions(store, all), [0, 4, 1, 5, 2, 3, 6]);

          assert.equal((await store.cancel(n2!.id)).kind, "removed");
          assert.deepEqual(await positions(store, all), [0, 3, null, 4, 1, 2, 5]);

          assert.equal((await store.cancel(l1!.id)).kind, "removed");
          assert.deepEqual(await positions(store, all), [0, null, null, 3, 1, 2, 4]);

          assert.equal((await store.claim(appId, "runner", LEASE_MS))?.id, n1!.id);
          assert.deepEqual(await positions(store, all), [null, null, null, 2, 0, 1, 3]);

          assert.equal((await store.claim(appId, "runner", LEASE_MS))?.id, n3!.id);
          assert.equal((await store.claim(appId, "runner", LEASE_MS))?.id, n4.id);
          assert.deepEqual(await positions(store, all), [null, null, null, 0, null, null, 1]);
        }));

      it("is null for an unknown request and for running or finished ones", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          assert.equal(await store.queuePosition(randomUUID()), null);
          const request = await store.enqueue(newRequest(appId));
          assert.equal(await store.queuePosition(request.id), 0);
          const claimed = required(await store.claim(appId, "runner", LEASE_MS), "a claim");
          assert.equal(await store.queuePosition(request.id), null);
          await store.finish(request.id, SUCCESS, { owner: "runner", attempt: claimed.attempt });
          assert.equal(await store.queuePosition(request.id), null);
        }));
    });

    describe("fair share between tenants", () => {
      const flood = (appId: string, tenant: string, n: number, weight?: number): NewRequest[] =>
        Array.from({ length: n }, () => newRequest(appId, { tenant, ...(weight !== undefined ? { weight } : {}) }));

      it("puts one request of a quiet tenant ahead of another tenant's flood", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const a = await enqueueAll(store, flood(appId, "a", 20));
          // Before anything ran, the quiet tenant's request ties with the flood's first and goes after it.
          const early = await store.submit(newRequest(appId, { tenant: "b" }), null);
          assert.equal(early.queuePosition, 1);
          assert.equal(early.record.tenant, "b");
          assert.deepEqual(ids(await store.claimMany(appId, "runner", LEASE_MS, 2)), [a[0]!.id, early.record.id]);
          // Once the flood runs, the next quiet request goes to the head of the queue.
          const later = await store.submit(newRequest(appId, { tenant: "c" }), null);
          assert.equal(later.queuePosition, 0);
          assert.equal(await store.queuePosition(later.record.id), 0);
          assert.equal(await store.queuePosition(a[1]!.id), 1);
          assert.deepEqual(ids(await store.claimMany(appId, "runner", LEASE_MS, 1)), [later.record.id]);
        }));

      it("gives one tenant's concurrent submits distinct places, so a quiet tenant still goes ahead of them", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          // A driver with a connection pool opens its connections first, as a running gateway has.
          await Promise.all(flood(randomAppId(), "warm-up", 20).map((r) => store.submit(r, null)));
          // All at once, as a flooding client's connections arrive: none sees the others committed.
          const flooded = await Promise.all(flood(appId, "a", 40).map((r) => store.submit(r, null)));
          assert.equal(flooded.length, 40);
          const [first] = await store.claimMany(appId, "runner", LEASE_MS, 1);
          assert.ok(first, "the flood's first request runs");
          const quiet = await store.submit(newRequest(appId, { tenant: "b" }), null);
          assert.equal(quiet.queuePosition, 0, "the quiet tenant's request is next, not behind flood requests that tied");
          assert.deepEqual(ids(await store.claimMany(appId, "runner", LEASE_MS, 1)), [quiet.record.id]);
        }));

      it("shares slots in proportion to the tenants' weights", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          // Interleaved, as two busy tenants submit.
          const mixed: NewRequest[] = [];
          for (let i = 0; i < 40; i++) mixed.push(newRequest(appId, { tenant: "heavy", weight: 3 }), newRequest(appId, { tenant: "light", weight: 1 }));
          await enqueueAll(store, mixed);
          const claimed = await store.claimMany(appId, "runner", LEASE_MS, 40);
          assert.equal(claimed.filter((r) => r.tenant === "heavy").length, 30);
          assert.equal(claimed.filter((r) => r.tenant === "light").length, 10);
        }));

      it("gives a tenant that ran alone no debt once others arrive, and an idle one no credit", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          await enqueueAll(store, flood(appId, "busy", 30));
          assert.equal((await store.claimMany(appId, "runner", LEASE_MS, 30)).length, 30);
          // The busy tenant used 30 slots while nobody else waited: it is not made to wait for 30 now.
          const quiet = await enqueueAll(store, flood(appId, "quiet", 5));
          const busy = await store.submit(newRequest(appId, { tenant: "busy" }), null);
          assert.ok((busy.queuePosition ?? 99) <= 2, `busy tenant at position ${busy.queuePosition}`);
          assert.equal(await store.queuePosition(quiet[4]!.id), 5, "the quiet tenant's fifth is behind the busy one's next");
        }));

      it("reports positions that are the claim order, and a requeued request keeps its place", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const requests: NewRequest[] = [];
          for (let i = 0; i < 60; i++) {
            requests.push(newRequest(appId, { tenant: `t${i % 4}`, weight: 1 + (i % 4), priority: i % 7 === 6 ? "low" : "normal" }));
          }
          const queued = await enqueueAll(store, requests.slice(0, 40));
          const running = await store.claimMany(appId, "runner", LEASE_MS, 5);
          for (const r of requests.slice(40)) queued.push((await store.submit(r, null)).record);
          await store.requeue(running[0]!.id, { owner: "runner", attempt: 1 }, EXHAUSTED);
          const waiting = (await Promise.all(queued.map((r) => store.get(r.id)))).filter((r) => r?.state === "QUEUED").map((r) => r!.id);
          const byPosition = new Map<number, string>();
          for (const id of waiting) byPosition.set(required(await store.queuePosition(id), `position of ${id}`), id);
          assert.equal(byPosition.size, waiting.length, "positions are distinct");
          const order: string[] = [];
          for (let i = 0; i < waiting.length; i++) order.push(required(byPosition.get(i), `a request at position ${i}`));
          assert.equal(order[0], running[0]!.id, "the requeued request is first again");
          const claimedOrder = ids(await store.claimMany(appId, "runner", LEASE_MS, waiting.length));
          assert.deepEqual(claimedOrder, order);
        }));

      it("counts a tenant's and a key's queued and running requests across apps, up to a bound", () =>
        withStore(async (store) => {
          const tenant = `t-${randomUUID()}`;
          const keyId = `key_${randomUUID()}`;
          const [first, second] = [randomAppId(), randomAppId()];
          await enqueueAll(store, [
            ...Array.from({ length: 4 }, () => newRequest(first, { tenant, keyId })),
            ...Array.from({ length: 3 }, () => newRequest(second, { tenant })),
            newRequest(second, { tenant: `${tenant}-other`, keyId }),
          ]);
          await store.claimMany(first, "runner", LEASE_MS, 2);
          const done = required((await store.claimMany(second, "runner", LEASE_MS, 1))[0], "a claimed request");
          await store.finish(done.id, SUCCESS, { owner: "runner", attempt: 1 });
          assert.equal(await store.countLive({ tenant }, "QUEUED", 100), 4);
          assert.equal(await store.countLive({ tenant }, "RUNNING", 100), 2);
          assert.equal(await store.countLive({ tenant }, "QUEUED", 3), 3, "stops at the bound");
          assert.equal(await store.countLive({ keyId }, "QUEUED", 100), 3);
          assert.equal(await store.countLive({ keyId }, "RUNNING", 100), 2);
          assert.equal(await store.countLive({ tenant: "nobody" }, "QUEUED", 100), 0);
        }));

      it("keeps the live counts through every way a request moves: retry, release, cancel, finish without a lease, exhaustion", () =>
        withStore(async (store) => {
          const tenant = `t-${randomUUID()}`;
          const keyId = `key_${randomUUID()}`;
          const appId = randomAppId();
          const live = async (): Promise<[number, number, number, number]> => [
            await store.countLive({ tenant }, "QUEUED", 100),
            await store.countLive({ tenant }, "RUNNING", 100),
            await store.countLive({ keyId }, "QUEUED", 100),
            await store.countLive({ keyId }, "RUNNING", 100),
          ];
          const requests = Array.from({ length: 6 }, () => newRequest(appId, { tenant, keyId, maxAttempts: 2 }));
          await enqueueAll(store, requests);
          assert.deepEqual(await live(), [6, 0, 6, 0]);
          const [a, b, c] = await store.claimMany(appId, "runner", LEASE_MS, 3);
          assert.deepEqual(await live(), [3, 3, 3, 3]);
          await store.release(required(a, "a").id, { owner: "runner", attempt: 1 });
          assert.deepEqual(await live(), [4, 2, 4, 2], "a released claim is queued again");
          await store.requeue(required(b, "b").id, { owner: "runner", attempt: 1 }, EXHAUSTED);
          assert.deepEqual(await live(), [5, 1, 5, 1], "a retry is queued again");
          await store.finish(required(c, "c").id, SUCCESS);
          assert.deepEqual(await live(), [5, 0, 5, 0], "a running request finished without a lease guard");
          const stillQueued = requests.filter((r) => r.id !== a?.id && r.id !== b?.id && r.id !== c?.id);
          await store.cancel(required(stillQueued[0], "queued").id);
          assert.deepEqual(await live(), [4, 0, 4, 0], "a queued request cancelled");
          await store.finish(required(stillQueued[1], "queued").id, EXHAUSTED);
          assert.deepEqual(await live(), [3, 0, 3, 0], "a queued request failed without running (a start deadline)");
          const retried = required((await store.claimMany(appId, "runner", LEASE_MS, 10, Date.now(), { only: [required(b, "b").id] }))[0], "the retried request");
          assert.equal(retried.attempt, 2);
          await store.requeue(retried.id, { owner: "runner", attempt: 2 }, EXHAUSTED);
          assert.deepEqual(await live(), [2, 0, 2, 0], "a request out of attempts ends");
          assert.equal((await store.get(retried.id))?.state, "FAILED");
        }));

      it("holds each tenant and key to its concurrency limit in every claim, and frees room as requests end", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const capped = `capped-${randomUUID()}`;
          const team = `team-${randomUUID()}`;
          await store.putTenant({ name: capped, weight: 1, limits: { maxConcurrency: 2 } });
          const oneAtATime = `key_${randomUUID()}`;
          await store.createKey({ id: oneAtATime, secretHash: "scrypt$x", name: "one", scope: "api", createdAt: 1, revokedAt: null, lastUsedAt: null, tenant: team, limits: { maxConcurrency: 1 } });
          const cappedOnes = await enqueueAll(store, flood(appId, capped, 5));
          const free = await enqueueAll(store, flood(appId, "free", 3));
          const keyed = await enqueueAll(store, Array.from({ length: 3 }, () => newRequest(appId, { tenant: team, keyId: oneAtATime })));
          const teammate = await store.enqueue(newRequest(appId, { tenant: team, keyId: `key_${randomUUID()}` }));

          const first = await store.claimMany(appId, "runner", LEASE_MS, 20);
          assert.equal(first.filter((r) => r.tenant === capped).length, 2, "the tenant's limit");
          assert.equal(first.filter((r) => r.keyId === oneAtATime).length, 1, "the key's limit");
          assert.equal(first.filter((r) => r.tenant === "free").length, 3, "no limit");
          assert.ok(first.some((r) => r.id === teammate.id), "the key's limit does not hold back its tenant's other keys");
          assert.deepEqual(await store.claimMany(appId, "runner", LEASE_MS, 20), [], "nothing more while at the limits");
          assert.equal(await store.claim(appId, "runner", LEASE_MS), null);
          const blocked = await store.submit(newRequest(appId, { tenant: capped }), { owner: "runner", leaseMs: LEASE_MS, limit: 5 });
          assert.equal(blocked.record.state, "QUEUED", "a submit does not claim past the limit either");
          assert.deepEqual(blocked.claimed, []);

          const running = first.find((r) => r.tenant === capped)!;
          await store.finish(running.id, SUCCESS, { owner: "runner", attempt: 1 });
          const next = await store.claimMany(appId, "runner", LEASE_MS, 20);
          assert.deepEqual(ids(next), [cappedOnes[2]!.id], "one slot freed, the tenant's next request takes it");
          // A claim of named requests (an isolated retry) keeps to the limits as well.
          assert.deepEqual(await store.claimMany(appId, "runner", LEASE_MS, 5, undefined, { only: ids(keyed) }), []);
          await store.putTenant({ name: capped, weight: 1, limits: {} });
          assert.equal((await store.claimMany(appId, "runner", LEASE_MS, 20)).filter((r) => r.tenant === capped).length, 3, "a lifted limit frees the rest");
          assert.equal(free.length, 3);
        }));

      it("holds a limit set after claims began from the next claim on: a new key's, a changed key's, a tenant's", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const tenant = `late-${randomUUID()}`;
          const keyId = `key_${randomUUID()}`;
          // Claims before any limit of these exist (SQLite remembers whether any limit is set).
          await enqueueAll(store, Array.from({ length: 3 }, () => newRequest(appId, { tenant, keyId })));
          assert.equal((await store.claimMany(appId, "runner", LEASE_MS, 1)).length, 1);
          await store.createKey({ id: keyId, secretHash: "scrypt$x", name: "late", scope: "api", createdAt: 1, revokedAt: null, lastUsedAt: null, tenant, limits: { maxConcurrency: 1 } });
          assert.deepEqual(await store.claimMany(appId, "runner", LEASE_MS, 5), [], "the new key's limit: one runs already");
          await store.updateKey(keyId, { limits: { maxConcurrency: 2 } });
          assert.equal((await store.claimMany(appId, "runner", LEASE_MS, 5)).length, 1, "the raised limit lets one more start");
          await store.updateKey(keyId, { limits: {} });
          await store.putTenant({ name: tenant, weight: 1, limits: { maxConcurrency: 2 } });
          assert.deepEqual(await store.claimMany(appId, "runner", LEASE_MS, 5), [], "the tenant's new limit holds the last one back");
          await store.putTenant({ name: tenant, weight: 1, limits: {} });
          assert.equal((await store.claimMany(appId, "runner", LEASE_MS, 5)).length, 1, "and lifting it lets it start");
        }));

      it("takes a quiet tenant's new request on submit when it is ahead of the flood", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          await enqueueAll(store, flood(appId, "a", 5));
          assert.equal((await store.claimMany(appId, "runner", LEASE_MS, 1)).length, 1);
          const submitted = await store.submit(newRequest(appId, { tenant: "b" }), { owner: "runner-2", leaseMs: LEASE_MS, limit: 1 });
          assert.equal(submitted.record.state, "RUNNING");
          assert.deepEqual(ids(submitted.claimed), [submitted.record.id]);
          assert.equal(submitted.queuePosition, null);
        }));
    });

    describe("submit (enqueue with position and claim in one write)", () => {
      it("reports the new request's queue position behind normal requests and, for low, behind all", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          await enqueueAll(store, [newRequest(appId), newRequest(appId, { priority: "low" }), newRequest(appId)]);
          const normal = await store.submit(newRequest(appId), null);
          const low = await store.submit(newRequest(appId, { priority: "low" }), null);
          assert.equal(normal.queuePosition, 2, "after the two queued normal requests");
          assert.equal(low.queuePosition, 4, "after three normal and one earlier low request");
          assert.deepEqual(normal.claimed, []);
          // The position given at submit is the one queuePosition computes the long way.
          assert.equal(await store.queuePosition(normal.record.id), normal.queuePosition);
          assert.equal(await store.queuePosition(low.record.id), low.queuePosition);
          assert.equal(normal.record.state, "QUEUED");
        }));

      it("claims the new request for the owner when nothing is ahead of it", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const submitted = await store.submit(newRequest(appId), { owner: "runner-9", leaseMs: LEASE_MS, limit: 1 });
          assert.equal(submitted.queuePosition, null);
          assert.deepEqual(ids(submitted.claimed), [submitted.record.id]);
          assert.equal(submitted.record.state, "RUNNING");
          assert.equal(submitted.record.leaseOwner, "runner-9");
          assert.deepEqual(await store.get(submitted.record.id), submitted.record);
          assert.equal((await store.queueDepths()).get(appId) ?? 0, 0);
        }));

      it("claims the head of the queue, not the new request, when others wait ahead of it", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const [first, second] = await enqueueAll(store, [newRequest(appId), newRequest(appId)]);
          const submitted = await store.submit(newRequest(appId), { owner: "runner-1", leaseMs: LEASE_MS, limit: 1 });
          assert.deepEqual(ids(submitted.claimed), ids([first!]), "the oldest request goes first");
          assert.equal(submitted.record.state, "QUEUED");
          assert.equal(submitted.queuePosition, 1, "behind the second request only");
          assert.equal(await store.queuePosition(second!.id), 0);
          assert.equal(await store.queuePosition(submitted.record.id), 1);
        }));

      it("is durable and refuses a duplicate id like enqueue", () =>
        withStore(async (store) => {
          const request = newRequest(randomAppId());
          await store.submit(request, null);
          await assert.rejects(store.submit(request, { owner: "runner-1", leaseMs: LEASE_MS, limit: 1 }));
          assert.equal((await store.get(request.id))?.state, "QUEUED", "the failed duplicate claimed nothing");
        }));

      it("claims by the rules of claimMany: priority, limit, start deadlines, and reports what stays ahead", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const claim = (limit: number) => ({ owner: "runner", leaseMs: LEASE_MS, limit });
          const low = await store.enqueue(newRequest(appId, { priority: "low" }));

          const normal = await store.submit(newRequest(appId), claim(1));
          assert.deepEqual(ids(normal.claimed), [normal.record.id], "a new normal request goes before a queued low one");
          assert.equal(normal.queuePosition, null);

          const laterLow = await store.submit(newRequest(appId, { priority: "low" }), claim(1));
          assert.deepEqual(ids(laterLow.claimed), [low.id], "a new low request waits behind the older low one");
          assert.equal(laterLow.record.state, "QUEUED");
          assert.equal(laterLow.queuePosition, 0);

          const a = await store.enqueue(newRequest(appId));
          const withRoom = await store.submit(newRequest(appId), claim(5));
          assert.deepEqual(ids(withRoom.claimed), [a.id, withRoom.record.id, laterLow.record.id], "claim order, the new one among them");
          for (const r of withRoom.claimed) {
            assert.equal(r.state, "RUNNING");
            assert.equal(r.leaseOwner, "runner");
          }
          assert.deepEqual(await store.get(withRoom.record.id), withRoom.claimed[1]);
          assert.deepEqual(withRoom.record, withRoom.claimed[1]);

          const b = await store.enqueue(newRequest(appId));
          const late = await store.submit(newRequest(appId, { startDeadline: 1 }), claim(5));
          assert.deepEqual(ids(late.claimed), [b.id], "a request past its start deadline is not claimed, the others are");
          assert.equal(late.record.state, "QUEUED");
          assert.equal(late.queuePosition, 0);

          const c = await store.enqueue(newRequest(appId));
          await store.enqueue(newRequest(appId));
          const behind = await store.submit(newRequest(appId), claim(1));
          assert.deepEqual(ids(behind.claimed), [c.id], "the expired request is skipped");
          assert.equal(behind.queuePosition, 2, "the expired request and the one after c are still ahead");
          assert.equal(await store.queuePosition(behind.record.id), 2);
          assert.equal((await store.queueDepths()).get(appId), 3);
        }));
    });

    describe("leases", () => {
      it("extends the lease on heartbeat only for its owner", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const queued = await store.enqueue(newRequest(appId));
          assert.equal(await store.heartbeat(queued.id, "owner", 5_000, 1_000), false, "a queued request has no lease");

          await store.claim(appId, "owner", 5_000, 1_000);
          assert.equal(await store.heartbeat(queued.id, "intruder", 60_000, 2_000), false);
          assert.equal((await store.get(queued.id))?.leaseExpiresAt, 6_000, "a foreign heartbeat changes nothing");

          assert.equal(await store.heartbeat(queued.id, "owner", 10_000, 2_000), true);
          assert.equal((await store.get(queued.id))?.leaseExpiresAt, 12_000);

          await store.finish(queued.id, SUCCESS, { owner: "owner", attempt: 1 });
          assert.equal(await store.heartbeat(queued.id, "owner", 10_000, 3_000), false, "a finished request has no lease");
          assert.equal(await store.heartbeat(randomUUID(), "owner", 10_000, 3_000), false);
        }));

      it("lists running requests whose lease expired before now", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          await enqueueAll(store, [newRequest(appId), newRequest(appId), newRequest(appId), newRequest(appId)]);
          const short = required(await store.claim(appId, "a", 500, 1_000), "a claim");
          const long = required(await store.claim(appId, "b", 5_000, 1_000), "a claim");
          const finished = required(await store.claim(appId, "c", 100, 1_000), "a claim");
          await store.finish(finished.id, SUCCESS, { owner: "c", attempt: 1 });

          assert.deepEqual(await store.expiredLeases(1_500), [], "a lease expiring exactly now has not expired");
          assert.deepEqual(ids(await store.expiredLeases(1_501)), [short.id]);
          assert.deepEqual(new Set(ids(await store.expiredLeases(10_000))), new Set([short.id, long.id]));

          await store.heartbeat(short.id, "a", 60_000, 1_400);
          assert.deepEqual(ids(await store.expiredLeases(10_000)), [long.id]);
        }));

      it("lists every running request, and only those", () =>
        withStore(async (store) => {
          const appA = randomAppId();
          const appB = randomAppId();
          await enqueueAll(store, [newRequest(appA), newRequest(appA), newRequest(appB), newRequest(appB)]);
          const a = required(await store.claim(appA, "runner", LEASE_MS), "a claim");
          const b = required(await store.claim(appB, "runner", LEASE_MS), "a claim");
          const done = required(await store.claim(appA, "runner", LEASE_MS), "a claim");
          await store.finish(done.id, SUCCESS, { owner: "runner", attempt: 1 });

          const running = await store.running();
          assert.deepEqual(new Set(ids(running)), new Set([a.id, b.id]));
          assert.ok(running.every((r) => r.state === "RUNNING" && r.leaseOwner === "runner"));
        }));
    });

    describe("finish", () => {
      it("writes the terminal state exactly once", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const request = await store.enqueue(newRequest(appId));
          const claimed = required(await store.claim(appId, "runner", LEASE_MS), "a claim");

          assert.equal(await store.finish(request.id, SUCCESS, { owner: "other", attempt: 1 }), null, "wrong owner");
          assert.equal(await store.finish(request.id, SUCCESS, { owner: "runner", attempt: 2 }), null, "wrong attempt");

          const before = Date.now();
          const finished = required(await store.finish(request.id, SUCCESS, { owner: "runner", attempt: 1 }), "the write");
          assert.equal(finished.state, "SUCCEEDED");
          assert.deepEqual(finished.output, SUCCESS.output);
          assert.equal(finished.statusCode, 200);
          assert.equal(finished.error, null);
          assert.equal(finished.errorType, null);
          assert.equal(finished.billableUnits, 1.5);
          assert.equal(finished.startedAt, claimed.startedAt);
          assert.ok(finished.finishedAt !== null && finished.finishedAt >= before);
          assert.deepEqual(await store.get(request.id), finished);

          const failure: TerminalWrite = { ...EXHAUSTED, state: "FAILED" };
          assert.equal(await store.finish(request.id, failure, { owner: "runner", attempt: 1 }), null, "a duplicate result");
          assert.equal(await store.finish(request.id, failure), null, "an unguarded write after the outcome");
          assert.deepEqual(await store.get(request.id), finished, "the outcome is unchanged");
          assert.equal(await store.finish(randomUUID(), SUCCESS), null);
        }));

      it("finishes a queued request only without a guard", () =>
        withStore(async (store) => {
          const request = await store.enqueue(newRequest(randomAppId()));
          assert.equal(await store.finish(request.id, SUCCESS, { owner: "runner", attempt: 1 }), null);
          const failed = required(await store.finish(request.id, DEADLINE_EXPIRED), "the write");
          assert.equal(failed.state, "FAILED");
          assert.equal(failed.statusCode, 504);
          assert.equal(failed.output, null);
        }));

      it("ignores a stale result from an earlier attempt after a requeue", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const request = await store.enqueue(newRequest(appId));
          await store.claim(appId, "first", LEASE_MS);
          const requeued = required(await store.requeue(request.id, { owner: "first", attempt: 1 }, EXHAUSTED), "the requeue");

          assert.equal(await store.finish(request.id, SUCCESS, { owner: "first", attempt: 1 }), null);
          assert.deepEqual(await store.get(request.id), requeued, "a stale finish changes nothing while queued");

          const reclaimed = required(await store.claim(appId, "second", LEASE_MS), "a claim");
          assert.equal(reclaimed.attempt, 2);
          assert.equal(await store.finish(request.id, SUCCESS, { owner: "first", attempt: 1 }), null);
          assert.equal(await store.finish(request.id, SUCCESS, { owner: "second", attempt: 1 }), null);
          assert.equal(await store.finish(request.id, SUCCESS, { owner: "first", attempt: 2 }), null);
          assert.deepEqual(await store.get(request.id), reclaimed, "stale finishes change nothing while running");

          const finished = required(await store.finish(request.id, SUCCESS, { owner: "second", attempt: 2 }), "the write");
          assert.equal(finished.state, "SUCCEEDED");
          assert.equal(finished.attempt, 2);
        }));
    });

    describe("requeue", () => {
      it("bumps the attempt, clears the lease and keeps the place ahead of later requests", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const [first, second] = await enqueueAll(store, [newRequest(appId), newRequest(appId)]);
          const claimed = required(await store.claim(appId, "runner", LEASE_MS), "a claim");
          assert.equal(claimed.id, first!.id);
          const later = await store.enqueue(newRequest(appId));

          assert.equal(await store.requeue(first!.id, { owner: "other", attempt: 1 }, EXHAUSTED), null, "wrong owner");
          assert.equal(await store.requeue(first!.id, { owner: "runner", attempt: 2 }, EXHAUSTED), null, "wrong attempt");
          assert.deepEqual(await store.get(first!.id), claimed, "a refused requeue changes nothing");

          const requeued = required(await store.requeue(first!.id, { owner: "runner", attempt: 1 }, EXHAUSTED), "the requeue");
          assert.equal(requeued.state, "QUEUED");
          assert.equal(requeued.attempt, 2);
          assert.equal(requeued.leaseOwner, null);
          assert.equal(requeued.leaseExpiresAt, null);
          assert.equal(requeued.createdAt, first!.createdAt);
          assert.equal(requeued.finishedAt, null);
          assert.deepEqual(await store.get(first!.id), requeued);

          assert.deepEqual(await positions(store, ids([first!, second!, later])), [0, 1, 2]);
          const reclaimed = required(await store.claim(appId, "runner-2", LEASE_MS), "a claim");
          assert.equal(reclaimed.id, first!.id);
          assert.equal(reclaimed.attempt, 2);
          assert.equal(reclaimed.leaseOwner, "runner-2");

          assert.equal(await store.requeue(second!.id, null, EXHAUSTED), null, "a queued request cannot be requeued");
          assert.equal(await store.requeue(randomUUID(), null, EXHAUSTED), null);
        }));

      it("release hands a claim back at the same attempt, in its place, only to its holder", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const [first, second] = await enqueueAll(store, [newRequest(appId, { maxAttempts: 1 }), newRequest(appId)]);
          const claimed = required(await store.claim(appId, "runner", LEASE_MS), "a claim");
          assert.equal(claimed.id, first!.id);
          assert.equal(await store.release(first!.id, { owner: "other", attempt: 1 }), null, "wrong owner");
          assert.equal(await store.release(first!.id, { owner: "runner", attempt: 2 }), null, "wrong attempt");
          const released = required(await store.release(first!.id, { owner: "runner", attempt: 1 }), "the release");
          assert.equal(released.state, "QUEUED");
          assert.equal(released.attempt, 1, "no attempt used: a single-attempt request can still run");
          assert.equal(released.leaseOwner, null);
          assert.deepEqual(await positions(store, ids([first!, second!])), [0, 1]);
          assert.equal((await store.queueDepths()).get(appId), 2);
          const again = required(await store.claim(appId, "runner-2", LEASE_MS), "a claim");
          assert.equal(again.id, first!.id);
          assert.equal(again.attempt, 1);
          assert.equal(await store.release(second!.id, { owner: "runner", attempt: 1 }), null, "a queued request is not released");
        }));

      it("requeues a running request without a guard (recovery)", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const request = await store.enqueue(newRequest(appId));
          await store.claim(appId, "dead-runner", LEASE_MS);
          const requeued = required(await store.requeue(request.id, null, EXHAUSTED), "the requeue");
          assert.equal(requeued.state, "QUEUED");
          assert.equal(requeued.attempt, 2);
        }));

      it("finishes with the exhausted write once attempts are used up", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const request = await store.enqueue(newRequest(appId, { maxAttempts: 2 }));
          await store.claim(appId, "r1", LEASE_MS);
          assert.equal((await store.requeue(request.id, { owner: "r1", attempt: 1 }, EXHAUSTED))?.state, "QUEUED");
          await store.claim(appId, "r2", LEASE_MS);
          const exhausted = required(await store.requeue(request.id, { owner: "r2", attempt: 2 }, EXHAUSTED), "the write");

          assert.equal(exhausted.state, "FAILED");
          assert.equal(exhausted.attempt, 2);
          assert.equal(exhausted.statusCode, 503);
          assert.equal(exhausted.error, "Runner disconnected");
          assert.equal(exhausted.errorType, "runner_disconnected");
          assert.deepEqual(exhausted.output, EXHAUSTED.output);
          assert.ok(exhausted.finishedAt !== null);
          assert.deepEqual(await store.get(request.id), exhausted);
          assert.equal(await store.claim(appId, "r3", LEASE_MS), null);
          assert.equal(await store.requeue(request.id, null, EXHAUSTED), null, "a finished request stays finished");

          const single = await store.enqueue(newRequest(appId, { maxAttempts: 1 }));
          await store.claim(appId, "r4", LEASE_MS);
          assert.equal((await store.requeue(single.id, null, EXHAUSTED))?.state, "FAILED");
        }));
    });

    describe("cancel", () => {
      it("removes a queued request with the client-cancelled outcome", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const request = await store.enqueue(newRequest(appId));
          const result = await store.cancel(request.id);
          assert.equal(result.kind, "removed");
          if (result.kind !== "removed") return;
          assert.equal(result.record.state, "CANCELLED");
          assert.deepEqual(result.record.output, { detail: "Request cancelled by client", error_type: "client_cancelled" });
          assert.equal(result.record.statusCode, 499);
          assert.equal(result.record.error, "Request cancelled by client");
          assert.equal(result.record.errorType, "client_cancelled");
          assert.ok(result.record.finishedAt !== null);
          assert.deepEqual(await store.get(request.id), result.record);
          assert.equal(await store.claim(appId, "runner", LEASE_MS), null, "a cancelled request is never claimed");
        }));

      it("signals a running request and leaves it running", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const request = await store.enqueue(newRequest(appId));
          await store.claim(appId, "runner", LEASE_MS);
          const result = await store.cancel(request.id);
          assert.equal(result.kind, "signalled");
          if (result.kind !== "signalled") return;
          assert.equal(result.record.state, "RUNNING");
          assert.equal(result.record.cancelRequested, true);
          assert.equal((await store.get(request.id))?.cancelRequested, true);
          assert.equal((await store.cancel(request.id)).kind, "signalled", "signalling again is harmless");

          const cancelled: TerminalWrite = {
            state: "CANCELLED",
            output: null,
            statusCode: 499,
            error: "Request cancelled by client",
            errorType: "client_cancelled",
            billableUnits: null,
          };
          assert.equal((await store.finish(request.id, cancelled, { owner: "runner", attempt: 1 }))?.state, "CANCELLED");
        }));

      it("reports finished and unknown requests", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const request = await store.enqueue(newRequest(appId));
          await store.claim(appId, "runner", LEASE_MS);
          const finished = required(await store.finish(request.id, SUCCESS, { owner: "runner", attempt: 1 }), "the write");
          assert.deepEqual(await store.cancel(request.id), { kind: "already_completed", record: finished });
          assert.deepEqual(await store.get(request.id), finished, "cancel does not touch a finished request");
          assert.deepEqual(await store.cancel(randomUUID()), { kind: "not_found" });
        }));
    });

    describe("queue depths and listing", () => {
      it("counts queued requests per app", () =>
        withStore(async (store) => {
          const appA = randomAppId();
          const appB = randomAppId();
          const appC = randomAppId();
          await enqueueAll(store, [
            newRequest(appA),
            newRequest(appA, { priority: "low" }),
            newRequest(appA),
            newRequest(appB),
            newRequest(appB),
            newRequest(appC),
          ]);
          await store.claim(appB, "runner", LEASE_MS);
          await store.claim(appC, "runner", LEASE_MS);
          assert.deepEqual(
            await store.queueDepths(),
            new Map([
              [appA, 3],
              [appB, 1],
            ]),
          );
        }));

      it("lists newest first with filters, limits and a time cursor", () =>
        withStore(async (store) => {
          const appA = randomAppId();
          const appB = randomAppId();
          const created: RequestRecord[] = [];
          for (const [i, appId] of [appA, appB, appA, appB, appA].entries()) {
            created.push(await store.enqueue(newRequest(appId, { keyId: i % 2 === 0 ? "key-even" : "key-odd" })));
            await sleep(3); // distinct creation times, so the cursor has something to cut between
          }
          const newestFirst = [...created].reverse();
          assert.deepEqual(ids(await store.list({})), ids(newestFirst));
          assert.deepEqual(await store.list({}), newestFirst, "records are complete");
          assert.deepEqual(ids(await store.list({ appId: appA })), ids([created[4]!, created[2]!, created[0]!]));
          assert.deepEqual(ids(await store.list({ keyId: "key-odd" })), ids([created[3]!, created[1]!]));
          assert.deepEqual(ids(await store.list({ limit: 2 })), ids([created[4]!, created[3]!]));
          assert.deepEqual(ids(await store.list({ before: created[2]!.createdAt })), ids([created[1]!, created[0]!]));

          await store.claim(appB, "runner", LEASE_MS);
          assert.deepEqual(ids(await store.list({ state: "RUNNING" })), [created[1]!.id]);
          assert.deepEqual(ids(await store.list({ state: "QUEUED", appId: appB })), [created[3]!.id]);
          assert.deepEqual(await store.list({ appId: randomAppId() }), []);
        }));

      it("returns 50 records by default", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          await enqueueAll(store, Array.from({ length: 55 }, () => newRequest(appId)));
          assert.equal((await store.list({})).length, 50);
          assert.equal((await store.list({ limit: 100 })).length, 55);
        }));
    });

    describe("logs", () => {
      function log(message: string, level: RequestLog["level"] = "INFO"): RequestLog {
        return { message, level, source: "USER", timestamp: new Date(Date.UTC(2025, 0, 1, 0, 0, message.length)).toISOString() };
      }

      it("appends in order and reads from an index", () =>
        withStore(async (store) => {
          const request = await store.enqueue(newRequest(randomAppId()));
          const other = await store.enqueue(newRequest(randomAppId()));
          const firstBatch = [log("loading weights"), log("step 1/2 — ✓", "STDOUT"), log("warning: 🐢", "WARN")];
          const secondBatch = [log("step 2/2", "STDERR"), log("done", "DEBUG")];
          await store.appendLogs(request.id, firstBatch);
          await store.appendLogs(other.id, [log("other request")]);
          await store.appendLogs(request.id, []);
          await store.appendLogs(request.id, secondBatch);

          assert.deepEqual(await store.getLogs(request.id), [...firstBatch, ...secondBatch]);
          assert.deepEqual(await store.getLogs(request.id, 0), [...firstBatch, ...secondBatch]);
          assert.deepEqual(await store.getLogs(request.id, 3), secondBatch);
          assert.deepEqual(await store.getLogs(request.id, 4), [secondBatch[1]]);
          assert.deepEqual(await store.getLogs(request.id, 5), []);
          assert.deepEqual(await store.getLogs(request.id, 99), []);
          assert.deepEqual(await store.getLogs(other.id), [log("other request")]);
          assert.deepEqual(await store.getLogs(randomUUID()), []);
        }));

      it("keeps every line when many appends run at once", () =>
        withStore(async (store) => {
          const request = await store.enqueue(newRequest(randomAppId()));
          await Promise.all(
            Array.from({ length: 10 }, (_, batch) =>
              store.appendLogs(request.id, [log(`batch ${batch} line 0`), log(`batch ${batch} line 1`)]),
            ),
          );
          const logs = await store.getLogs(request.id);
          assert.equal(logs.length, 20);
          for (let batch = 0; batch < 10; batch += 1) {
            const first = logs.findIndex((l) => l.message === `batch ${batch} line 0`);
            assert.equal(logs[first + 1]?.message, `batch ${batch} line 1`, "a batch lands contiguously");
          }
        }));
    });

    describe("result keys (result reuse)", () => {
      const claimOf = (appId: string, over: Partial<ResultKeyClaim> = {}): ResultKeyClaim => ({
        key: `rk-${randomUUID()}`,
        appId,
        requestId: randomUUID(),
        now: Date.now(),
        refresh: false,
        needUntil: null,
        staleBefore: Date.now() - 30_000,
        ...over,
      });

      it("gives a key to the first request; later ones join it while it runs and copy it once it succeeded", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const first = claimOf(appId);
          assert.deepEqual(await store.takeResultKey(first), { kind: "taken" });
          await store.enqueue({ ...newRequest(appId), id: first.requestId });
          const second = { ...first, requestId: randomUUID() };
          const joined = await store.takeResultKey(second);
          assert.equal(joined.kind, "join");
          assert.equal(joined.kind === "join" && joined.leader?.id, first.requestId);

          const follower = await store.submitReused({ ...newRequest(appId), id: second.requestId, keyId: "k-follower", tenant: "team" }, { kind: "join", leaderId: first.requestId, owner: `join:${first.requestId}`, leaseExpiresAt: Date.now() + 60_000 });
          assert.deepEqual([follower.state, follower.cache, follower.reusedFrom, follower.leaseOwner], ["RUNNING", "JOINED", first.requestId, `join:${first.requestId}`]);
          assert.deepEqual((await store.claimMany(appId, "runner", 60_000, 10)).map((r) => r.id), [first.requestId], "a joined request is never handed to a runner");
          assert.equal(await store.countLive({ tenant: "team" }, "RUNNING", 10), 1, "it counts as running for its tenant");

          await store.finish(first.requestId, SUCCESS, { owner: "runner", attempt: 1 });
          const hit = await store.takeResultKey({ ...first, requestId: randomUUID() });
          assert.equal(hit.kind, "hit");
          assert.deepEqual(hit.kind === "hit" && hit.source.output, SUCCESS.output);

          // The joined request ends with its leader's result and no run time of its own.
          const ended = await store.finish(follower.id, SUCCESS, { owner: `join:${first.requestId}`, attempt: 1 });
          assert.deepEqual([ended?.state, ended?.cache], ["SUCCEEDED", "JOINED"]);
          const [usage] = await store.listUsage({ keyId: "k-follower" });
          assert.deepEqual([usage?.runMs, usage?.cache, usage?.billableUnits], [0, "JOINED", SUCCESS.billableUnits]);
        }));

      it("writes a HIT finished, with its source's result, no queue and no run time, and usage marked HIT", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const source = await store.enqueue(newRequest(appId));
          await store.claimMany(appId, "runner", 60_000, 1);
          const done = await store.finish(source.id, SUCCESS, { owner: "runner", attempt: 1 });
          assert.ok(done);
          const hit = await store.submitReused({ ...newRequest(appId), keyId: "k-hit", tenant: "team-hit" }, { kind: "hit", source: done });
          assert.deepEqual([hit.state, hit.output, hit.statusCode, hit.billableUnits, hit.cache, hit.reusedFrom], ["SUCCEEDED", SUCCESS.output, 200, SUCCESS.billableUnits, "HIT", source.id]);
          assert.equal(hit.startedAt, hit.finishedAt);
          assert.deepEqual(await store.get(hit.id), hit);
          const [usage] = await store.listUsage({ keyId: "k-hit" });
          assert.deepEqual([usage?.state, usage?.queueMs, usage?.runMs, usage?.cache, usage?.tenant], ["SUCCEEDED", 0, 0, "HIT", "team-hit"]);
          assert.equal(await store.countLive({ tenant: "team-hit" }, "QUEUED", 10), 0, "nothing of it is live");
          assert.equal(await store.countLive({ tenant: "team-hit" }, "RUNNING", 10), 0);
          assert.equal((await store.queueDepths()).get(appId), undefined, "it never counted as queued");
        }));

      it("takes over a key whose request failed, was never written or whose files expire too soon; refresh takes any", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const orphan = claimOf(appId, { now: 1_000 });
          await store.takeResultKey(orphan);
          const joining = await store.takeResultKey({ ...orphan, requestId: randomUUID(), now: 2_000, staleBefore: 500 });
          assert.deepEqual(joining, { kind: "join", leaderId: orphan.requestId, leader: null }, "still being written: joined");
          assert.deepEqual(await store.takeResultKey({ ...orphan, requestId: randomUUID(), now: 100_000, staleBefore: 50_000 }), { kind: "taken" }, "never written");

          const failing = claimOf(appId);
          await store.takeResultKey(failing);
          await store.enqueue({ ...newRequest(appId), id: failing.requestId });
          await store.finish(failing.requestId, DEADLINE_EXPIRED);
          assert.deepEqual(await store.takeResultKey({ ...failing, requestId: randomUUID() }), { kind: "taken" }, "failed");

          const now = Date.now();
          const shortLived = claimOf(appId, { now });
          await store.takeResultKey(shortLived);
          await store.enqueue({ ...newRequest(appId), id: shortLived.requestId, outputTtlSeconds: 60 });
          await store.finish(shortLived.requestId, SUCCESS);
          assert.equal((await store.takeResultKey({ ...shortLived, requestId: randomUUID(), needUntil: now + 30_000 })).kind, "hit", "its files outlive the new request's");
          assert.deepEqual(await store.takeResultKey({ ...shortLived, requestId: randomUUID(), needUntil: now + 600_000 }), { kind: "taken" }, "its files would die first");

          const kept = claimOf(appId);
          await store.takeResultKey(kept);
          await store.enqueue({ ...newRequest(appId), id: kept.requestId });
          await store.finish(kept.requestId, SUCCESS);
          const refreshing = { ...kept, requestId: randomUUID(), refresh: true };
          assert.deepEqual(await store.takeResultKey(refreshing), { kind: "taken" });
          assert.deepEqual(await store.takeResultKey({ ...kept, requestId: randomUUID() }), { kind: "join", leaderId: refreshing.requestId, leader: null }, "the refreshing request holds it now");
        }));

      it("lets exactly one of several concurrent requests take a key", () =>
        withStore(async (store) => {
          const base = claimOf(randomAppId());
          const tries = Array.from({ length: 6 }, () => ({ ...base, requestId: randomUUID() }));
          const outcomes = await Promise.all(tries.map((t) => store.takeResultKey(t)));
          assert.equal(outcomes.filter((o) => o.kind === "taken").length, 1, JSON.stringify(outcomes.map((o) => o.kind)));
          const winner = tries[outcomes.findIndex((o) => o.kind === "taken")];
          for (const outcome of outcomes) if (outcome.kind === "join") assert.equal(outcome.leaderId, winner?.requestId, "the others join the one that took it");
        }));

      it("puts a joined request back in the queue, unmarked, when it is released or requeued", () =>
        withStore(async (store) => {
          const appId = randomAppId();
          const leader = await store.enqueue(newRequest(appId));
          const owner = `join:${leader.id}`;
          const released = await store.submitReused(newRequest(appId), { kind: "join", leaderId: leader.id, owner, leaseExpiresAt: Date.now() + 60_000 });
          const back = await store.release(released.id, { owner, attempt: 1 });
          assert.deepEqual([back?.state, back?.cache, back?.reusedFrom, back?.attempt], ["QUEUED", null, null, 1]);
          const requeuedOne = await store.submitReused(newRequest(appId), { kind: "join", leaderId: leader.id, owner, leaseExpiresAt: Date.now() + 60_000 });
          const again = await store.requeue(requeuedOne.id, { owner, attempt: 1 }, DEADLINE_EXPIRED);
          assert.deepEqual([again?.state, again?.cache, again?.reusedFrom], ["QUEUED", null, null]);
          const claimed = (await store.claimMany(appId, "runner", 60_000, 10)).map((r) => r.id).sort();
          assert.deepEqual(claimed, [leader.id, released.id, requeuedOne.id].sort(), "all three run now");
        }));
    });

    describe("runner records", () => {
      it("records what a runner is, replaces it on a second record, and reads it back", () =>
        withStore(async (store) => {
          const id = `runner-${randomUUID()}`;
          assert.equal(await store.getRunner(id), null);
          await store.recordRunner({ id, appId: "acme/app", description: JSON.stringify({ app_revision: "r1", weights: [{ name: "ü" }] }), startedAt: 1_000 });
          assert.deepEqual(await store.getRunner(id), { id, appId: "acme/app", description: JSON.stringify({ app_revision: "r1", weights: [{ name: "ü" }] }), startedAt: 1_000 });
          await store.recordRunner({ id, appId: "acme/app", description: "{}", startedAt: 2_000 });
          assert.deepEqual(await store.getRunner(id), { id, appId: "acme/app", description: "{}", startedAt: 2_000 });
        }));
    });

    describe("idempotency keys", () => {
      const reservation = (over: Partial<IdempotencyReservation> = {}): IdempotencyReservation => ({
        keyId: "key_a",
        key: `idem-${randomUUID()}`,
        fingerprint: "f1",
        requestId: randomUUID(),
        now: 1_000_000,
        expiresAt: 1_000_000 + 86_400_000,
        staleBefore: 1_000_000 - 30_000,
        ...over,
      });

      it("gives a key to its first submit; later ones, of the same API key only, learn its request", () =>
        withStore(async (store) => {
          const first = reservation();
          assert.deepEqual(await store.reserveIdempotencyKey(first), { kind: "reserved" });
          const again = { ...first, requestId: randomUUID(), fingerprint: "f2", now: first.now + 5 };
          assert.deepEqual(await store.reserveIdempotencyKey(again), { kind: "taken", requestId: first.requestId, fingerprint: "f1" });
          assert.deepEqual(await store.reserveIdempotencyKey({ ...again, keyId: "key_b" }), { kind: "reserved" }, "another caller's key of the same name");
        }));

      it("lets exactly one of several concurrent submits have a key", () =>
        withStore(async (store) => {
          const base = reservation();
          const tries = Array.from({ length: 6 }, () => ({ ...base, requestId: randomUUID() }));
          const outcomes = await Promise.all(tries.map((t) => store.reserveIdempotencyKey(t)));
          const winners = tries.filter((_, i) => outcomes[i]?.kind === "reserved");
          assert.equal(winners.length, 1);
          for (const outcome of outcomes) if (outcome.kind === "taken") assert.equal(outcome.requestId, winners[0]?.requestId);
        }));

      it("takes over a key that expired, or whose request was never written, but not one whose request exists", () =>
        withStore(async (store) => {
          const expiring = reservation({ expiresAt: 1_000_100 });
          await store.reserveIdempotencyKey(expiring);
          const later = { ...expiring, requestId: randomUUID(), now: 1_000_100, expiresAt: 2_000_000, staleBefore: 0 };
          assert.deepEqual(await store.reserveIdempotencyKey(later), { kind: "reserved" }, "expired");

          const orphan = reservation({ now: 1_000 });
          await store.reserveIdempotencyKey(orphan);
          const retry = { ...orphan, requestId: randomUUID(), now: 100_000, staleBefore: 50_000 };
          assert.deepEqual(await store.reserveIdempotencyKey(retry), { kind: "reserved" }, "its gateway died before writing the request");

          const appId = randomAppId();
          const written = reservation({ now: 1_000 });
          await store.reserveIdempotencyKey(written);
          await store.enqueue({ ...newRequest(appId), id: written.requestId });
          const late = { ...written, requestId: randomUUID(), now: 100_000, staleBefore: 50_000 };
          assert.deepEqual(await store.reserveIdempotencyKey(late), { kind: "taken", requestId: written.requestId, fingerprint: "f1" });
        }));

      it("gives a key back only for its own request, and sweeps expired ones", () =>
        withStore(async (store) => {
          const held = reservation();
          await store.reserveIdempotencyKey(held);
          await store.releaseIdempotencyKey(held.keyId, held.key, randomUUID());
          assert.equal((await store.reserveIdempotencyKey({ ...held, requestId: randomUUID() })).kind, "taken", "another request's release changes nothing");
          await store.releaseIdempotencyKey(held.keyId, held.key, held.requestId);
          assert.equal((await store.reserveIdempotencyKey({ ...held, requestId: randomUUID() })).kind, "reserved");

          const short = reservation({ expiresAt: 5_000 });
          await store.reserveIdempotencyKey(short);
          assert.ok((await store.sweepIdempotencyKeys(5_000)) >= 1);
          assert.equal((await store.reserveIdempotencyKey({ ...short, requestId: randomUUID(), now: 1_000, staleBefore: 0 })).kind, "reserved", "swept: free");
        }));
    });

    describe("workflows", () => {
      it("creates, replaces (keeping the creation time), lists, reads and deletes workflows, documents kept exactly", () =>
        withStore(async (store) => {
          const id = `acme-${randomUUID().slice(0, 8)}/cutout`;
          const document = JSON.stringify({ name: "cutout", contents: { nodes: { a: { type: "input", note: "ünïcode \u2014" } } } });
          assert.equal(await store.getWorkflow(id), null);
          assert.deepEqual(await store.putWorkflow(id, document, 1_000), { id, document, createdAt: 1_000, updatedAt: 1_000 });
          assert.deepEqual(await store.putWorkflow(id, "{}", 2_000), { id, document: "{}", createdAt: 1_000, updatedAt: 2_000 });
          const other = `${id}-b`;
          await store.putWorkflow(other, document, 3_000);
          const listed = (await store.listWorkflows()).filter((w) => w.id.startsWith(id));
          assert.deepEqual(listed.map((w) => w.id), [id, other]);
          assert.deepEqual(await store.getWorkflow(other), { id: other, document, createdAt: 3_000, updatedAt: 3_000 });
          assert.equal(await store.deleteWorkflow(id), true);
          assert.equal(await store.deleteWorkflow(id), false);
          assert.equal(await store.getWorkflow(id), null);
        }));
    });

    describe("remote apps", () => {
      it("saves, replaces and lists the manifests remote runners describe, text kept exactly", () =>
        withStore(async (store) => {
          assert.deepEqual(await store.listRemoteApps(), []);
          const manifest = JSON.stringify({ id: "acme/b-app", endpoints: [{ path: "", input: { type: "object", description: "ünïcode \u2014 ok" } }] });
          await store.saveRemoteApp({ id: "acme/b-app", manifest, updatedAt: 1_000 });
          await store.saveRemoteApp({ id: "acme/a-app", manifest: "{}", updatedAt: 2_000 });
          assert.deepEqual(await store.listRemoteApps(), [
            { id: "acme/a-app", manifest: "{}", updatedAt: 2_000 },
            { id: "acme/b-app", manifest, updatedAt: 1_000 },
          ]);
          await store.saveRemoteApp({ id: "acme/b-app", manifest: '{"v":2}', updatedAt: 3_000 });
          const listed = await store.listRemoteApps();
          assert.equal(listed.length, 2);
          assert.deepEqual(listed[1], { id: "acme/b-app", manifest: '{"v":2}', updatedAt: 3_000 });
        }));
    });

    describe("API keys", () => {
      function key(overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
        return {
          id: `key_${randomUUID()}`,
          secretHash: "scrypt$16384$8$1$c2FsdA$aGFzaA",
          name: "CI key — ünïcode",
          scope: "api",
          createdAt: 1_000,
          revokedAt: null,
          lastUsedAt: null,
          tenant: null,
          limits: {},
          ...overrides,
        };
      }

      it("creates, gets, lists, touches and revokes keys", () =>
        withStore(async (store) => {
          const admin = key({ scope: "admin", name: "admin", createdAt: 1_000 });
          const api = key({ createdAt: 2_000 });
          await store.createKey(admin);
          await store.createKey(api);
          await assert.rejects(store.createKey(api), "a duplicate id is refused");

          assert.deepEqual(await store.getKey(admin.id), admin);
          assert.deepEqual(await store.getKey(api.id), api);
          assert.equal(await store.getKey("key_missing"), null);
          assert.deepEqual(await store.listKeys(), [admin, api]);

          await store.touchKey(api.id, 5_000);
          assert.equal((await store.getKey(api.id))?.lastUsedAt, 5_000);
          await store.touchKey(api.id, 6_000);
          assert.equal((await store.getKey(api.id))?.lastUsedAt, 6_000);

          assert.equal(await store.revokeKey(api.id, 7_000), true);
          assert.deepEqual(await store.getKey(api.id), { ...api, lastUsedAt: 6_000, revokedAt: 7_000 });
          assert.equal(await store.revokeKey(api.id, 8_000), true, "revoking again still finds the key");
          assert.equal((await store.getKey(api.id))?.revokedAt, 7_000, "the first revocation time stays");
          assert.equal(await store.revokeKey("key_missing", 7_000), false);
          assert.deepEqual(await store.getKey(admin.id), admin, "other keys are untouched");
        }));

      it("updates a key's hash, scope, name and revocation, and only the fields given", () =>
        withStore(async (store) => {
          const k = key({ revokedAt: 9_000 });
          const other = key();
          await store.createKey(k);
          await store.createKey(other);
          assert.equal(await store.updateKey(k.id, { secretHash: "scrypt$new", scope: "admin" }), true);
          assert.deepEqual(await store.getKey(k.id), { ...k, secretHash: "scrypt$new", scope: "admin" }, "revocation kept when not in the patch");
          assert.equal(await store.updateKey(k.id, { revokedAt: null, name: "renamed" }), true);
          assert.deepEqual(await store.getKey(k.id), { ...k, secretHash: "scrypt$new", scope: "admin", revokedAt: null, name: "renamed" });
          assert.equal(await store.updateKey("key_missing", { name: "x" }), false);
          assert.deepEqual(await store.getKey(other.id), other, "other keys are untouched");
        }));

      it("keeps a key's tenant and limits, and changes them only when the patch names them", () =>
        withStore(async (store) => {
          const limits = { maxConcurrency: 4, requestsPerMinute: 600, apps: ["darkroom/*", "acme/x"], monthlyBudget: 12.5, maxQueued: 100 };
          const k = key({ tenant: "team-ü", limits });
          await store.createKey(k);
          assert.deepEqual(await store.getKey(k.id), k);
          assert.equal(await store.updateKey(k.id, { name: "renamed" }), true);
          assert.deepEqual(await store.getKey(k.id), { ...k, name: "renamed" }, "tenant and limits kept");
          assert.equal(await store.updateKey(k.id, { tenant: null, limits: { maxQueued: 1 } }), true);
          assert.deepEqual(await store.getKey(k.id), { ...k, name: "renamed", tenant: null, limits: { maxQueued: 1 } });
        }));
    });

    describe("tenants", () => {
      it("creates, replaces, gets and lists tenants by name", () =>
        withStore(async (store) => {
          const suffix = randomUUID();
          assert.equal(await store.getTenant(`b-${suffix}`), null);
          const b = await store.putTenant({ name: `b-${suffix}`, weight: 3, limits: { maxConcurrency: 2 } }, 1_000);
          assert.deepEqual(b, { name: `b-${suffix}`, weight: 3, limits: { maxConcurrency: 2 }, createdAt: 1_000, updatedAt: 1_000 });
          const a = await store.putTenant({ name: `a-${suffix}`, weight: 0.5, limits: {} }, 2_000);
          const replaced = await store.putTenant({ name: `b-${suffix}`, weight: 1.25, limits: { apps: ["x/*"] } }, 3_000);
          assert.deepEqual(replaced, { name: `b-${suffix}`, weight: 1.25, limits: { apps: ["x/*"] }, createdAt: 1_000, updatedAt: 3_000 });
          assert.deepEqual(await store.getTenant(`b-${suffix}`), replaced);
          const mine = (await store.listTenants()).filter((t) => t.name.endsWith(suffix));
          assert.deepEqual(mine, [a, replaced]);
        }));
    });

    describe("usage", () => {
      function usage(overrides: Partial<UsageRecord>): UsageRecord {
        return {
          requestId: randomUUID(),
          keyId: null,
          tenant: "",
          appId: "app",
          endpoint: "",
          state: "SUCCEEDED",
          queueMs: 12,
          runMs: 3_400,
          billableUnits: null,
          cache: null,
          finishedAt: 1_000,
          ...overrides,
        };
      }

      it("records usage and filters by app, key, tenant and time", () =>
        withStore(async (store) => {
          const appA = randomAppId();
          const appB = randomAppId();
          const u1 = usage({ appId: appA, keyId: "k1", finishedAt: 1_000, billableUnits: 0.25 });
          const u2 = usage({ appId: appB, keyId: "k2", tenant: "team-ü", finishedAt: 2_000, state: "FAILED", endpoint: "fast" });
          const u3 = usage({ appId: appA, keyId: null, finishedAt: 3_000, state: "CANCELLED", queueMs: 0, runMs: 0 });
          const u4 = usage({ appId: appA, keyId: "k2", finishedAt: 4_000, billableUnits: 2 });
          for (const u of [u1, u2, u3, u4]) await store.recordUsage(u);

          assert.deepEqual(await store.listUsage({}), [u4, u3, u2, u1], "newest first, every field kept");
          assert.deepEqual(await store.listUsage({ appId: appA }), [u4, u3, u1]);
          assert.deepEqual(await store.listUsage({ keyId: "k2" }), [u4, u2]);
          assert.deepEqual(await store.listUsage({ tenant: "team-ü" }), [u2]);
          assert.deepEqual(await store.listUsage({ tenant: "" }), [u4, u3, u1]);
          assert.deepEqual(await store.listUsage({ since: 2_000 }), [u4, u3, u2], "since is inclusive");
          assert.deepEqual(await store.listUsage({ until: 3_000 }), [u2, u1], "until is exclusive");
          assert.deepEqual(await store.listUsage({ since: 2_000, until: 4_000, appId: appA }), [u3]);
          assert.deepEqual(await store.listUsage({ limit: 2 }), [u4, u3]);
          assert.deepEqual(await store.listUsage({ appId: randomAppId() }), []);

          const corrected = { ...u1, runMs: 9_999, billableUnits: 0.5 };
          await store.recordUsage(corrected);
          assert.deepEqual(await store.listUsage({ keyId: "k1" }), [corrected], "a request is recorded once");
        }));

      it("records usage with every terminal write, exactly once per request", () =>
        withStore(async (store) => {
          const app = randomAppId();
          const done = await store.enqueue(newRequest(app, { keyId: "k-usage", tenant: "t-usage" }));
          const exhausted = await store.enqueue(newRequest(app, { keyId: "k-usage", maxAttempts: 1 }));
          const cancelled = await store.enqueue(newRequest(app, { keyId: "k-usage" }));
          const first = await store.claim(app, "owner", 30_000);
          const second = await store.claim(app, "owner", 30_000);
          assert.deepEqual([first?.id, second?.id], [done.id, exhausted.id]);
          const finished = await store.finish(done.id, { ...SUCCESS, billableUnits: 2.5 }, { owner: "owner", attempt: 1 });
          assert.ok(finished);
          // A duplicate outcome writes nothing, and so records no second usage row.
          assert.equal(await store.finish(done.id, SUCCESS, { owner: "owner", attempt: 1 }), null);
          const failed = await store.requeue(exhausted.id, { owner: "owner", attempt: 1 }, EXHAUSTED);
          assert.equal(failed?.state, EXHAUSTED.state);
          assert.equal((await store.cancel(cancelled.id)).kind, "removed");

          const usage = await store.listUsage({ appId: app });
          assert.equal(usage.length, 3);
          const byId = new Map(usage.map((u) => [u.requestId, u]));
          const u1 = byId.get(done.id);
          assert.equal(u1?.state, "SUCCEEDED");
          assert.equal(u1?.billableUnits, 2.5);
          assert.equal(u1?.keyId, "k-usage");
          assert.equal(u1?.tenant, "t-usage");
          assert.equal(u1?.finishedAt, finished.finishedAt);
          assert.equal(u1?.queueMs, (finished.startedAt ?? 0) - finished.createdAt);
          assert.equal(u1?.runMs, (finished.finishedAt ?? 0) - (finished.startedAt ?? 0));
          assert.equal(byId.get(exhausted.id)?.state, EXHAUSTED.state);
          assert.equal(byId.get(cancelled.id)?.state, "CANCELLED");
          assert.equal(byId.get(cancelled.id)?.runMs, 0, "a request cancelled in the queue never ran");
        }));
    });

    describe("storage quota", () => {
      const key = (): string => `key-${randomUUID()}`;
      const entry = (keyId: string, id: string, bytes: number, more: Partial<StorageEntry> = {}): StorageEntry => ({
        id,
        keyId,
        bytes,
        uploadId: null,
        expiresAt: null,
        ...more,
      });

      it("reserves within the quota, refuses past it with what is used, and keeps keys apart", () =>
        withStore(async (store) => {
          const [a, b] = [key(), key()];
          assert.equal(await store.storageUsed(a), 0);
          assert.deepEqual(await store.reserveStorage(entry(a, "~reserved/1", 600), { quotaBytes: 1000 }), { ok: true, bytes: 600, usedBytes: 0 });
          assert.deepEqual(await store.reserveStorage(entry(a, "~reserved/2", 400), { quotaBytes: 1000 }), { ok: true, bytes: 400, usedBytes: 600 });
          assert.deepEqual(await store.reserveStorage(entry(a, "~reserved/3", 1), { quotaBytes: 1000 }), { ok: false, usedBytes: 1000 });
          assert.equal(await store.storageUsed(a), 1000, "a refused reservation records nothing");
          assert.deepEqual(await store.reserveStorage(entry(b, "~reserved/4", 1000), { quotaBytes: 1000 }), { ok: true, bytes: 1000, usedBytes: 0 });
          assert.deepEqual(await store.reserveStorage(entry(a, "~reserved/5", 5000), { quotaBytes: 0 }), { ok: true, bytes: 5000, usedBytes: 1000 }, "0: no quota");
          assert.equal(await store.storageUsed(a), 6000);
          assert.equal(await store.storageUsed(b), 1000);
          await rejects(store.reserveStorage(entry(a, "~reserved/6", Number.NaN), { quotaBytes: 0 }));
        }));

      it("reserves what is left for an upload of unknown length, and nothing when nothing is left", () =>
        withStore(async (store) => {
          const a = key();
          await store.reserveStorage(entry(a, "~reserved/1", 700), { quotaBytes: 1000 });
          assert.deepEqual(await store.reserveStorage(entry(a, "~reserved/2", 500), { quotaBytes: 1000, partial: true }), { ok: true, bytes: 300, usedBytes: 700 });
          assert.deepEqual(await store.reserveStorage(entry(a, "~reserved/3", 500), { quotaBytes: 1000, partial: true }), { ok: false, usedBytes: 1000 });
        }));

      it("settles a reservation into the stored file, releases a failed one, and replaces an entry of the same id", () =>
        withStore(async (store) => {
          const a = key();
          await store.reserveStorage(entry(a, "~reserved/1", 900), { quotaBytes: 1000 });
          await store.settleStorage({ keyId: a, reservationId: "~reserved/1", entry: entry(a, "uploads/x/cat.png", 650) });
          assert.equal(await store.storageUsed(a), 650, "the file counts what was stored, not what was reserved");
          await store.reserveStorage(entry(a, "~reserved/2", 300), { quotaBytes: 1000 });
          await store.releaseStorage(a, "~reserved/2");
          assert.equal(await store.storageUsed(a), 650);
          await store.settleStorage({ keyId: a, entry: entry(a, "uploads/x/cat.png", 100) });
          assert.equal(await store.storageUsed(a), 100, "a file written again replaces its bytes");
          await store.releaseStorage(a, "uploads/x/cat.png");
          assert.equal(await store.storageUsed(a), 0, "a deleted file gives its bytes back");
        }));

      it("counts a re-uploaded part once, drops an upload's parts when it completes, and gives expired bytes back", () =>
        withStore(async (store) => {
          const a = key();
          const day = 24 * 3600 * 1000;
          const t0 = Date.now();
          const part = (n: number, bytes: number, at: number) => entry(a, `~multipart/u1/${n}`, bytes, { uploadId: "u1", expiresAt: at + day });
          await store.settleStorage({ keyId: a, entry: part(1, 400, t0) });
          await store.settleStorage({ keyId: a, entry: part(2, 400, t0) });
          // Re-uploading part 2 at the quota's edge: its earlier bytes do not count against the new ones.
          const again = await store.reserveStorage(entry(a, "~reserved/p2", 600), { quotaBytes: 1000, replaces: "~multipart/u1/2", now: t0 });
          assert.equal(again.ok, true);
          await store.settleStorage({ keyId: a, reservationId: "~reserved/p2", entry: part(2, 600, t0 + 1000) });
          assert.equal(await store.storageUsed(a, t0), 1000);
          // The last part moved the whole upload's expiry: part 1 still counts a day after part 2 arrived.
          assert.equal(await store.storageUsed(a, t0 + day + 500), 1000);
          assert.equal(await store.storageUsed(a, t0 + day + 1000), 0, "an upload idle for a day is abandoned");

          await store.settleStorage({ keyId: a, entry: part(3, 50, t0) });
          await store.settleStorage({ keyId: a, completesUpload: "u1", entry: entry(a, "uploads/y/clip.mp4", 1000, { expiresAt: t0 + 5000 }) });
          assert.equal(await store.storageUsed(a, t0), 1000, "completion replaces the parts (all of them) by the file");
          assert.equal(await store.storageUsed(a, t0 + 5000), 0, "an expired file gives its bytes back");
          assert.deepEqual(await store.reserveStorage(entry(a, "~reserved/z", 1000), { quotaBytes: 1000, now: t0 + 5000 }), { ok: true, bytes: 1000, usedBytes: 0 });
        }));

      it("never lets concurrent reservations of one key pass the quota together", () =>
        withStore(async (store) => {
          const a = key();
          const results = await Promise.all(
            Array.from({ length: 20 }, (_, i) => store.reserveStorage(entry(a, `~reserved/${i}`, 100), { quotaBytes: 1000 })),
          );
          assert.equal(results.filter((r) => r.ok).length, 10);
          assert.equal(await store.storageUsed(a), 1000);
          await Promise.all(results.map((_, i) => store.releaseStorage(a, `~reserved/${i}`)));
          assert.equal(await store.storageUsed(a), 0);
        }));
    });

    describe("prediction webhooks and webhook schemes", () => {
      it("keeps what a prediction's webhooks want, and the scheme each job is signed by", () =>
        withStore(async (store) => {
          const requestId = randomUUID();
          assert.equal(await store.getPredictionWebhook(requestId), null);
          await store.savePredictionWebhook({ requestId, events: ["start", "completed"], tenant: "team-ü", createdAt: 1_000 });
          assert.deepEqual(await store.getPredictionWebhook(requestId), { requestId, events: ["start", "completed"], tenant: "team-ü", createdAt: 1_000 });
          const standard = await store.enqueueWebhook({ requestId, url: "https://hooks.example.com/r", body: "{}", now: 5, scheme: "standard:team-ü" });
          const plain = await store.enqueueWebhook({ requestId, url: "https://hooks.example.com/f", body: "{}", now: 5 });
          assert.deepEqual([standard.scheme, plain.scheme], ["standard:team-ü", "fal"]);
          const claimed = await store.claimDueWebhooks(10, 10, 1_000);
          assert.deepEqual(claimed.filter((j) => j.requestId === requestId).map((j) => j.scheme), ["standard:team-ü", "fal"]);
        }));
    });

    describe("webhook outbox", () => {
      function attempt(job: { id: number; requestId: string }, n: number, overrides: Partial<WebhookAttempt> = {}): WebhookAttempt {
        return {
          webhookId: job.id,
          requestId: job.requestId,
          attempt: n,
          at: 1_000 * n,
          status: 500,
          ok: false,
          error: "HTTP 500",
          durationMs: 40 + n,
          ...overrides,
        };
      }

      it("enqueues a pending job with the exact body", () =>
        withStore(async (store) => {
          const requestId = randomUUID();
          const body = '{"request_id":"x","status":"OK","payload":{"text":"ünïcödé 🎉"}}\n  ';
          const job = await store.enqueueWebhook({ requestId, url: "https://hooks.example.com/a", body, now: 1_000 });
          assert.ok(Number.isInteger(job.id));
          assert.deepEqual(job, {
            id: job.id,
            requestId,
            url: "https://hooks.example.com/a",
            body,
            attempts: 0,
            nextAttemptAt: 1_000,
            state: "pending",
            createdAt: 1_000,
            scheme: "fal",
          });
          assert.deepEqual(await store.listWebhooks(requestId), [{ job, attempts: [] }]);
          assert.deepEqual(await store.listWebhooks(randomUUID()), []);
        }));

      it("leases claimed jobs so they are not claimed again until the lease passes", () =>
        withStore(async (store) => {
          const job = await store.enqueueWebhook({ requestId: randomUUID(), url: "https://h.example/x", body: "{}", now: 1_000 });
          assert.deepEqual(await store.claimDueWebhooks(999, 10, 30_000), [], "not due yet");

          const claimed = await store.claimDueWebhooks(1_000, 10, 30_000);
          assert.deepEqual(claimed, [{ ...job, nextAttemptAt: 31_000 }]);
          assert.deepEqual(await store.claimDueWebhooks(1_000, 10, 30_000), [], "leased");
          assert.deepEqual(await store.claimDueWebhooks(30_999, 10, 30_000), [], "still leased");
          assert.deepEqual(webhookIds(await store.claimDueWebhooks(31_000, 10, 30_000)), [job.id], "the lease passed");
        }));

      it("claims oldest first, up to the limit, and never the same job twice at once", () =>
        withStore(async (store) => {
          const requestId = randomUUID();
          const jobs: WebhookJob[] = [];
          for (let i = 0; i < 5; i += 1) {
            jobs.push(await store.enqueueWebhook({ requestId, url: `https://h.example/${i}`, body: `${i}`, now: 1_000 + i }));
          }
          assert.deepEqual(webhookIds(await store.claimDueWebhooks(2_000, 2, 60_000)), [jobs[0]!.id, jobs[1]!.id]);
          const [a, b] = await Promise.all([
            store.claimDueWebhooks(2_000, 2, 60_000),
            store.claimDueWebhooks(2_000, 2, 60_000),
          ]);
          const together = [...webhookIds(a), ...webhookIds(b)];
          assert.equal(together.length, 3);
          assert.deepEqual(new Set(together), new Set([jobs[2]!.id, jobs[3]!.id, jobs[4]!.id]));
          assert.deepEqual(await store.claimDueWebhooks(2_000, 10, 60_000), []);
        }));

      it("records attempts in order and ends delivered or failed", () =>
        withStore(async (store) => {
          const requestId = randomUUID();
          const delivered = await store.enqueueWebhook({ requestId, url: "https://h.example/ok", body: "{}", now: 0 });
          const failed = await store.enqueueWebhook({ requestId, url: "https://h.example/down", body: "{}", now: 0 });
          const unrelated = await store.enqueueWebhook({ requestId: randomUUID(), url: "https://h.example/o", body: "{}", now: 0 });

          const a1 = attempt(delivered, 1);
          const a2 = attempt(delivered, 2, { status: null, error: "timeout" });
          const a3 = attempt(delivered, 3, { status: 204, ok: true, error: null });
          await store.recordWebhookAttempt(a1, { state: "pending", nextAttemptAt: 5_000 });
          let [entry] = await store.listWebhooks(requestId);
          assert.deepEqual(entry, { job: { ...delivered, attempts: 1, nextAttemptAt: 5_000 }, attempts: [a1] });

          await store.recordWebhookAttempt(a2, { state: "pending", nextAttemptAt: 9_000 });
          await store.recordWebhookAttempt(a3, { state: "delivered", nextAttemptAt: 9_000 });
          const f1 = attempt(failed, 1, { status: null, error: "refused: loopback address 127.0.0.1" });
          await store.recordWebhookAttempt(f1, { state: "failed", nextAttemptAt: 0 });

          const listed = await store.listWebhooks(requestId);
          assert.equal(listed.length, 2);
          [entry] = listed;
          assert.equal(entry?.job.state, "delivered");
          assert.equal(entry?.job.attempts, 3);
          assert.deepEqual(entry?.attempts, [a1, a2, a3]);
          assert.equal(listed[1]?.job.id, failed.id);
          assert.equal(listed[1]?.job.state, "failed");
          assert.equal(listed[1]?.job.attempts, 1);
          assert.deepEqual(listed[1]?.attempts, [f1]);

          const due = await store.claimDueWebhooks(1_000_000, 10, 1_000);
          assert.deepEqual(webhookIds(due), [unrelated.id], "delivered and failed jobs are never claimed");
        }));
    });

    describe("prices", () => {
      const price = (endpointId: string, overrides: Partial<NewPrice> = {}): NewPrice => ({
        endpointId,
        unit: "request",
        unitPrice: 0.001,
        currency: "USD",
        effectiveFrom: 1_000,
        source: "api",
        ...overrides,
      });

      it("adds prices as history and lists them by endpoint, then time", () =>
        withStore(async (store) => {
          const app = randomAppId();
          const [later, earlier] = await store.addPrices([
            price(app, { unitPrice: 0.002, effectiveFrom: 5_000 }),
            price(app, { unit: "compute_second", unitPrice: 0.0005, effectiveFrom: 1_000, source: "file" }),
          ]);
          const [endpoint] = await store.addPrices([price(`${app}/fast`, { unit: "megapixel", unitPrice: 0.0125, currency: "EUR" })]);
          assert.ok(later && earlier && endpoint);
          assert.deepEqual(later, { ...price(app, { unitPrice: 0.002, effectiveFrom: 5_000 }), id: later.id }, "every field kept, in the order given");
          assert.equal(earlier.source, "file");
          assert.ok(later.id < earlier.id && earlier.id < endpoint.id, "ids grow with every price stored");

          assert.deepEqual(await store.listPrices([app]), [earlier, later], "oldest first: an endpoint's history");
          assert.deepEqual(await store.listPrices([`${app}/fast`, app, app]), [earlier, later, endpoint]);
          const all = await store.listPrices();
          assert.deepEqual(all.filter((p) => p.endpointId.startsWith(app)), [earlier, later, endpoint]);
          assert.deepEqual(await store.listPrices([randomAppId()]), []);
          assert.deepEqual(await store.listPrices([]), []);
        }));

      it("refuses a price below 0 or not a number, and stores none of its list", () =>
        withStore(async (store) => {
          const app = randomAppId();
          await rejects(store.addPrices([price(app), price(app, { unitPrice: -1 })]));
          await rejects(store.addPrices([price(app, { unitPrice: Number.NaN })]));
          assert.deepEqual(await store.listPrices([app]), []);
        }));
    });

    describe("usage aggregation", () => {
      function record(appId: string, overrides: Partial<UsageRecord>): UsageRecord {
        return {
          requestId: randomUUID(),
          keyId: "k1",
          tenant: "t1",
          appId,
          endpoint: "",
          state: "SUCCEEDED",
          queueMs: 5,
          runMs: 1_000,
          billableUnits: null,
          finishedAt: 1_000,
          ...overrides,
        };
      }

      it("sums per bucket, endpoint and the price in effect when each record finished", () =>
        withStore(async (store) => {
          const app = randomAppId();
          const other = randomAppId();
          const [appPrice, endpointPrice, newAppPrice] = await store.addPrices([
            { endpointId: app, unit: "request", unitPrice: 0.01, currency: "USD", effectiveFrom: 0, source: "file" },
            { endpointId: `${app}/fast`, unit: "image", unitPrice: 0.02, currency: "USD", effectiveFrom: 5_000, source: "api" },
            { endpointId: app, unit: "request", unitPrice: 0.03, currency: "USD", effectiveFrom: 10_000, source: "api" },
          ]);
          assert.ok(appPrice && endpointPrice && newAppPrice);
          const records = [
            record(app, { finishedAt: 1_000, billableUnits: 2, runMs: 100 }),
            record(app, { finishedAt: 1_500, runMs: 200 }), // billed nothing: counts 1
            record(app, { finishedAt: 2_000, state: "FAILED", runMs: 300 }), // not billed
            record(app, { finishedAt: 7_000, state: "CANCELLED", runMs: 0, queueMs: 900 }), // cancelled in the queue: not billed
            record(app, { finishedAt: 8_000, state: "CANCELLED", runMs: 400 }), // cancelled while running: its run time is billed, no units
            record(app, { endpoint: "fast", finishedAt: 4_000, billableUnits: 3, runMs: 500 }), // before the endpoint had a price: the app's
            record(app, { endpoint: "fast", finishedAt: 6_000, billableUnits: 1.5, runMs: 600 }),
            record(app, { finishedAt: 10_000, billableUnits: 0.5, runMs: 700 }), // the new app price starts at exactly this time
            record(app, { finishedAt: 20_000, runMs: 800 }), // at until: outside
            record(other, { finishedAt: 3_000, runMs: 900 }),
          ];
          for (const r of records) await store.recordUsage(r);

          const sums = await store.aggregateUsage({ since: 0, until: 20_000, bucketMs: 10_000, appIds: [app] });
          const row = (bucketStart: number, endpoint: string, priceId: number | null, sums: Partial<UsageAggregate>): UsageAggregate => ({
            bucketStart,
            appId: app,
            endpoint,
            keyId: null,
            priceId,
            requests: 0,
            billedRequests: 0,
            billedUnits: 0,
            billedRunMs: 0,
            runMs: 0,
            ...sums,
          });
          assert.deepEqual(sums, [
            row(0, "", appPrice.id, { requests: 5, billedRequests: 3, billedUnits: 3, billedRunMs: 700, runMs: 1_000 }),
            row(0, "fast", appPrice.id, { requests: 1, billedRequests: 1, billedUnits: 3, billedRunMs: 500, runMs: 500 }),
            row(0, "fast", endpointPrice.id, { requests: 1, billedRequests: 1, billedUnits: 1.5, billedRunMs: 600, runMs: 600 }),
            row(10_000, "", newAppPrice.id, { requests: 1, billedRequests: 1, billedUnits: 0.5, billedRunMs: 700, runMs: 700 }),
          ]);

          // The store's rule is the per-request rule of X-Fal-Billable-Units.
          const inRange = records.filter((r) => r.appId === app && r.finishedAt < 20_000);
          const units = inRange.reduce((n, r) => n + billableUnitsOf(r), 0);
          assert.equal(sums.reduce((n, s) => n + s.billedUnits, 0), units);
          assert.equal(sums.reduce((n, s) => n + s.billedRequests, 0), inRange.filter(isBilled).length);

          const unpriced = await store.aggregateUsage({ since: 0, until: 20_000, bucketMs: 20_000, appIds: [other] });
          assert.deepEqual(unpriced, [{ ...row(0, "", null, { requests: 1, billedRequests: 1, billedUnits: 1, billedRunMs: 900, runMs: 900 }), appId: other }], "no price: null");
        }));

      it("starts buckets at since, and filters by app, key and tenant, or keeps keys apart", () =>
        withStore(async (store) => {
          const app = randomAppId();
          const other = randomAppId();
          for (const r of [
            record(app, { finishedAt: 999 }),
            record(app, { finishedAt: 1_000, keyId: "k1", tenant: "acme" }),
            record(app, { finishedAt: 1_999, keyId: "k2", tenant: "acme" }),
            record(app, { finishedAt: 2_000, keyId: null, tenant: "" }),
            record(other, { finishedAt: 1_500, keyId: "k1", tenant: "acme" }),
          ]) {
            await store.recordUsage(r);
          }
          const buckets = async (query: Partial<UsageAggregateQuery>): Promise<[number, string, string | null, number][]> =>
            (await store.aggregateUsage({ since: 1_000, until: 3_000, bucketMs: 500, appIds: [app, other], ...query })).map((s) => [s.bucketStart, s.appId, s.keyId, s.requests]);

          assert.deepEqual(await buckets({}), [
            [1_000, app, null, 1],
            [1_500, app, null, 1],
            [1_500, other, null, 1],
            [2_000, app, null, 1],
          ].sort((a, b) => (a[0] as number) - (b[0] as number) || ((a[1] as string) < (b[1] as string) ? -1 : 1)));
          assert.deepEqual(await buckets({ appIds: [app], bucketMs: 2_000 }), [[1_000, app, null, 3]]);
          assert.deepEqual(await buckets({ appIds: [app], bucketMs: 2_000, keyId: "k2" }), [[1_000, app, null, 1]]);
          assert.deepEqual(await buckets({ bucketMs: 2_000, tenant: "acme", appIds: [other] }), [[1_000, other, null, 1]]);
          assert.deepEqual(await buckets({ appIds: [app], bucketMs: 2_000, byKey: true }), [
            [1_000, app, "k1", 1],
            [1_000, app, "k2", 1],
            [1_000, app, null, 1],
          ], "by key, records without one last");
          assert.deepEqual(await buckets({ appIds: [] }), [], "no app: nothing");
          assert.deepEqual(await store.aggregateUsage({ since: 1_000, until: 1_000, bucketMs: 1 }), [], "an empty range");
          await rejects(store.aggregateUsage({ since: 0, until: 1_000, bucketMs: 0 }));
        }));

      it("sums the usage that terminal writes record", () =>
        withStore(async (store) => {
          const app = randomAppId();
          const [priced] = await store.addPrices([{ endpointId: app, unit: "compute_second", unitPrice: 0.5, currency: "USD", effectiveFrom: 0, source: "api" }]);
          const done = await store.enqueue(newRequest(app, { keyId: "k-agg", tenant: "t-agg" }));
          const cancelled = await store.enqueue(newRequest(app, { keyId: "k-agg", tenant: "t-agg" }));
          assert.equal((await store.claim(app, "owner", LEASE_MS))?.id, done.id);
          await sleep(5);
          const finished = await store.finish(done.id, { ...SUCCESS, billableUnits: 4 }, { owner: "owner", attempt: 1 });
          assert.ok(finished?.finishedAt && finished.startedAt);
          assert.equal((await store.cancel(cancelled.id)).kind, "removed");

          const [sum, ...rest] = await store.aggregateUsage({ since: 0, until: Date.now() + 1_000, bucketMs: Date.now() + 1_000, tenant: "t-agg", appIds: [app] });
          assert.deepEqual(rest, []);
          assert.deepEqual(sum, {
            bucketStart: 0,
            appId: app,
            endpoint: "",
            keyId: null,
            priceId: priced?.id,
            requests: 2,
            billedRequests: 1,
            billedUnits: 4,
            billedRunMs: finished.finishedAt - finished.startedAt,
            runMs: finished.finishedAt - finished.startedAt,
          });
        }));
    });
  });
}
