/**
 * The runner protocol over HTTP, end to end: a real gateway that starts no runners of its own, and
 * `darkroom runner` processes serving the echo app through /runner/v1. Requests run, stream logs and
 * progress, upload output files, cancel, and survive a runner killed mid-run: each ends exactly once.
 * @module
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createFalClient } from "@fal-ai/client";
import { encode } from "@msgpack/msgpack";
import { ADMIN_KEY, ECHO_APP, eventually, http, REPO_ROOT, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { cancel, readSse, record, sleep, submit, waitCompleted } from "../helpers/queue.js";
import { openRealtime } from "../helpers/realtime-socket.js";
import { startRunnerProcess, type RunnerProcess } from "../helpers/remote-runner.js";

const APP = "darkroom/echo";
const LEASE_MS = 1500;

describe("runner protocol over HTTP", () => {
  let p: TestPlatform;
  let token: string;
  const runners: RunnerProcess[] = [];

  before(async () => {
    p = await startTestPlatform({ env: { DARKROOM_LOCAL_RUNNERS: "false", DARKROOM_LEASE_MS: String(LEASE_MS) } });
    const minted = await http(p, "POST", "/v1/runner-tokens", { apps: [APP] });
    assert.equal(minted.status, 201, JSON.stringify(minted.body));
    token = minted.body.token as string;
    runners.push(await startRunnerProcess({ gateways: [p.url], token, app: APP, slots: 4 }));
  });

  after(async () => {
    await Promise.all(runners.map((r) => r.kill()));
    await p.close();
  });

  it("runs a request on a remote runner: output, logs and progress on the status stream", async () => {
    const id = await submit(p, APP, { message: { hello: "world" }, logs: ["first line", "second line"], progress_steps: 3, sleep_ms: 300 });
    const sse = await readSse(p, `/queue/${APP}/requests/${id}/status/stream?logs=1`);
    const last = sse.events.at(-1);
    assert.equal(last.status, "COMPLETED");
    const logs = sse.events.flatMap((e) => (e.logs ?? []) as { message: string }[]).map((l) => l.message);
    assert.deepEqual([...new Set(logs)], ["first line", "second line"]);
    const steps = sse.events.filter((e) => e.progress).map((e) => e.progress.step as number);
    assert.ok(steps.length >= 1, "progress reached the status stream");
    assert.deepEqual(steps, [...steps].sort((a, b) => a - b));
    const res = await http(p, "GET", `/queue/${APP}/requests/${id}`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { message: { hello: "world" }, attempt: 1 });
    const stored = await p.store.get(id);
    assert.equal(stored?.state, "SUCCEEDED");
    assert.equal(stored?.leaseOwner, runners[0]?.runnerId, "the remote runner held it");
  });

  it("reports the remote runner's start phase by phase in /v1/ops and /metrics, its first request included", async () => {
    const start = await eventually(async () => {
      const ops = await http(p, "GET", "/v1/ops");
      const app = (ops.body.apps as any[]).find((a) => a.app === APP);
      const first = (app?.recent_cold_starts as any[] | undefined)?.find((c) => c.runner === runners[0]?.runnerId);
      return first?.first_request_ms != null ? first : null;
    }, 10_000);
    assert.equal(start.spare, false);
    assert.equal(start.spawn_ms, null, "the gateway did not start the process");
    assert.ok(start.runtime_ms > 0, "Node and the runner's modules took time to load");
    assert.ok(start.import_ms > 0 && start.setup_ms >= 0);
    assert.ok(start.ready_ms >= start.runtime_ms + start.import_ms, JSON.stringify(start));
    assert.ok(start.first_request_ms > 0);
    const metrics = await (await fetch(`${p.url}/metrics`)).text();
    for (const phase of ["runtime", "import", "setup", "first_request"]) {
      assert.match(metrics, new RegExp(`darkroom_cold_start_phase_seconds_count\\{app="darkroom/echo",phase="${phase}"\\} [1-9]`), phase);
    }
  });

  it("uploads output files through the gateway: the URL serves the exact bytes", async () => {
    const payload = Buffer.from("bytes made on another machine \u2014 \u00e9\u00e8");
    const res = await http(p, "POST", `/run/${APP}`, { file_url: `data:text/plain;base64,${payload.toString("base64")}` });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const file = res.body.file as { url: string; file_size: number; content_type: string };
    assert.equal(file.file_size, payload.length);
    assert.match(file.url, new RegExp(`^${p.url}/files/outputs/`));
    const got = Buffer.from(await (await fetch(file.url)).arrayBuffer());
    assert.deepEqual(got, payload);
  });

  it("reads an input file uploaded to the gateway through its /files/ URL", async () => {
    const payload = Buffer.from("uploaded to the gateway, read on another machine");
    const uploaded = await fetch(`${p.url}/files/upload`, { method: "POST", headers: { ...p.auth, "content-type": "text/plain" }, body: payload });
    assert.equal(uploaded.status, 200);
    const { access_url: url } = (await uploaded.json()) as { access_url: string };
    const res = await http(p, "POST", `/run/${APP}`, { file_url: url });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const got = Buffer.from(await (await fetch((res.body.file as { url: string }).url)).arrayBuffer());
    assert.deepEqual(got, payload);
  });

  it("a large input kept in storage reaches the remote runner whole", async () => {
    const message = { lines: Array.from({ length: 8000 }, (_, i) => `${i}: stored input — ${"y".repeat(240)}`) };
    const res = await http(p, "POST", `/run/${APP}`, { message });
    assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
    assert.deepEqual(res.body.message, message);
    const stored = await p.store.get(res.headers.get("x-fal-request-id") as string);
    assert.ok(JSON.stringify(stored?.input).length < 1024, "the row holds a reference, not the 2 MB input");
  });

  it("works with the official fal client, logs included", async () => {
    const fal = createFalClient({ credentials: ADMIN_KEY, proxyUrl: { url: `${p.url}/api/fal/proxy`, when: "always" } } as never);
    const seen: string[] = [];
    const result = await fal.subscribe(APP, {
      input: { message: "via fal", logs: ["from the remote runner"] },
      logs: true,
      onQueueUpdate: (update) => {
        for (const log of (update as { logs?: { message: string }[] }).logs ?? []) seen.push(log.message);
      },
    });
    assert.deepEqual(result.data, { message: "via fal", attempt: 1 });
    assert.ok(seen.includes("from the remote runner"), `logs seen: ${JSON.stringify(seen)}`);
  });

  it("input the app refuses comes back as fal's 422 with field errors", async () => {
    const res = await http(p, "POST", `/run/${APP}`, { fail: "validation" });
    assert.equal(res.status, 422);
    assert.equal(res.body.detail[0].loc.at(-1), "fail");
  });

  it("cancelling a running request aborts the remote handler and ends it once, as cancelled", async () => {
    const id = await submit(p, APP, { sleep_ms: 20_000, progress_steps: 200 });
    await eventually(async () => (await record(p, id)).state === "RUNNING", 10_000);
    const cancelledAt = Date.now();
    assert.equal((await cancel(p, APP, id)).status, 202);
    const done = await waitCompleted(p, APP, id, 10_000);
    assert.equal(done.error_type, "client_cancelled");
    // The heartbeat carries the cancellation: well under the 20 s the handler would have slept.
    assert.ok(Date.now() - cancelledAt < LEASE_MS * 3, `took ${Date.now() - cancelledAt} ms`);
    const usage = await p.store.listUsage({ appId: APP });
    assert.equal(usage.filter((u) => u.requestId === id).length, 1);
    assert.equal((await record(p, id)).state, "CANCELLED");
  });

  it("a runner killed mid-run: its lease expires and another runner completes the request, once", async () => {
    const second = await startRunnerProcess({ gateways: [p.url], token, app: APP, slots: 4 });
    runners.push(second);
    const first = runners[0] as RunnerProcess;
    // Either runner may take it: kill the one that did.
    const id = await submit(p, APP, { message: "survivor", sleep_ms: 1500, progress_steps: 3 });
    const holder = await eventually(async () => {
      const r = await p.store.get(id);
      return r?.state === "RUNNING" ? r.leaseOwner : null;
    }, 10_000);
    const victim = [first, second].find((r) => r.runnerId === holder);
    assert.ok(victim, `held by ${holder}, not one of the test's runners`);
    await victim.kill();
    const done = await waitCompleted(p, APP, id, 20_000);
    assert.equal(done.error, undefined, JSON.stringify(done));
    const res = await http(p, "GET", `/queue/${APP}/requests/${id}`);
    assert.deepEqual(res.body, { message: "survivor", attempt: 2 });
    const usage = await p.store.listUsage({ appId: APP });
    assert.equal(usage.filter((u) => u.requestId === id).length, 1, "exactly one terminal write");
  });

  it("refuses outcomes from a runner that does not hold the lease (409 lease_lost) and keeps the request", async () => {
    const id = await submit(p, APP, { message: "keep me", sleep_ms: 800 });
    const done = await waitCompleted(p, APP, id, 10_000);
    assert.equal(done.error, undefined);
    const forged = await fetch(`${p.url}/runner/v1/requests/${id}/result`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ runner_id: "rr-someoneelse01", attempt: 1, output: { message: "forged" } }),
    });
    assert.equal(forged.status, 409);
    assert.equal(((await forged.json()) as { error_type: string }).error_type, "lease_lost");
    const res = await http(p, "GET", `/queue/${APP}/requests/${id}`);
    assert.equal(res.body.message, "keep me");
  });

  it("runner tokens serve their apps and nothing else; API keys cannot act as runners", async () => {
    const bearer = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    // Not the platform API, not the apps.
    assert.equal((await fetch(`${p.url}/v1/keys`, { headers: bearer })).status, 403);
    assert.equal((await fetch(`${p.url}/run/${APP}`, { method: "POST", headers: bearer, body: "{}" })).status, 403);
    // Not another app.
    const other = await fetch(`${p.url}/runner/v1/lease`, { method: "POST", headers: bearer, body: JSON.stringify({ runner_id: "rr-testrunner01", app_id: "darkroom/upscale", slots: 1, wait_ms: 0 }) });
    assert.equal(other.status, 403);
    // No credentials; an API key.
    assert.equal((await fetch(`${p.url}/runner/v1/lease`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status, 401);
    const key = await http(p, "POST", "/v1/keys", { name: "api", scope: "api" });
    const apiAuth = { authorization: `Key ${key.body.key as string}`, "content-type": "application/json" };
    assert.equal((await fetch(`${p.url}/runner/v1/lease`, { method: "POST", headers: apiAuth, body: JSON.stringify({ runner_id: "rr-testrunner01", app_id: APP, slots: 1, wait_ms: 0 }) })).status, 403);
    // Only admins mint runner tokens.
    assert.equal((await fetch(`${p.url}/v1/runner-tokens`, { method: "POST", headers: apiAuth, body: JSON.stringify({ apps: [APP] }) })).status, 403);
    // A runner token is traded for a fresh one for the same apps.
    const refreshed = await fetch(`${p.url}/runner/v1/token`, { method: "POST", headers: bearer, body: "{}" });
    assert.equal(refreshed.status, 200);
    const fresh = ((await refreshed.json()) as { token: string }).token;
    assert.notEqual(fresh, token);
    const lease = await fetch(`${p.url}/runner/v1/lease`, { method: "POST", headers: { ...bearer, authorization: `Bearer ${fresh}` }, body: JSON.stringify({ runner_id: "rr-testrunner01", app_id: APP, slots: 1, wait_ms: 0 }) });
    assert.equal(lease.status, 200);
    assert.deepEqual(await lease.json(), { runs: [] });
  });

  it("a malformed runner call gets fal's 422 and the server stays up", async () => {
    const bearer = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    for (const [route, body] of [
      ["/runner/v1/lease", { runner_id: "bad id", app_id: APP, slots: 1 }],
      ["/runner/v1/lease", { runner_id: "rr-testrunner01", app_id: APP, slots: 10_000 }],
      ["/runner/v1/heartbeat", { runner_id: "rr-testrunner01", requests: "nope" }],
      ["/runner/v1/register", { protocol: 1, app: { id: "no-slash", endpoints: [] } }],
      ["/runner/v1/requests/x/events", { runner_id: "rr-testrunner01", attempt: 1, events: [{ type: "nope" }] }],
    ] as const) {
      const res = await fetch(`${p.url}${route}`, { method: "POST", headers: bearer, body: JSON.stringify(body) });
      assert.equal(res.status, 422, `${route} ${JSON.stringify(body)} → ${res.status}`);
      const parsed = (await res.json()) as { detail: unknown[] };
      assert.ok(Array.isArray(parsed.detail) && parsed.detail.length > 0);
    }
    const upload = await fetch(`${p.url}/runner/v1/files/outputs/../../etc/passwd`, { method: "PUT", headers: { authorization: `Bearer ${token}` }, body: "x" });
    assert.ok(upload.status === 400 || upload.status === 404, `traversal upload → ${upload.status}`);
    assert.equal((await fetch(`${p.url}/health`)).status, 200);
  });

  it("realtime messages to an app with no local runners go to its remote runner, one by one, and are never stored", async () => {
    const { socket, answers: results } = await openRealtime(p.url, APP, `Key ${ADMIN_KEY}`);
    const before = (await p.store.list({ appId: APP, limit: 500 })).length;
    socket.send(JSON.stringify({ message: "first", request_id: "a" }));
    socket.send(Buffer.from(encode({ message: { n: 2 }, request_id: "b" })));
    socket.send(Buffer.from(encode({ message: "third", request_id: 3 })));
    socket.send(JSON.stringify({ message: "fourth", request_id: "d" }));
    await eventually(() => results().length >= 4, 15_000);
    socket.close();
    assert.deepEqual(results(), [
      { binary: true, value: { message: "first", request_id: "a" } },
      { binary: true, value: { message: { n: 2 }, request_id: "b" } },
      results()[2],
      { binary: true, value: { message: "fourth", request_id: "d" } },
    ]);
    assert.equal(results()[2]?.value.error, "VALIDATION_ERROR", "a refused message is answered alone; the next goes on");
    assert.equal((await p.store.list({ appId: APP, limit: 500 })).length, before, "realtime messages are not requests");
  });

  it("a draining runner finishes what it holds before it exits", async () => {
    const extra = await startRunnerProcess({ gateways: [p.url], token, app: APP, slots: 1 });
    // Stop the other runners from taking the request: it must land on `extra`.
    for (const r of runners) await r.stop();
    const id = await submit(p, APP, { message: "drained", sleep_ms: 1200 });
    await eventually(async () => (await record(p, id)).state === "RUNNING", 10_000);
    const code = await extra.stop();
    assert.equal(code, 0, extra.output());
    const res = await http(p, "GET", `/queue/${APP}/requests/${id}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, { message: "drained", attempt: 1 });
  });
});

describe("remote apps the gateway does not load", () => {
  let p: TestPlatform;

  before(async () => {
    // The gateway loads no app at all: the runner brings its own.
    p = await startTestPlatform({ appModules: [], env: { DARKROOM_LOCAL_RUNNERS: "false", DARKROOM_LEASE_MS: String(LEASE_MS) } });
  });

  after(async () => p.close());

  it("learns the app from the runner's registration, lists it and serves it", async () => {
    const appModule = path.join(REPO_ROOT, "test/fixtures/apps/warm.ts");
    const minted = await http(p, "POST", "/v1/runner-tokens", { apps: ["darkroom-test/warm"] });
    assert.equal(minted.status, 201);
    assert.equal((await http(p, "GET", "/v1/models/darkroom-test/warm")).status, 404);
    const runner = await startRunnerProcess({ gateways: [p.url], token: minted.body.token as string, app: appModule });
    try {
      const listed = await http(p, "GET", "/v1/models");
      assert.ok((listed.body.models as { endpoint_id: string }[]).some((m) => m.endpoint_id === "darkroom-test/warm"), JSON.stringify(listed.body));
      const res = await http(p, "POST", "/run/darkroom-test/warm", {});
      assert.equal(res.status, 200, JSON.stringify(res.body));
      await sleep(10);
    } finally {
      await runner.kill();
    }
  });

  it("a runner token for another app cannot register this one", async () => {
    const minted = await http(p, "POST", "/v1/runner-tokens", { apps: ["test/other"] });
    const res = await fetch(`${p.url}/runner/v1/register`, {
      method: "POST",
      headers: { authorization: `Bearer ${minted.body.token as string}`, "content-type": "application/json" },
      body: JSON.stringify({ protocol: 1, app: { id: "darkroom-test/warm", endpoints: [{ path: "", input: { type: "object" } }] } }),
    });
    assert.equal(res.status, 403);
    void ECHO_APP;
  });
});

describe("a gateway whose apps run on runner machines", () => {
  it("does not judge an app by what its own machine lacks: requests queue for the runners", async () => {
    const p = await startTestPlatform({ appModules: [path.join(REPO_ROOT, "test/fixtures/apps/unavailable.ts")], env: { DARKROOM_LOCAL_RUNNERS: "false" } });
    try {
      const listed = await http(p, "GET", "/v1/models?endpoint_id=darkroom-test/unavailable");
      assert.equal(listed.body.models[0].availability.available, true, JSON.stringify(listed.body.models[0]));
      const queued = await http(p, "POST", "/queue/darkroom-test/unavailable", {});
      assert.equal(queued.status, 200, JSON.stringify(queued.body));
    } finally {
      await p.close();
    }
  });

  it("the claim answer carries a spilled input read back from storage; one whose file is gone fails", async () => {
    const p = await startTestPlatform({ env: { DARKROOM_LOCAL_RUNNERS: "false", DARKROOM_INPUT_SPILL_BYTES: "1024" } });
    const lease = async (): Promise<{ runs: { request_id: string; input: unknown; sync_mode: boolean }[] }> => {
      const res = await fetch(`${p.url}/runner/v1/lease`, { method: "POST", headers: { ...p.auth, "content-type": "application/json" }, body: JSON.stringify({ runner_id: "rr-spilledinputs", app_id: APP, slots: 1, wait_ms: 0 }) });
      assert.equal(res.status, 200);
      return (await res.json()) as never;
    };
    try {
      const input = { message: "z".repeat(4096), sync_mode: true };
      const id = await submit(p, APP, input);
      const { runs } = await lease();
      assert.equal(runs[0]?.request_id, id);
      assert.deepEqual(runs[0]?.input, input);
      assert.equal(runs[0]?.sync_mode, true, "sync_mode is read from the stored input");

      const lost = await submit(p, APP, { message: "w".repeat(4096) });
      const ref = (await p.store.get(lost))?.input as { $darkroom: { spilled_input: string } };
      await p.storage.delete(ref.$darkroom.spilled_input);
      assert.deepEqual(await lease(), { runs: [] });
      const failed = await record(p, lost);
      assert.equal(failed.state, "FAILED");
      assert.match(String(failed.error), /input is no longer in storage/);
    } finally {
      await p.close();
    }
  });

  it("a lease call waits for work, and a runner that hangs up mid-poll leaves no request claimed", async () => {
    const app = "darkroom-test/unavailable";
    const p = await startTestPlatform({ appModules: [path.join(REPO_ROOT, "test/fixtures/apps/unavailable.ts")], env: { DARKROOM_LOCAL_RUNNERS: "false" } });
    const lease = (runnerId: string, waitMs: number, signal?: AbortSignal): Promise<Response> =>
      fetch(`${p.url}/runner/v1/lease`, { method: "POST", headers: { ...p.auth, "content-type": "application/json" }, body: JSON.stringify({ runner_id: runnerId, app_id: app, slots: 1, wait_ms: waitMs }), ...(signal ? { signal } : {}) });
    try {
      // Nothing queued: the call holds for its wait, then answers with no runs.
      const started = Date.now();
      const empty = await lease("rr-patientwaiter", 1200);
      assert.deepEqual(await empty.json(), { runs: [] });
      assert.ok(Date.now() - started >= 1000, `answered after ${Date.now() - started} ms`);

      // A poll that is woken by a submit hands the request out at once.
      const waiting = lease("rr-wokenwaiter01", 10_000);
      await sleep(200);
      const wokenAt = Date.now();
      const submitted = await http(p, "POST", `/queue/${app}`, { n: 1 });
      const woken = (await (await waiting).json()) as { runs: { request_id: string; attempt: number }[] };
      assert.equal(woken.runs[0]?.request_id, submitted.body.request_id);
      assert.ok(Date.now() - wokenAt < 1000, "woken by the submit, not by the one-second recheck");

      // The runner hangs up; a request submitted afterwards stays queued at attempt 1.
      const controller = new AbortController();
      const abandoned = lease("rr-gonewaiter001", 10_000, controller.signal).catch(() => null);
      await sleep(200);
      controller.abort();
      await abandoned;
      await sleep(100);
      const later = await http(p, "POST", `/queue/${app}`, { n: 2 });
      await sleep(500);
      const record = await p.store.get(later.body.request_id as string);
      assert.equal(record?.state, "QUEUED");
      assert.equal(record?.attempt, 1);
    } finally {
      await p.close();
    }
  });
});
