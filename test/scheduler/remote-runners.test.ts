/**
 * The scheduler as remote runners see it, without a server or a runner process: a Scheduler that
 * starts no runners of its own on an in-memory SQLite store, driven the way the runner API drives
 * it (claim, events, outcome, release), and its apps registered by remote runners.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, it } from "node:test";
import { PlatformError } from "../../src/core/errors.js";
import { DEFAULT_KNOBS, type AppManifest, type RequestRecord } from "../../src/core/types.js";
import { Scheduler } from "../../src/scheduler/scheduler.js";
import { WorkflowDocument } from "../../src/workflows/document.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { NewRequest, Store } from "../../src/store/store.js";

const APP = "test/remote";

function manifest(id = APP): AppManifest {
  return { id, version: "1", metadata: {}, knobs: { ...DEFAULT_KNOBS }, endpoints: [], modulePath: "" } as unknown as AppManifest;
}

function request(overrides: Partial<NewRequest> = {}): NewRequest {
  return { id: randomUUID(), appId: APP, endpoint: "", input: {}, priority: "normal", mode: "queue", startDeadline: null, maxAttempts: 3, webhookUrl: null, keyId: null, baseUrl: "http://127.0.0.1:8787", ...overrides };
}

describe("Scheduler with remote runners only", () => {
  let store: Store;
  let scheduler: Scheduler;
  let finished: RequestRecord[];

  beforeEach(async () => {
    store = createSqliteStore({ path: ":memory:" });
    await store.migrate();
    finished = [];
    scheduler = new Scheduler({ store, apps: [manifest()], runnerEnv: {}, localRunners: false, onFinished: (record) => finished.push(record) });
    await scheduler.start();
  });

  afterEach(async () => {
    await scheduler.stop(100);
    await store.close();
  });

  it("wakes a long poll on submit, leases to the remote runner, and ends the request with its outcome", async () => {
    let woken = 0;
    const stopWatching = scheduler.watchQueue(APP, () => (woken += 1));
    const { record, queuePosition } = await scheduler.submit(request());
    stopWatching();
    assert.equal(record.state, "QUEUED");
    assert.equal(queuePosition, 0, "no local runner claims it");
    assert.equal(woken, 1);

    const claimed = await scheduler.claimForRemote(APP, "remote-1", 4);
    assert.deepEqual(claimed.map((r) => [r.id, r.state, r.leaseOwner]), [[record.id, "RUNNING", "remote-1"]]);

    const ended = scheduler.waitForTerminal(record.id);
    await scheduler.remoteEvent(record.id, { type: "progress", progress: { fraction: 0.5 } });
    assert.deepEqual(scheduler.progressOf(record.id), { fraction: 0.5 });
    const done = await scheduler.remoteOutcome(record.id, { owner: "remote-1", attempt: 1 }, { ok: true, output: { x: 1 } });
    assert.equal(done?.state, "SUCCEEDED");
    assert.equal((await ended).state, "SUCCEEDED");
    assert.deepEqual(finished.map((r) => r.id), [record.id]);
    assert.equal(await scheduler.remoteOutcome(record.id, { owner: "remote-1", attempt: 1 }, { ok: true, output: null }), null, "a second outcome changes nothing");
  });

  it("keeps a remote runner's final server error for /v1/ops", async () => {
    const { record } = await scheduler.submit(request({ maxAttempts: 1 }));
    await scheduler.claimForRemote(APP, "remote-1", 1);
    const error = new PlatformError("ERR_INTERNAL", { message: "boom" });
    const done = await scheduler.remoteOutcome(record.id, { owner: "remote-1", attempt: 1 }, { ok: false, error });
    assert.equal(done?.state, "FAILED");
    assert.deepEqual(scheduler.snapshot()[0]?.recent_errors.map((e) => [e.request_id, e.message]), [[record.id, "boom"]]);
  });

  it("puts back claims a remote runner never received, at the same attempt", async () => {
    const { record } = await scheduler.submit(request());
    const claimed = await scheduler.claimForRemote(APP, "remote-1", 1);
    let woken = 0;
    scheduler.watchQueue(APP, () => (woken += 1));
    await scheduler.releaseRemote(claimed, "remote-1");
    const back = await store.get(record.id);
    assert.equal(back?.state, "QUEUED");
    assert.equal(back?.attempt, 1);
    assert.equal(woken, 1);
  });

  it("cancels a queued request at once", async () => {
    const { record } = await scheduler.submit(request());
    assert.equal(await scheduler.cancel(record.id), "removed");
    assert.equal(finished[0]?.state, "CANCELLED");
    assert.equal(await scheduler.cancel(randomUUID()), "not_found");
  });

  it("hands realtime messages to the remote runner that leases next, ahead of queued work, and never stores them", async () => {
    await scheduler.submit(request());
    const partials: unknown[] = [];
    const answer = scheduler.invokeEphemeral(APP, "", { n: 1 }, "http://127.0.0.1", (data) => partials.push(data));
    const [call] = scheduler.takeRemoteCalls(APP, "rr-runner-one", 4);
    assert.ok(call, "the message is leased");
    assert.match(call.id, /^rt-/);
    assert.deepEqual(call.input, { n: 1 });
    assert.equal(scheduler.remoteCall(call.id, "rr-runner-two"), null, "only its runner holds it");
    assert.deepEqual(scheduler.remoteCall(call.id, "rr-runner-one")?.appId, APP);
    scheduler.remoteCallPartial(call.id, "rr-runner-one", { step: 1 });
    assert.equal(scheduler.remoteCallAnswered(call.id, "rr-runner-two", { ok: true, output: "not mine" }), false);
    assert.equal(scheduler.remoteCallAnswered(call.id, "rr-runner-one", { ok: true, output: { n: 2 } }), true);
    assert.deepEqual(await answer, { n: 2 });
    assert.deepEqual(partials, [{ step: 1 }]);
    assert.equal(scheduler.remoteCall(call.id, "rr-runner-one"), null, "answered once");
    assert.equal((await store.list({ appId: APP })).length, 1, "only the queued request is stored");

    const failing = scheduler.invokeEphemeral(APP, "", {}, "http://127.0.0.1");
    const [second] = scheduler.takeRemoteCalls(APP, "rr-runner-one", 1);
    scheduler.remoteCallAnswered(second!.id, "rr-runner-one", { ok: false, error: new PlatformError("ERR_VALIDATION", { message: "no" }) });
    await assert.rejects(failing, (err: PlatformError) => err.code === "ERR_VALIDATION");
    await assert.rejects(scheduler.invokeEphemeral("nobody/none", "", {}, "http://127.0.0.1"), (err: PlatformError) => err.code === "ERR_APP_NOT_FOUND");
  });

  it("answers a realtime message no remote runner takes with APP_UNAVAILABLE, and one not answered in time with a timeout", async () => {
    const quick = new Scheduler({ store, apps: [{ ...manifest(), knobs: { ...DEFAULT_KNOBS, request_timeout: 1 } }], runnerEnv: {}, localRunners: false, remoteCallPickupMs: 100 });
    try {
      await assert.rejects(quick.invokeEphemeral(APP, "", {}, "http://127.0.0.1"), (err: PlatformError) => err.code === "ERR_APP_UNAVAILABLE" && /took the message/.test(err.message));
      const unanswered = quick.invokeEphemeral(APP, "", {}, "http://127.0.0.1");
      assert.equal(quick.takeRemoteCalls(APP, "rr-runner-one", 1).length, 1);
      await assert.rejects(unanswered, (err: PlatformError) => err.code === "ERR_REQUEST_TIMEOUT");
      assert.deepEqual(quick.takeRemoteCalls(APP, "rr-runner-one", 1), [], "nothing is left waiting");
    } finally {
      await quick.stop(100);
    }
  });

  it("serves an app a remote runner registered, and so does another scheduler on the store", async () => {
    await scheduler.registerRemoteApp(manifest("python/app"));
    const served = scheduler.app("python/app");
    assert.equal(served?.remote, true);
    assert.equal(served?.knobs.min_runners, 0);
    assert.deepEqual(scheduler.apps.map((a) => a.id).sort(), [APP, "python/app"].sort());

    const other = new Scheduler({ store, apps: [], runnerEnv: {}, localRunners: false });
    await other.loadRemoteApps();
    assert.equal(other.app("python/app")?.remote, true);
    await other.stop(100);
  });

  it("serves a workflow another gateway registered on the store, once it hears of it", async () => {
    const doc = WorkflowDocument.parse({ name: "w", contents: { nodes: { input: { type: "input", input: { x: "" } }, a: { type: "run", depends: ["input"], app: APP, input: { x: "$input.x" } } } } });
    await store.putWorkflow("acme/w", JSON.stringify(doc), 1);
    scheduler.registerWorkflow("acme/w", doc);
    const other = new Scheduler({ store, apps: [manifest()], runnerEnv: {}, localRunners: false });
    try {
      assert.equal(other.app("acme/w"), undefined);
      await other.loadRemoteApps();
      assert.equal(other.app("acme/w")?.workflow, true);
      assert.equal(other.app("acme/w")?.metadata.category, "workflow");
    } finally {
      await other.stop(100);
    }
  });
});
