/**
 * Wrong secrets for a known key id must not be an attack on everyone else: hashing is bounded and
 * failures are throttled per key id and per address, so honest callers (file reads, requests with a
 * key that verified before) stay fast during a flood, and the key's owner is not locked out.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AuthThrottle } from "../../src/auth/auth-throttle.js";
import { isPlatformError } from "../../src/core/errors.js";
import { ADMIN_KEY, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

const ADMIN_ID = ADMIN_KEY.slice(0, ADMIN_KEY.indexOf(":"));

describe("AuthThrottle", () => {
  it("refuses with Retry-After once a key id or an address is past its failure budget, until the window turns", () => {
    let now = 1_000_000;
    const throttle = new AuthThrottle({ failuresPerKey: 3, failuresPerClient: 5, windowMs: 60_000, now: () => now });
    for (let i = 0; i < 3; i++) {
      throttle.admit("dk_a", "10.0.0.1");
      throttle.recordFailure("dk_a", "10.0.0.1", `wrong-${i}`);
    }
    assert.throws(() => throttle.admit("dk_a", "10.0.0.2"), (e: unknown) => isPlatformError(e) && e.code === "ERR_AUTH_THROTTLED" && e.headers["retry-after"] === "60");
    // Another id from the same address still has budget left (3 of 5 used).
    throttle.admit("dk_b", "10.0.0.1");
    throttle.recordFailure("dk_b", "10.0.0.1", "wrong");
    throttle.recordFailure("dk_c", "10.0.0.1", "wrong");
    assert.throws(() => throttle.admit("dk_d", "10.0.0.1"), /this address/);
    now += 45_000;
    assert.throws(() => throttle.admit("dk_a", "10.0.0.3"), (e: unknown) => isPlatformError(e) && e.headers["retry-after"] === "15");
    now += 15_000;
    throttle.admit("dk_a", "10.0.0.1");
  });

  it("remembers a failed pair briefly", () => {
    let now = 0;
    const throttle = new AuthThrottle({ failureMemoryMs: 1000, now: () => now });
    throttle.recordFailure("dk_a", undefined, "guess");
    assert.equal(throttle.failedRecently("dk_a", "guess"), true);
    assert.equal(throttle.failedRecently("dk_a", "other"), false);
    now += 1001;
    assert.equal(throttle.failedRecently("dk_a", "guess"), false);
  });

  it("runs at most `hashSlots` hashes at once and refuses past `maxWaiting`", async () => {
    const throttle = new AuthThrottle({ hashSlots: 2, maxWaiting: 3 });
    let running = 0;
    let most = 0;
    const work = async (): Promise<string> => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 20));
      running--;
      return "done";
    };
    const results = await Promise.allSettled(Array.from({ length: 7 }, () => throttle.hash(work)));
    assert.equal(most, 2);
    assert.deepEqual(results.map((r) => r.status), ["fulfilled", "fulfilled", "fulfilled", "fulfilled", "fulfilled", "rejected", "rejected"]);
    // Slots free up again afterwards.
    assert.equal(await throttle.hash(work), "done");
  });
});

describe("a flood of wrong secrets for the admin id", { timeout: 60_000 }, () => {
  let p: TestPlatform;
  let fileUrl: string;

  before(async () => {
    p = await startTestPlatform();
    const uploaded = await fetch(`${p.url}/files/upload`, { method: "POST", headers: { ...p.auth, "content-type": "application/octet-stream" }, body: new Blob([Buffer.alloc(256 * 1024, 7)]) });
    fileUrl = ((await uploaded.json()) as { access_url: string }).access_url;
    // The owner's key verified once before the flood, as it would be on a busy server.
    assert.equal((await http(p, "GET", "/v1/models")).status, 200);
  });

  after(async () => {
    await p?.close();
  });

  it("keeps honest file reads and the owner's calls fast, and answers the flood with 429", async () => {
    let flooding = true;
    const floodStatuses: number[] = [];
    const flood = Array.from({ length: 64 }, async (_, worker) => {
      for (let i = 0; flooding; i++) {
        const res = await fetch(`${p.url}/v1/requests`, { headers: { authorization: `Key ${ADMIN_ID}:guess-${worker}-${i}` } }).catch(() => null);
        if (res) {
          floodStatuses.push(res.status);
          await res.arrayBuffer();
        }
      }
    });
    const honest: number[] = [];
    const deadline = Date.now() + 4000;
    while (Date.now() < deadline) {
      for (const [url, headers] of [
        [fileUrl, {}],
        [`${p.url}/v1/models`, p.auth],
      ] as const) {
        const started = performance.now();
        const res = await fetch(url, { headers });
        await res.arrayBuffer();
        assert.equal(res.status, 200);
        honest.push(performance.now() - started);
      }
    }
    flooding = false;
    await Promise.all(flood);

    honest.sort((a, b) => a - b);
    const p90 = honest[Math.floor(honest.length * 0.9)] ?? Infinity;
    assert.ok(p90 < 300, `honest p90 ${p90.toFixed(0)} ms over ${honest.length} calls`);
    const unauthorised = floodStatuses.filter((s) => s === 401).length;
    const throttled = floodStatuses.filter((s) => s === 429).length;
    assert.equal(unauthorised + throttled, floodStatuses.length, "every guess is refused");
    // Only the first guesses (the budgets, plus those in flight as they ran out) were hashed.
    assert.ok(unauthorised <= 20 + 64, `${unauthorised} guesses answered 401`);
    assert.ok(throttled > floodStatuses.length / 2, `${throttled} of ${floodStatuses.length} answered 429`);

    const refused = await fetch(`${p.url}/v1/requests`, { headers: { authorization: `Key ${ADMIN_ID}:one-more-guess` } });
    assert.equal(refused.status, 429);
    assert.match(refused.headers.get("retry-after") ?? "", /^\d+$/);
    assert.equal(((await refused.json()) as { error_type: string }).error_type, "rate_limited");
    // The owner is not locked out.
    assert.equal((await http(p, "GET", "/v1/requests")).status, 200);
  });
});

describe("refusals that cost no hash", { timeout: 60_000 }, () => {
  let p: TestPlatform;

  before(async () => {
    p = await startTestPlatform();
  });

  after(async () => {
    await p?.close();
  });

  it("do not lock other keys out of the caller's address: made-up ids and a stale secret repeated", async () => {
    const created = await http(p, "POST", "/v1/keys", { name: "behind the same NAT", scope: "api" });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const key = created.body.key as string;
    const id = key.slice(0, key.indexOf(":"));
    // Far past the per-address budget (20): ids nobody has, and one wrong secret sent again and again.
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`${p.url}/v1/requests`, { headers: { authorization: `Key dk_madeup${i}:whatever` } });
      assert.equal(res.status, 401);
      await res.arrayBuffer();
    }
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`${p.url}/v1/requests`, { headers: { authorization: `Key ${id}:a-stale-secret` } });
      assert.equal(res.status, 401);
      await res.arrayBuffer();
    }
    // The new key's first check needs a hash, from the same address: it is not refused.
    const owner = await fetch(`${p.url}/v1/requests`, { headers: { authorization: `Key ${key}` } });
    assert.equal(owner.status, 200, await owner.text());
  });
});

describe("failure budgets behind a reverse proxy (--trust-proxy)", { timeout: 60_000 }, () => {
  let p: TestPlatform;

  before(async () => {
    p = await startTestPlatform({ env: { DARKROOM_TRUST_PROXY: "loopback" } });
  });

  after(async () => {
    await p?.close();
  });

  it("counts failures per caller named by X-Forwarded-For, not per proxy", async () => {
    const mk = async (name: string): Promise<string> => {
      const created = await http(p, "POST", "/v1/keys", { name, scope: "api" });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return created.body.key as string;
    };
    const target = await mk("guessed at");
    const targetId = target.slice(0, target.indexOf(":"));
    const fresh = await mk("first used after the guessing");
    // 20 wrong secrets (each hashed) from one caller exhaust that caller's budget.
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${p.url}/v1/requests`, { headers: { authorization: `Key ${targetId}:guess-${i}`, "x-forwarded-for": "203.0.113.5" } });
      assert.equal(res.status, 401);
      await res.arrayBuffer();
    }
    const sameCaller = await fetch(`${p.url}/v1/requests`, { headers: { authorization: `Key ${fresh}`, "x-forwarded-for": "203.0.113.5" } });
    assert.equal(sameCaller.status, 429, await sameCaller.text());
    // Another caller through the same proxy is not held back.
    const otherCaller = await fetch(`${p.url}/v1/requests`, { headers: { authorization: `Key ${fresh}`, "x-forwarded-for": "198.51.100.7" } });
    assert.equal(otherCaller.status, 200, await otherCaller.text());
  });
});
