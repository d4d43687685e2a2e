/**
 * Tenants and key limits over HTTP on a real server: the keys and tenants routes (strict bodies,
 * admin only), a key's tenant on its requests (tokens included), and the limits the gateway enforces
 * at submit: `apps` (403 naming the app and whose limit) and `requests_per_minute` (429 in fal's
 * shape with Retry-After), counted per key and per tenant.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

interface CreatedKey {
  id: string;
  key: string;
  tenant: string;
  limits: Record<string, unknown>;
}

const NO_LIMITS = { max_concurrency: null, requests_per_minute: null, apps: null, monthly_budget: null, max_queued: null };

describe("tenants and key limits", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform();
  });
  after(() => p.close());

  async function createKey(body: Record<string, unknown>): Promise<CreatedKey> {
    const res = await http(p, "POST", "/v1/keys", body);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body as CreatedKey;
  }
  const as = (key: CreatedKey | string) => ({ url: p.url, auth: { authorization: typeof key === "string" ? key : `Key ${key.key}` } });

  it("creates keys with a tenant and limits, shows them snake_case, and creates no tenant", async () => {
    const key = await createKey({
      name: "acme ci",
      tenant: "acme-1",
      limits: { max_concurrency: 2, requests_per_minute: 30, apps: ["darkroom/*"], monthly_budget: 12.5, max_queued: 10 },
    });
    assert.equal(key.tenant, "acme-1");
    assert.deepEqual(key.limits, { max_concurrency: 2, requests_per_minute: 30, apps: ["darkroom/*"], monthly_budget: 12.5, max_queued: 10 });
    const own = await createKey({ name: "loner" });
    assert.equal(own.tenant, own.id, "a key without a tenant is its own");
    assert.deepEqual(own.limits, NO_LIMITS);

    const listed = await http(p, "GET", "/v1/keys");
    const byId = new Map((listed.body.keys as CreatedKey[]).map((k) => [k.id, k]));
    assert.equal(byId.get(key.id)?.tenant, "acme-1");
    assert.deepEqual(byId.get(key.id)?.limits, key.limits);
    assert.equal(byId.get(own.id)?.tenant, own.id);
    assert.equal(byId.get("dk_testadmin")?.tenant, "dk_testadmin");

    // The tenant exists only as a name on a key: defaults, not configured.
    const tenant = await http(p, "GET", "/v1/tenants/acme-1");
    assert.equal(tenant.status, 200);
    assert.deepEqual(tenant.body, { name: "acme-1", weight: 1, limits: NO_LIMITS, keys: 1, configured: false, created_at: null, updated_at: null });
  });

  it("refuses unknown fields, in the body and in limits, and bad values with fal's 422", async () => {
    const cases: [unknown, (string | number)[], string][] = [
      [{ name: "x", tenat: "acme" }, ["body", "tenat"], "extra_forbidden"],
      [{ name: "x", limits: { rpm: 5 } }, ["body", "limits", "rpm"], "extra_forbidden"],
      [{ name: "x", tenant: "has space" }, ["body", "tenant"], "invalid_format"],
      [{ name: "x", tenant: "a".repeat(65) }, ["body", "tenant"], "invalid_format"],
      [{ name: "x", limits: { max_concurrency: 0 } }, ["body", "limits", "max_concurrency"], "too_small"],
      [{ name: "x", limits: { requests_per_minute: 2.5 } }, ["body", "limits", "requests_per_minute"], "invalid_type"],
      [{ name: "x", limits: { monthly_budget: -1 } }, ["body", "limits", "monthly_budget"], "too_small"],
      [{ name: "x", limits: { apps: ["not an app"] } }, ["body", "limits", "apps", 0], "invalid_format"],
      [{ name: "x", limits: { apps: Array.from({ length: 101 }, (_, i) => `o/a${i}`) } }, ["body", "limits", "apps"], "too_big"],
    ];
    for (const [body, loc, type] of cases) {
      const res = await http(p, "POST", "/v1/keys", body);
      assert.equal(res.status, 422, JSON.stringify(body).slice(0, 80));
      assert.ok(Array.isArray(res.body.detail), "fal's validation shape: detail[]");
      assert.deepEqual(res.body.detail[0].loc, loc, JSON.stringify(res.body.detail));
      assert.equal(res.body.detail[0].type, type, JSON.stringify(res.body.detail));
    }
    const keys = (await http(p, "GET", "/v1/keys")).body.keys as { name: string }[];
    assert.ok(!keys.some((k) => k.name === "x"), "no refused body created a key");
  });

  it("changes a key's name, tenant and limits with PATCH, strictly", async () => {
    const key = await createKey({ name: "before", tenant: "team-a", limits: { requests_per_minute: 5 } });
    const patched = await http(p, "PATCH", `/v1/keys/${key.id}`, { name: "after", tenant: "team-b", limits: { max_queued: 3 } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.name, "after");
    assert.equal(patched.body.tenant, "team-b");
    assert.deepEqual(patched.body.limits, { ...NO_LIMITS, max_queued: 3 }, "limits are replaced whole");

    const own = await http(p, "PATCH", `/v1/keys/${key.id}`, { tenant: null });
    assert.equal(own.body.tenant, key.id, "null makes the key its own tenant again");
    assert.equal(own.body.name, "after", "what the patch leaves out stays");

    const unknown = await http(p, "PATCH", `/v1/keys/${key.id}`, { scope: "admin" });
    assert.equal(unknown.status, 422);
    assert.deepEqual(unknown.body.detail[0].loc, ["body", "scope"]);
    const missing = await http(p, "PATCH", "/v1/keys/dk_nope", { name: "x" });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error_type, "not_found");
    const notAdmin = await http(as(key), "PATCH", `/v1/keys/${key.id}`, { tenant: "mine" });
    assert.equal(notAdmin.status, 403);
  });

  it("lists, shows and replaces tenants (admin only), and refuses bad bodies", async () => {
    await createKey({ name: "k1", tenant: "globex" });
    const k2 = await createKey({ name: "k2", tenant: "globex" });
    const put = await http(p, "PUT", "/v1/tenants/globex", { weight: 2.5, limits: { requests_per_minute: 600, apps: ["darkroom/*"] } });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.name, "globex");
    assert.equal(put.body.weight, 2.5);
    assert.deepEqual(put.body.limits, { ...NO_LIMITS, requests_per_minute: 600, apps: ["darkroom/*"] });
    assert.equal(put.body.keys, 2);
    assert.equal(put.body.configured, true);
    assert.match(put.body.created_at, /^\d{4}-/);

    // A tenant nobody's key names yet, configured ahead.
    assert.equal((await http(p, "PUT", "/v1/tenants/initech", {})).status, 200);
    const list = await http(p, "GET", "/v1/tenants");
    assert.equal(list.status, 200);
    const names = (list.body.tenants as { name: string }[]).map((t) => t.name);
    assert.deepEqual(names, [...names].sort(), "by name");
    for (const name of ["globex", "initech", "dk_testadmin"]) assert.ok(names.includes(name), name);
    const initech = (list.body.tenants as { name: string; weight: number; keys: number; configured: boolean }[]).find((t) => t.name === "initech");
    assert.deepEqual([initech?.weight, initech?.keys, initech?.configured], [1, 0, true]);

    // PUT replaces: what it leaves out goes back to the defaults.
    const replaced = await http(p, "PUT", "/v1/tenants/globex", { limits: { max_concurrency: 1 } });
    assert.equal(replaced.body.weight, 1);
    assert.deepEqual(replaced.body.limits, { ...NO_LIMITS, max_concurrency: 1 });
    assert.deepEqual((await http(p, "GET", "/v1/tenants/globex")).body.limits, replaced.body.limits);

    for (const [body, loc] of [
      [{ weight: 0 }, ["body", "weight"]],
      [{ weight: 1001 }, ["body", "weight"]],
      [{ weight: 1, name: "x" }, ["body", "name"]],
      [{ limits: { budget: 5 } }, ["body", "limits", "budget"]],
    ] as const) {
      const res = await http(p, "PUT", "/v1/tenants/globex", body);
      assert.equal(res.status, 422, JSON.stringify(body));
      assert.deepEqual(res.body.detail[0].loc, loc);
    }
    assert.equal((await http(p, "PUT", "/v1/tenants/bad%20name", {})).status, 422);
    const unknown = await http(p, "GET", "/v1/tenants/nobody-has-this");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error_type, "not_found");

    const token = await http(p, "POST", "/rest/tokens/", { allowed_apps: ["echo"] });
    for (const caller of [as(k2), as(`Bearer ${token.body as string}`)]) {
      for (const [method, route, body] of [
        ["GET", "/v1/tenants", undefined],
        ["GET", "/v1/tenants/globex", undefined],
        ["PUT", "/v1/tenants/globex", { weight: 1000 }],
      ] as const) {
        const res = await http(caller, method, route, body);
        assert.equal(res.status, 403, `${method} ${route}`);
        assert.equal(res.body.error_type, "forbidden");
      }
    }
  });

  it("records the key's tenant on its requests, for a token of the key too", async () => {
    const key = await createKey({ name: "tenant key", tenant: "umbrella" });
    const minted = await http(as(key), "POST", "/rest/tokens/", { allowed_apps: ["echo"] });
    assert.equal(minted.status, 201);
    const submitted = await http(as(`Bearer ${minted.body as string}`), "POST", "/queue/darkroom/echo", { message: "from a token" });
    assert.equal(submitted.status, 200, JSON.stringify(submitted.body));
    const shown = await http(p, "GET", `/v1/requests/${submitted.body.request_id as string}`);
    assert.equal(shown.status, 200);
    assert.equal(shown.body.tenant, "umbrella");

    const own = await createKey({ name: "own tenant" });
    const ran = await http(as(own), "POST", "/run/darkroom/echo", { message: "sync" });
    assert.equal(ran.status, 200);
    const listed = await http(p, "GET", "/v1/requests?limit=1");
    assert.equal(listed.body.requests[0].tenant, own.id, "a key without a tenant is its own");
  });

  it("refuses a call to an app outside the key's or the tenant's apps limit with 403 naming the app", async () => {
    const narrow = await createKey({ name: "narrow", limits: { apps: ["other/*"] } });
    for (const route of ["/run/darkroom/echo", "/queue/darkroom/echo"]) {
      const res = await http(as(narrow), "POST", route, { message: "x" });
      assert.equal(res.status, 403, route);
      assert.equal(res.headers.get("x-fal-error-type"), "forbidden");
      assert.equal(res.body.error_type, "forbidden");
      assert.match(res.body.detail, /darkroom\/echo is not in the apps limit of this key/);
    }

    assert.equal((await http(p, "PUT", "/v1/tenants/hooli", { limits: { apps: ["darkroom/upscale"] } })).status, 200);
    const member = await createKey({ name: "member", tenant: "hooli", limits: { apps: ["darkroom/*"] } });
    const byTenant = await http(as(member), "POST", "/queue/darkroom/echo", { message: "x" });
    assert.equal(byTenant.status, 403);
    assert.match(byTenant.body.detail, /darkroom\/echo is not in the apps limit of tenant 'hooli'/);

    // Both lists allow it: the call goes through (the tenant's change is seen at once here).
    assert.equal((await http(p, "PUT", "/v1/tenants/hooli", { limits: { apps: ["darkroom/echo"] } })).status, 200);
    const allowed = await http(as(member), "POST", "/run/darkroom/echo", { message: "ok" });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.body.message, "ok");
  });

  it("refuses calls past a key's requests per minute with 429, Retry-After and fal's error shape", async () => {
    const key = await createKey({ name: "limited", limits: { requests_per_minute: 2 } });
    assert.equal((await http(as(key), "POST", "/queue/darkroom/echo", { message: 1 })).status, 200);
    assert.equal((await http(as(key), "POST", "/run/darkroom/echo", { message: 2 })).status, 200);
    for (const route of ["/queue/darkroom/echo", "/run/darkroom/echo"]) {
      const refused = await http(as(key), "POST", route, { message: 3 });
      assert.equal(refused.status, 429, route);
      const retryAfter = refused.headers.get("retry-after");
      assert.match(retryAfter ?? "", /^\d+$/, "whole seconds");
      assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= 120, retryAfter ?? "");
      assert.equal(refused.headers.get("x-fal-error-type"), "rate_limited");
      assert.deepEqual(Object.keys(refused.body).sort(), ["detail", "error_type"]);
      assert.equal(refused.body.error_type, "rate_limited");
      assert.match(refused.body.detail, new RegExp(`This key may make 2 requests per minute; try again in ${retryAfter} s`));
    }
    // An invalid input is refused before it is counted, and other keys are not held up.
    assert.equal((await http(as(key), "POST", "/queue/darkroom/echo", { sleep_ms: "no" })).status, 422);
    assert.equal((await http(p, "POST", "/queue/darkroom/echo", { message: "admin" })).status, 200);
  });

  it("counts a tenant's limit over all its keys, and a key's over its own calls", async () => {
    assert.equal((await http(p, "PUT", "/v1/tenants/stark", { limits: { requests_per_minute: 3 } })).status, 200);
    const a = await createKey({ name: "a", tenant: "stark" });
    const b = await createKey({ name: "b", tenant: "stark", limits: { requests_per_minute: 1 } });
    assert.equal((await http(as(a), "POST", "/queue/darkroom/echo", {})).status, 200);
    assert.equal((await http(as(b), "POST", "/queue/darkroom/echo", {})).status, 200);
    const ownLimit = await http(as(b), "POST", "/queue/darkroom/echo", {});
    assert.equal(ownLimit.status, 429);
    assert.match(ownLimit.body.detail, /This key may make 1 requests per minute/);
    assert.equal((await http(as(a), "POST", "/queue/darkroom/echo", {})).status, 200);
    const tenantLimit = await http(as(a), "POST", "/queue/darkroom/echo", {});
    assert.equal(tenantLimit.status, 429);
    assert.match(tenantLimit.body.detail, /Tenant 'stark' may make 3 requests per minute/);
    assert.ok(Number(tenantLimit.headers.get("retry-after")) >= 1);

    // Moving a key to another tenant takes it out of the spent budget at once.
    assert.equal((await http(p, "PATCH", `/v1/keys/${a.id}`, { tenant: "wayne" })).status, 200);
    assert.equal((await http(as(a), "POST", "/queue/darkroom/echo", {})).status, 200);
  });
});
