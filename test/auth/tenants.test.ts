/**
 * Tenants and limits below the HTTP layer: merging a key's limits with its tenant's, the `apps`
 * patterns, the tenant directory's cache, the requests-per-minute counter, the wire form of limits,
 * and what KeyService records and resolves for a key's tenant.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { KeyService } from "../../src/auth/keys.js";
import { fieldErrorsOf, LimitsBody, limitsFromBody, limitsView } from "../../src/auth/limits-body.js";
import { RequestRateLimiter } from "../../src/auth/request-rate-limiter.js";
import { TenantDirectory } from "../../src/auth/tenants.js";
import { TokenService } from "../../src/auth/tokens.js";
import { appsAllow, mergeLimits } from "../../src/auth/usage-limits.js";
import type { Store } from "../../src/store/store.js";
import { memoryStore } from "../helpers/memory-store.js";

let store: Store;

beforeEach(async () => {
  store = await memoryStore();
});

afterEach(async () => {
  await store.close();
});

/** `store` with its getTenant calls counted (and, while `failing`, failing). */
function countingStore(inner: Store): { store: Store; reads: () => number; fail: (on: boolean) => void } {
  let reads = 0;
  let failing = false;
  const wrapped = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === "getTenant") {
        return async (name: string) => {
          reads += 1;
          if (failing) throw new Error("database down");
          return target.getTenant(name);
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store: wrapped, reads: () => reads, fail: (on) => void (failing = on) };
}

describe("mergeLimits", () => {
  it("keeps the smaller of each number, and a limit only one side sets", () => {
    assert.deepEqual(mergeLimits({ maxConcurrency: 4, requestsPerMinute: 100 }, { maxConcurrency: 2, monthlyBudget: 0, maxQueued: 50 }), {
      maxConcurrency: 2,
      requestsPerMinute: 100,
      monthlyBudget: 0,
      maxQueued: 50,
    });
    assert.deepEqual(mergeLimits({}, {}), {});
  });

  it("lets through only the apps both lists allow, prefixes included", () => {
    const merged = mergeLimits({ apps: ["darkroom/*", "other/one"] }, { apps: ["darkroom/echo", "darkroom/ocr", "other/*", "third/x"] });
    assert.deepEqual([...(merged.apps ?? [])].sort(), ["darkroom/echo", "darkroom/ocr", "other/one"]);
    for (const app of ["darkroom/echo", "darkroom/ocr", "other/one"]) assert.ok(appsAllow(merged.apps, app), app);
    for (const app of ["darkroom/upscale", "other/two", "third/x"]) assert.ok(!appsAllow(merged.apps, app), app);
    // Two lists with nothing in common allow nothing, which is not the same as no list.
    assert.deepEqual(mergeLimits({ apps: ["a/*"] }, { apps: ["b/*"] }).apps, []);
    assert.deepEqual(mergeLimits({ apps: ["a/*"] }, {}).apps, ["a/*"]);
    assert.equal(mergeLimits({}, {}).apps, undefined);
  });

  it("matches an owner's prefix on whole segments only", () => {
    assert.ok(appsAllow(["darkroom/*"], "darkroom/echo"));
    assert.ok(!appsAllow(["darkroom/*"], "darkroomx/echo"));
    assert.ok(!appsAllow(["darkroom/ech"], "darkroom/echo"));
    assert.ok(!appsAllow([], "darkroom/echo"));
    assert.ok(appsAllow(undefined, "darkroom/echo"));
  });
});

describe("limits on the wire", () => {
  it("reads snake_case limits, null as no limit, and shows every field back", () => {
    const parsed = LimitsBody.parse({ max_concurrency: 2, requests_per_minute: null, apps: ["darkroom/*", "darkroom/*"], monthly_budget: 12.5 });
    const limits = limitsFromBody(parsed);
    assert.deepEqual(limits, { maxConcurrency: 2, apps: ["darkroom/*"], monthlyBudget: 12.5 });
    assert.deepEqual(limitsView(limits), { max_concurrency: 2, requests_per_minute: null, apps: ["darkroom/*"], monthly_budget: 12.5, max_queued: null });
  });

  it("refuses unknown fields by name, and values out of range", () => {
    const unknown = LimitsBody.safeParse({ rpm: 5, max_concurrency: 1 });
    assert.ok(!unknown.success);
    assert.deepEqual(fieldErrorsOf(unknown.error, ["body", "limits"]), [{ loc: ["body", "limits", "rpm"], msg: "Extra inputs are not permitted", type: "extra_forbidden" }]);
    for (const bad of [
      { max_concurrency: 0 },
      { requests_per_minute: 1.5 },
      { max_queued: -1 },
      { monthly_budget: -0.01 },
      { apps: ["Darkroom/Echo"] },
      { apps: ["darkroom"] },
      { apps: ["*"] },
      { apps: Array.from({ length: 101 }, (_, i) => `owner/app-${i}`) },
    ]) {
      assert.ok(!LimitsBody.safeParse(bad).success, JSON.stringify(bad).slice(0, 80));
    }
    assert.ok(LimitsBody.safeParse({ apps: Array.from({ length: 100 }, (_, i) => `owner/app-${i}`), monthly_budget: 0 }).success);
  });
});

describe("TenantDirectory", () => {
  it("answers an unconfigured tenant with weight 1 and no limits, and configures nothing", async () => {
    const directory = new TenantDirectory({ store });
    assert.deepEqual(await directory.settingsOf("nobody"), { name: "nobody", weight: 1, limits: {} });
    assert.equal(await store.getTenant("nobody"), null);
  });

  it("reads a tenant once per TTL, shares one read among concurrent calls, and sees its own writes at once", async () => {
    let clock = 1_000_000;
    const counted = countingStore(store);
    const directory = new TenantDirectory({ store: counted.store, ttlMs: 5000, now: () => clock });
    await store.putTenant({ name: "acme", weight: 2, limits: { requestsPerMinute: 10 } });

    const [a, b] = await Promise.all([directory.settingsOf("acme"), directory.settingsOf("acme")]);
    assert.deepEqual(a, { name: "acme", weight: 2, limits: { requestsPerMinute: 10 } });
    assert.deepEqual(b, a);
    assert.equal(counted.reads(), 1, "concurrent calls share one read");
    clock += 4999;
    await directory.settingsOf("acme");
    assert.equal(counted.reads(), 1, "cached within the TTL");

    // Written by another gateway: seen once the TTL passes.
    await store.putTenant({ name: "acme", weight: 3, limits: {} });
    assert.equal((await directory.settingsOf("acme")).weight, 2);
    clock += 1;
    assert.equal((await directory.settingsOf("acme")).weight, 3);
    assert.equal(counted.reads(), 2);

    // Written through the directory: seen at once, without another read.
    await directory.put({ name: "acme", weight: 7, limits: { apps: ["darkroom/*"] } });
    assert.deepEqual(await directory.settingsOf("acme"), { name: "acme", weight: 7, limits: { apps: ["darkroom/*"] } });
    assert.equal(counted.reads(), 2);
  });

  it("does not keep a failed read", async () => {
    const counted = countingStore(store);
    const directory = new TenantDirectory({ store: counted.store });
    counted.fail(true);
    await assert.rejects(directory.settingsOf("acme"), /database down/);
    counted.fail(false);
    assert.equal((await directory.settingsOf("acme")).weight, 1);
    assert.equal(counted.reads(), 2);
  });

  it("resolves a key's tenancy: its tenant (its own id without one), the weight and both sets of limits", async () => {
    const directory = new TenantDirectory({ store });
    await store.putTenant({ name: "acme", weight: 4, limits: { requestsPerMinute: 100, apps: ["darkroom/*"] } });
    const tenancy = await directory.tenancyOf({ id: "dk_1", tenant: "acme", limits: { requestsPerMinute: 10, maxQueued: 5 } });
    assert.deepEqual(tenancy, {
      tenant: "acme",
      weight: 4,
      limits: { requestsPerMinute: 10, maxQueued: 5, apps: ["darkroom/*"] },
      keyLimits: { requestsPerMinute: 10, maxQueued: 5 },
      tenantLimits: { requestsPerMinute: 100, apps: ["darkroom/*"] },
    });
    const own = await directory.tenancyOf({ id: "dk_2", tenant: null, limits: {} });
    assert.equal(own.tenant, "dk_2");
    assert.equal(own.weight, 1);
  });
});

describe("RequestRateLimiter", () => {
  const MINUTE = 60_000;

  it("admits the limit, then refuses with the seconds until one more call fits", () => {
    let clock = 10 * MINUTE; // the start of a window
    const limiter = new RequestRateLimiter({ now: () => clock });
    const key = [{ name: "key:a", limit: 3 }];
    for (let i = 0; i < 3; i++) assert.deepEqual(limiter.take(key), { admitted: true });
    clock += 10_000;
    const refused = limiter.take(key);
    assert.equal(refused.admitted, false);
    // 3 calls this window: in the next one they weigh 3 × (1 − elapsed), below 2 a third of the way in.
    assert.equal(!refused.admitted && refused.retryAfterSeconds, 50 + 20);
    clock += 69_999;
    assert.equal(limiter.take(key).admitted, false);
    clock += 1;
    assert.equal(limiter.take(key).admitted, true);
  });

  it("slides: the previous window's calls weigh less as the new one goes on", () => {
    let clock = 0;
    const limiter = new RequestRateLimiter({ now: () => clock });
    const budget = [{ name: "tenant:t", limit: 10 }];
    for (let i = 0; i < 10; i++) assert.equal(limiter.take(budget).admitted, true);
    clock = MINUTE + MINUTE / 2; // half way into the next window: the 10 weigh 5
    for (let i = 0; i < 4; i++) assert.equal(limiter.take(budget).admitted, true, `call ${i}`);
    // 5 + 4 = 9 < 10: one more fits, then none.
    assert.equal(limiter.take(budget).admitted, true);
    const refused = limiter.take(budget);
    assert.equal(refused.admitted, false);
    // 5 this window: the previous window's 10 must weigh 4 or less, at 60 % of the window (6 s more).
    assert.equal(!refused.admitted && refused.retryAfterSeconds, 6);
  });

  it("counts a refused call against no budget, and names the one with the longest wait", () => {
    let clock = 0;
    const limiter = new RequestRateLimiter({ now: () => clock });
    const tenant = { name: "tenant:shared", limit: 2 };
    assert.equal(limiter.take([{ name: "key:a", limit: 5 }, tenant]).admitted, true);
    assert.equal(limiter.take([{ name: "key:b", limit: 5 }, tenant]).admitted, true);
    // The tenant's budget is spent by a and b together: a third call of either is refused...
    const refused = limiter.take([{ name: "key:a", limit: 5 }, tenant]);
    assert.ok(!refused.admitted);
    assert.equal(refused.budget.name, "tenant:shared");
    // ...and was not counted against a's own budget: a key-only call of a still has 4 left.
    for (let i = 0; i < 4; i++) assert.equal(limiter.take([{ name: "key:a", limit: 5 }]).admitted, true);
    assert.equal(limiter.take([{ name: "key:a", limit: 5 }]).admitted, false);

    // Both spent: the answer is the longer wait. At 30 s, z's one call weighs 1 until the end of the
    // next window (90 s); y's two weigh 1 half way into it (60 s).
    assert.equal(limiter.take([{ name: "tenant:z", limit: 1 }]).admitted, true);
    clock = 30_000;
    assert.equal(limiter.take([{ name: "key:y", limit: 2 }]).admitted, true);
    assert.equal(limiter.take([{ name: "key:y", limit: 2 }]).admitted, true);
    const both = limiter.take([{ name: "key:y", limit: 2 }, { name: "tenant:z", limit: 1 }]);
    assert.deepEqual(both, { admitted: false, budget: { name: "tenant:z", limit: 1 }, retryAfterSeconds: 90 });
    const keyOnly = limiter.take([{ name: "key:y", limit: 2 }]);
    assert.equal(!keyOnly.admitted && keyOnly.retryAfterSeconds, 60);
  });

  it("forgets names whose windows are past, so made-up names cannot grow it", () => {
    let clock = 0;
    const limiter = new RequestRateLimiter({ now: () => clock });
    for (let i = 0; i < 1000; i++) limiter.take([{ name: `tenant:made-up-${i}`, limit: 1 }]);
    assert.equal(limiter.size, 1000);
    clock = MINUTE;
    limiter.take([{ name: "key:live", limit: 1 }]);
    assert.equal(limiter.size, 1001, "the previous window still counts");
    clock = 2 * MINUTE;
    limiter.take([{ name: "key:other", limit: 1 }]);
    assert.equal(limiter.size, 2, "names of two windows ago are dropped");
  });
});

describe("KeyService with tenants", () => {
  it("creates a key in a tenant that does not exist, with limits, and creates no tenant", async () => {
    const keys = new KeyService({ store });
    const created = await keys.create({ name: "ci", scope: "api", tenant: "acme", limits: { requestsPerMinute: 5 } });
    const stored = await store.getKey(created.id);
    assert.equal(stored?.tenant, "acme");
    assert.deepEqual(stored?.limits, { requestsPerMinute: 5 });
    assert.equal(await store.getTenant("acme"), null);
    const plain = await keys.create({ name: "plain", scope: "api" });
    assert.equal((await store.getKey(plain.id))?.tenant, null);
    assert.deepEqual((await store.getKey(plain.id))?.limits, {});
  });

  it("sees a changed tenant and limits on the key's next call, for the key and its tokens", async () => {
    const tokens = new TokenService(Buffer.alloc(32, 7));
    const keys = new KeyService({ store, tokens, recordCacheMs: 60_000 });
    const created = await keys.create({ name: "ci", scope: "api" });
    const header = `Key ${created.id}:${created.secret}`;
    const token = `Bearer ${tokens.issue({ keyId: created.id, scope: "api", allowedApps: ["echo"] }).token}`;
    const before = await keys.verify(header);
    assert.equal(before?.tenant, null);

    assert.equal(await keys.update(created.id, { tenant: "acme", limits: { apps: ["darkroom/*"] } }), true);
    for (const auth of [header, token]) {
      const after = await keys.verify(auth);
      assert.ok(after, auth.slice(0, 10));
      const tenancy = await keys.tenants.tenancyOf(after);
      assert.equal(tenancy.tenant, "acme");
      assert.deepEqual(tenancy.limits, { apps: ["darkroom/*"] });
    }
    assert.equal(await keys.update("dk_missing", { name: "x" }), false);
  });
});
