/**
 * The limits that hold in the queue, on a real server: `max_concurrency` (requests beyond it wait,
 * keeping their place, and nobody else waits for them), `max_queued` (429 in fal's queue-full shape
 * past it) and `monthly_budget` (403 budget_exhausted once spent), for a key and for a tenant; and on
 * realtime sockets, which are refused at open by `apps` and held to `requests_per_minute` per message.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { encode } from "@msgpack/msgpack";
import WebSocket from "ws";
import { http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { sleep } from "../helpers/queue.js";

interface CreatedKey {
  id: string;
  key: string;
}

describe("queue limits", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform();
    // A warm runner, so that the timings below measure the queue and not a cold start.
    assert.equal((await http(p, "POST", "/run/darkroom/echo", {})).status, 200);
  });
  after(() => p.close());

  async function createKey(body: Record<string, unknown>): Promise<CreatedKey> {
    const res = await http(p, "POST", "/v1/keys", body);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body as CreatedKey;
  }
  const as = (key: CreatedKey) => ({ url: p.url, auth: { authorization: `Key ${key.key}` } });

  async function states(ids: string[]): Promise<string[]> {
    return Promise.all(ids.map(async (id) => (await http(p, "GET", `/queue/darkroom/echo/requests/${id}/status`)).body.status as string));
  }

  it("runs a tenant's requests at most max_concurrency at a time while others pass it", async () => {
    assert.equal((await http(p, "PUT", "/v1/tenants/initech", { limits: { max_concurrency: 1 } })).status, 200);
    const key = await createKey({ name: "initech", tenant: "initech" });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const submitted = await http(as(key), "POST", "/queue/darkroom/echo", { message: `m${i}`, sleep_ms: 400 });
      assert.equal(submitted.status, 200);
      ids.push(submitted.body.request_id as string);
    }
    // Another tenant's request does not wait behind the limited ones.
    const other = await createKey({ name: "other" });
    const started = Date.now();
    const quick = await http(as(other), "POST", "/run/darkroom/echo", { message: "quick" });
    assert.equal(quick.status, 200);
    assert.equal(quick.body.message, "quick");
    assert.ok(Date.now() - started < 1000, `the other tenant waited ${Date.now() - started} ms`);

    let mostAtOnce = 0;
    for (;;) {
      const now = await states(ids);
      mostAtOnce = Math.max(mostAtOnce, now.filter((s) => s === "IN_PROGRESS").length);
      if (now.every((s) => s === "COMPLETED")) break;
      await sleep(50);
    }
    assert.equal(mostAtOnce, 1);
    // They ran one after the other, in the order they were submitted.
    const records = await Promise.all(ids.map(async (id) => (await http(p, "GET", `/v1/requests/${id}`)).body as { started_at: string; finished_at: string }));
    for (let i = 1; i < records.length; i++) {
      assert.ok(Date.parse(records[i]!.started_at) >= Date.parse(records[i - 1]!.finished_at) - 5, JSON.stringify(records));
    }
  });

  it("refuses a submit past a key's max_queued with 429 queue_full, and takes one again once the queue moves", async () => {
    const key = await createKey({ name: "queued", limits: { max_concurrency: 1, max_queued: 2 } });
    const submit = () => http(as(key), "POST", "/queue/darkroom/echo", { sleep_ms: 600 });
    const first = await submit();
    assert.equal(first.status, 200);
    // Wait until the first runs: only then are the next two the ones waiting.
    for (let i = 0; i < 100 && (await states([first.body.request_id as string]))[0] !== "IN_PROGRESS"; i++) await sleep(20);
    assert.equal((await submit()).status, 200);
    assert.equal((await submit()).status, 200);
    const refused = await submit();
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error_type, "queue_full");
    assert.equal(refused.headers.get("x-fal-error-type"), "queue_full");
    assert.match(refused.body.detail, /This key has 2 requests waiting, its max_queued limit/);
    // The first finishes, the second starts: one place is free again.
    for (let i = 0; i < 100 && (await states([first.body.request_id as string]))[0] !== "COMPLETED"; i++) await sleep(50);
    await sleep(100);
    assert.equal((await submit()).status, 200);
  });

  it("refuses calls once a tenant's monthly budget is spent, and passes them again when it is raised", async () => {
    const priced = await http(p, "PUT", "/v1/models/pricing", { prices: [{ endpoint_id: "darkroom/echo", unit_price: 0.01, unit: "request", currency: "USD" }] });
    assert.equal(priced.status, 200, JSON.stringify(priced.body));
    assert.equal((await http(p, "PUT", "/v1/tenants/frugal", { limits: { monthly_budget: 0.02 } })).status, 200);
    const key = await createKey({ name: "frugal", tenant: "frugal" });
    assert.equal((await http(as(key), "POST", "/run/darkroom/echo", { message: 1 })).status, 200);
    assert.equal((await http(as(key), "POST", "/run/darkroom/echo", { message: 2 })).status, 200);
    // Spend is reread every few seconds: after that, two requests at 0.01 have spent the 0.02.
    await sleep(5_200);
    const refused = await http(as(key), "POST", "/queue/darkroom/echo", { message: 3 });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error_type, "budget_exhausted");
    assert.equal(refused.headers.get("x-fal-error-type"), "budget_exhausted");
    const monthEnd = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth() + 1, 1)).toISOString();
    assert.equal(refused.body.detail, `Tenant 'frugal' has spent 0.0200 USD of its monthly budget of 0.02 USD; calls pass again from ${monthEnd} or when the budget is raised`);
    // Other tenants are not held to it.
    assert.equal((await http(p, "POST", "/run/darkroom/echo", { message: "admin" })).status, 200);
    assert.equal((await http(p, "PUT", "/v1/tenants/frugal", { limits: { monthly_budget: 1 } })).status, 200);
    assert.equal((await http(as(key), "POST", "/run/darkroom/echo", { message: 4 })).status, 200);
  });

  it("holds realtime sockets to the apps limit when they open and to requests per minute per message", async () => {
    const wsBase = p.url.replace(/^http/, "ws");
    /** Opens a socket, sends `messages` inputs, and collects what comes back until it closes or goes quiet. */
    async function session(key: CreatedKey, messages: number): Promise<{ frames: string[]; closed: boolean }> {
      const socket = new WebSocket(`${wsBase}/darkroom/echo/realtime`, { headers: { authorization: `Key ${key.key}` } });
      const frames: string[] = [];
      let closed = false;
      socket.on("message", (data: Buffer, isBinary: boolean) => frames.push(isBinary ? "<result>" : data.toString("utf8")));
      socket.on("close", () => (closed = true));
      await new Promise<void>((resolve, reject) => {
        socket.once("open", () => resolve());
        socket.once("error", reject);
      });
      for (let i = 0; i < messages; i++) socket.send(encode({ message: `m${i}`, request_id: `r${i}` }));
      // Every message ends in a result or an error frame; timing frames come beside results.
      const answered = (): number => frames.filter((f) => !f.includes('"timings"')).length;
      for (let i = 0; i < 100 && !closed && answered() < messages; i++) await sleep(50);
      await sleep(200);
      socket.close();
      return { frames, closed };
    }

    const elsewhere = await createKey({ name: "rt-apps", limits: { apps: ["darkroom/upscale"] } });
    const refused = await session(elsewhere, 0);
    assert.equal(refused.closed, true);
    const control = JSON.parse(refused.frames[0] ?? "{}") as { type?: string; error?: string; reason?: string };
    assert.equal(control.type, "x-fal-error");
    assert.equal(control.error, "FORBIDDEN");
    assert.match(control.reason ?? "", /darkroom\/echo is not in the apps limit of this key/);

    const limited = await createKey({ name: "rt-rate", limits: { requests_per_minute: 2 } });
    const { frames } = await session(limited, 3);
    assert.equal(frames.filter((f) => f === "<result>").length, 2, frames.join("\n"));
    const rateFrames = frames.filter((f) => f.includes("RATE_LIMITED")).map((f) => JSON.parse(f) as { reason: string });
    assert.equal(rateFrames.length, 1, frames.join("\n"));
    assert.match(rateFrames[0]!.reason, /This key may make 2 requests per minute/);
  });
});
