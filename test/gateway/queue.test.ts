/**
 * Queue semantics over HTTP (docs/api.md, Queue): queue positions and priorities, status codes and the
 * keys fal's clients require, the status stream, results of failed and timed-out requests,
 * cancellation in every state, and usage records.
 *
 * One server serves the whole file. `slow-single` has one runner with one slot, so a request
 * submitted while it is busy is reliably queued; every test leaves that runner idle again.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ECHO_APP, eventually, http, startTestPlatform, TEST_APPS, type TestPlatform } from "../helpers/platform.js";
import { cancel, readSse, record, result, sleep, status, submit, waitCompleted, waitFor } from "../helpers/queue.js";

const SLOW = "darkroom-test/slow-single";
const ECHO = "darkroom/echo";

describe("queue API", () => {
  let p: TestPlatform;

  before(async () => {
    p = await startTestPlatform({ appModules: [ECHO_APP, path.join(TEST_APPS, "slow-single.ts")] });
    // Start both apps' runners once so that the tests below measure queueing, not cold starts.
    assert.equal((await http(p, "POST", `/run/${SLOW}`, { ms: 0 })).status, 200);
    assert.equal((await http(p, "POST", `/run/${ECHO}`, {})).status, 200);
  });
  after(async () => {
    await p.close();
  });

  /** Occupies slow-single's only slot for `ms` and returns once the request is running. */
  async function occupy(ms: number, label = "blocker"): Promise<string> {
    const id = await submit(p, SLOW, { ms, label });
    await waitFor(p, SLOW, id, "IN_PROGRESS");
    return id;
  }

  /** Cancels the blocker (if still running) and waits until the runner is free again. */
  async function release(id: string): Promise<void> {
    await cancel(p, SLOW, id);
    await waitCompleted(p, SLOW, id);
  }

  it("reports exact queue positions, and closes the gap when a queued request is cancelled", async () => {
    const a = await occupy(10_000, "A");
    const submitted: Record<string, number> = {};
    const ids: Record<string, string> = {};
    for (const label of ["B", "C", "D"]) {
      const res = await http(p, "POST", `/queue/${SLOW}`, { label });
      assert.equal(res.status, 200);
      ids[label] = res.body.request_id;
      submitted[label] = res.body.queue_position;
    }
    assert.deepEqual(submitted, { B: 0, C: 1, D: 2 }, "queue_position in the submit replies");
    for (const [label, expected] of [["B", 0], ["C", 1], ["D", 2]] as const) {
      const s = await status(p, SLOW, ids[label]!);
      assert.equal(s.status, 202);
      assert.equal(s.body.status, "IN_QUEUE");
      assert.equal(s.body.queue_position, expected, `position of ${label}`);
    }
    const aStatus = await status(p, SLOW, a);
    assert.equal(aStatus.body.status, "IN_PROGRESS");
    assert.equal("queue_position" in aStatus.body, false, "a running request has no queue position");

    assert.equal((await cancel(p, SLOW, ids["C"]!)).status, 202);
    assert.equal((await status(p, SLOW, ids["B"]!)).body.queue_position, 0);
    assert.equal((await status(p, SLOW, ids["D"]!)).body.queue_position, 1);

    await release(a);
    for (const label of ["B", "D"]) {
      const done = await waitCompleted(p, SLOW, ids[label]!);
      assert.equal(done.error, undefined, `${label} should succeed`);
    }
    assert.equal((await record(p, ids["C"]!)).started_at, null, "the cancelled request never started");
  });

  it("runs normal-priority requests before low-priority ones", async () => {
    const blocker = await occupy(1500);
    const n1 = await submit(p, SLOW, { label: "N1", ms: 50 }, { "x-fal-queue-priority": "normal" });
    const l1 = await submit(p, SLOW, { label: "L1", ms: 50 }, { "x-fal-queue-priority": "low" });
    const n2 = await submit(p, SLOW, { label: "N2", ms: 50 });
    assert.equal((await status(p, SLOW, n1)).body.queue_position, 0);
    assert.equal((await status(p, SLOW, n2)).body.queue_position, 1);
    assert.equal((await status(p, SLOW, l1)).body.queue_position, 2, "low sits behind every normal request");
    await waitCompleted(p, SLOW, blocker);
    const finished: [string, number][] = [];
    for (const [label, id] of [["N1", n1], ["L1", l1], ["N2", n2]] as const) {
      await waitCompleted(p, SLOW, id);
      const r = await record(p, id);
      assert.equal(r.state, "SUCCEEDED");
      assert.equal(r.priority, label === "L1" ? "low" : "normal");
      finished.push([label, Date.parse(r.finished_at)]);
    }
    finished.sort((x, y) => x[1] - y[1]);
    assert.deepEqual(finished.map(([label]) => label), ["N1", "N2", "L1"]);
  });

  it("answers status with 202 while pending and 200 when completed, with the keys fal's clients require", async () => {
    const blocker = await occupy(1000);
    const id = await submit(p, SLOW, { label: "T", ms: 1500 });

    const queued = await status(p, SLOW, id, "1");
    assert.equal(queued.status, 202);
    assert.equal(queued.body.status, "IN_QUEUE");
    assert.equal(queued.body.queue_position, 0);
    assert.equal(queued.body.request_id, id);
    for (const key of ["response_url", "status_url", "cancel_url"]) assert.match(queued.body[key], /^http:\/\/127\.0\.0\.1:\d+\/queue\//);

    await waitFor(p, SLOW, id, "IN_PROGRESS");
    for (const [flag, withLogs] of [["1", true], ["true", true], ["0", false], ["false", false]] as const) {
      const s = await status(p, SLOW, id, flag);
      assert.equal(s.status, 202, `logs=${flag}`);
      assert.equal(s.body.status, "IN_PROGRESS");
      assert.ok("logs" in s.body, `IN_PROGRESS must carry the logs key (logs=${flag})`);
      if (withLogs) assert.ok(Array.isArray(s.body.logs), `logs=${flag} returns the lines`);
      else assert.equal(s.body.logs, null, `logs=${flag} returns null`);
    }

    await waitCompleted(p, SLOW, id);
    const done = await status(p, SLOW, id, "true");
    assert.equal(done.status, 200);
    assert.equal(done.body.status, "COMPLETED");
    assert.equal(typeof done.body.metrics.inference_time, "number");
    assert.ok(done.body.metrics.inference_time >= 1.4, `inference_time ${done.body.metrics.inference_time} s covers the 1.5 s run`);
    assert.deepEqual(done.body.logs.map((l: any) => l.message), ["started T"]);
    const log = done.body.logs[0];
    assert.equal(log.source, "USER");
    assert.equal(log.level, "INFO");
    assert.ok(!Number.isNaN(Date.parse(log.timestamp)));
    assert.equal(done.body.error, undefined);
    const withoutLogs = await status(p, SLOW, id, "0");
    assert.equal(withoutLogs.status, 200);
    assert.ok("logs" in withoutLogs.body, "COMPLETED must carry the logs key");
    assert.equal(withoutLogs.body.logs, null);
    await waitCompleted(p, SLOW, blocker);
  });

  it("streams status changes as server-sent events and closes after COMPLETED", async () => {
    const blocker = await occupy(1000);
    const id = await submit(p, SLOW, { label: "S", ms: 1200, logs: ["l1", "l2", "l3"] });
    const stream = await readSse(p, `/queue/${SLOW}/requests/${id}/status/stream?logs=1`);
    assert.equal(stream.status, 200);
    assert.match(stream.contentType, /^text\/event-stream/);
    assert.equal(stream.closedByServer, true, "the server ends the stream after COMPLETED");
    const statuses = stream.events.map((e) => e.status as string);
    assert.equal(statuses[0], "IN_QUEUE");
    assert.equal(statuses.at(-1), "COMPLETED");
    assert.equal(statuses.filter((s) => s === "COMPLETED").length, 1);
    const rank = { IN_QUEUE: 0, IN_PROGRESS: 1, COMPLETED: 2 } as Record<string, number>;
    for (let i = 1; i < statuses.length; i++) assert.ok(rank[statuses[i]!]! >= rank[statuses[i - 1]!]!, `status went back: ${statuses.join(",")}`);
    assert.ok(statuses.includes("IN_PROGRESS"));
    for (const e of stream.events) {
      assert.equal(e.request_id, id);
      if (e.status === "IN_QUEUE") assert.equal(typeof e.queue_position, "number");
      else assert.ok(Array.isArray(e.logs), "every later event carries its (new) log lines");
    }
    // fal's JS client appends each event's logs: every line must arrive exactly once, in order.
    const lines = stream.events.flatMap((e) => (e.logs ?? []).map((l: any) => l.message));
    assert.deepEqual(lines, ["started S", "l1", "l2", "l3"]);
    // Lines come while the request runs (300 ms apart), not all at once with the outcome.
    const whileRunning = stream.events.filter((e) => e.status === "IN_PROGRESS").flatMap((e) => (e.logs ?? []).map((l: any) => l.message));
    assert.deepEqual(whileRunning, ["started S", "l1", "l2", "l3"], `events: ${JSON.stringify(stream.events.map((e) => [e.status, e.logs?.length]))}`);
    await waitCompleted(p, SLOW, blocker);
  });

  it("refuses the result before completion and returns a failed request's error as the model's status", async () => {
    const blocker = await occupy(1000);
    const queued = await submit(p, SLOW, { label: "R" });
    const early = await result(p, SLOW, queued);
    assert.equal(early.status, 400);
    assert.equal(early.body.detail, "Request is still in progress");
    assert.equal(early.headers.get("x-fal-request-id"), queued);
    await waitCompleted(p, SLOW, queued);
    assert.equal((await result(p, SLOW, queued)).status, 200);
    await waitCompleted(p, SLOW, blocker);

    const failed = await submit(p, ECHO, { fail: "error" });
    const done = await waitCompleted(p, ECHO, failed);
    assert.equal(done.status, "COMPLETED");
    assert.match(done.error, /echo failed on request/);
    assert.equal(done.error_type, "runner_server_error", "an app's exception is the runner's server error");
    const res = await result(p, ECHO, failed);
    assert.equal(res.status, 500);
    assert.equal(res.headers.get("x-fal-error-type"), done.error_type, "the result's header agrees with the status");
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(res.body, { detail: "echo failed on request (fail: error)" });
    assert.equal(res.headers.get("x-fal-request-id"), failed);
    const r = await record(p, failed);
    assert.equal(r.state, "FAILED");
    assert.equal(r.attempt, 1, "an application error is not retried");

    // An app's 422 keeps fal's validation shape through the queue.
    const invalid = await submit(p, ECHO, { fail: "validation" });
    await waitCompleted(p, ECHO, invalid);
    const res422 = await result(p, ECHO, invalid);
    assert.equal(res422.status, 422);
    assert.deepEqual(res422.body.detail[0].loc, ["body", "fail"]);
    assert.equal(res422.headers.get("x-fal-error-type"), "bad_request");
  });

  it("carries partial results on the status stream while the request runs (a Darkroom addition)", async () => {
    const id = await submit(p, `${ECHO}/stream`, { message: "parts", progress_steps: 3, sleep_ms: 900 });
    const stream = await readSse(p, `/queue/${ECHO}/requests/${id}/status/stream`);
    const partials = stream.events.filter((e) => e.partial !== undefined);
    assert.ok(partials.every((e) => e.status === "IN_PROGRESS"), "partials come only while running");
    const steps = partials.map((e) => e.partial.step as number);
    assert.deepEqual(steps.slice(0, 2), [1, 2], `steps seen: ${JSON.stringify(steps)}`);
    assert.equal(partials[0].partial.message, "parts");
    assert.equal(stream.events.at(-1)?.status, "COMPLETED");
    assert.equal(stream.events.at(-1)?.partial, undefined);
  });

  it("starts a status stream opened mid-run with the latest partial result", async () => {
    const id = await submit(p, `${ECHO}/stream`, { message: "late", progress_steps: 4, sleep_ms: 2400 });
    // Wait for step 1 (progress, then its partial, 600 ms in), then connect well before step 2.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const s = await status(p, ECHO, id);
      if ((s.body.progress?.step ?? 0) >= 1) break;
      assert.ok(Date.now() < deadline, "step 1 was reported");
      await sleep(25);
    }
    await sleep(100);
    const stream = await readSse(p, `/queue/${ECHO}/requests/${id}/status/stream`);
    const first = stream.events[0];
    assert.equal(first?.status, "IN_PROGRESS");
    assert.equal(first?.partial?.step, 1, "the first event carries the partial sent before the client connected");
    assert.equal(first?.partial?.message, "late");
    const steps = stream.events.filter((e) => e.partial !== undefined).map((e) => e.partial.step as number);
    assert.deepEqual(steps.slice(0, 3), [1, 2, 3], `then the later ones in order: ${JSON.stringify(steps)}`);
    assert.equal(stream.events.at(-1)?.status, "COMPLETED");
  });

  it("ends a request that cannot start before x-fal-request-timeout with a user 504", async () => {
    const blocker = await occupy(4000);
    const started = Date.now();
    const id = await submit(p, SLOW, { label: "late" }, { "x-fal-request-timeout": "0.5" });
    const done = await waitCompleted(p, SLOW, id, 5000);
    assert.ok(Date.now() - started < 3000, "the deadline is enforced promptly");
    assert.equal(done.error_type, "request_timeout");
    const res = await result(p, SLOW, id);
    assert.equal(res.status, 504);
    assert.equal(res.headers.get("x-fal-request-timeout-type"), "user");
    assert.equal(res.headers.get("x-fal-error-type"), "request_timeout");
    assert.equal(res.body.error_type, "request_timeout");
    assert.equal(typeof res.body.detail, "string");
    assert.equal((await record(p, id)).started_at, null);

    const sync = await http(p, "POST", `/run/${SLOW}`, { label: "late-sync" }, { "x-fal-request-timeout": "0.5" });
    assert.equal(sync.status, 504);
    assert.equal(sync.headers.get("x-fal-request-timeout-type"), "user");
    assert.equal(sync.body.error_type, "request_timeout");
    await release(blocker);

    // Python sends the header as a float ("30.0"); garbage and non-positive values are refused.
    const py = await submit(p, SLOW, { label: "py" }, { "x-fal-request-timeout": "30.0" });
    const pyDone = await waitCompleted(p, SLOW, py);
    assert.equal(pyDone.error, undefined);
    for (const bad of ["soon", "0", "-1"]) {
      const res = await http(p, "POST", `/queue/${SLOW}`, {}, { "x-fal-request-timeout": bad });
      assert.equal(res.status, 400, `x-fal-request-timeout: ${bad}`);
      assert.equal(res.body.error_type, "bad_request");
    }
  });

  it("cancels a queued request before it runs and a running one cooperatively", async () => {
    const running = await occupy(5000, "running");
    const queued = await submit(p, SLOW, { label: "queued", logs: ["must not run"] });

    const c1 = await cancel(p, SLOW, queued);
    assert.equal(c1.status, 202);
    assert.deepEqual(c1.body, { status: "CANCELLATION_REQUESTED" });
    const done = await status(p, SLOW, queued, "1");
    assert.equal(done.status, 200);
    assert.equal(done.body.status, "COMPLETED");
    assert.equal(done.body.error_type, "client_cancelled");
    const res = await result(p, SLOW, queued);
    assert.equal(res.status, 499);
    assert.equal(res.body.error_type, "client_cancelled");
    assert.equal(typeof res.body.detail, "string");

    const cancelledAt = Date.now();
    const c2 = await cancel(p, SLOW, running);
    assert.equal(c2.status, 202);
    assert.deepEqual(c2.body, { status: "CANCELLATION_REQUESTED" });
    const runningDone = await waitCompleted(p, SLOW, running, 5000);
    assert.ok(Date.now() - cancelledAt < 1000, "a handler that honours its signal stops at once");
    assert.equal(runningDone.error_type, "client_cancelled");
    assert.equal((await result(p, SLOW, running)).status, 499);
    assert.equal((await record(p, running)).state, "CANCELLED");

    // The queued request never reached a handler, even after the runner became free.
    await sleep(300);
    const q = await record(p, queued);
    assert.equal(q.state, "CANCELLED");
    assert.equal(q.started_at, null);
    assert.deepEqual(q.logs, []);
  });

  it("kills a runner whose handler ignores cancellation, ends the request once and serves the next one on a new runner", async () => {
    const id = await submit(p, ECHO, { fail: "hang" });
    await waitFor(p, ECHO, id, "IN_PROGRESS");
    const before = await http(p, "GET", "/v1/ops");
    const echoBefore = (before.body.apps as any[]).find((a) => a.app === ECHO);
    const hungRunner = echoBefore.runners.find((r: any) => r.in_flight > 0);
    assert.ok(hungRunner, "the hanging request occupies a runner");

    let terminalEvents = 0;
    const unsubscribe = p.scheduler.events.subscribe(id, (event) => {
      if (event.type === "state" && ["SUCCEEDED", "FAILED", "CANCELLED"].includes(event.record.state)) terminalEvents += 1;
    });
    try {
      const cancelledAt = Date.now();
      assert.equal((await cancel(p, ECHO, id)).status, 202);
      const done = await waitCompleted(p, ECHO, id, 10_000);
      const took = Date.now() - cancelledAt;
      assert.ok(took >= 1400, `the runner gets its grace period first (${took} ms)`);
      assert.ok(took < 6000, `then it is killed (${took} ms)`);
      assert.equal(done.error_type, "client_cancelled");
      const first = await record(p, id);
      assert.equal(first.state, "CANCELLED");
      assert.equal(first.attempt, 1, "a cancelled request is not retried");
      await sleep(500);
      const later = await record(p, id);
      assert.equal(later.finished_at, first.finished_at, "the terminal state is written once");
      assert.equal(terminalEvents, 1);
    } finally {
      unsubscribe();
    }
    assert.throws(() => process.kill(hungRunner.pid, 0), "the hung runner's process is gone");

    const next = await http(p, "POST", `/run/${ECHO}`, { message: "after" });
    assert.equal(next.status, 200);
    assert.deepEqual(next.body, { message: "after", attempt: 1 });
    const ops = await http(p, "GET", "/v1/ops");
    const echoAfter = (ops.body.apps as any[]).find((a) => a.app === ECHO);
    assert.ok(echoAfter.runners.length > 0);
    assert.ok(echoAfter.runners.every((r: any) => r.id !== hungRunner.id));
  });

  it("answers cancel of a completed request with ALREADY_COMPLETED and of an unknown one with 404", async () => {
    const id = await submit(p, ECHO, { message: 1 });
    await waitCompleted(p, ECHO, id);
    const late = await cancel(p, ECHO, id);
    assert.equal(late.status, 400);
    assert.equal(late.body.status, "ALREADY_COMPLETED");
    assert.equal((await result(p, ECHO, id)).status, 200, "a late cancel leaves the result alone");

    const unknown = await cancel(p, ECHO, crypto.randomUUID());
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.status, "NOT_FOUND");
    // Addressed through another app, a real request id is unknown too.
    assert.equal((await cancel(p, SLOW, id)).status, 404);
  });

  it("records usage of finished requests without a webhook", async () => {
    const id = await submit(p, ECHO, { message: "usage", sleep_ms: 150 });
    await waitCompleted(p, ECHO, id);
    const entry = await eventually(async () => {
      const res = await http(p, "GET", `/v1/usage?app=${encodeURIComponent(ECHO)}`);
      assert.equal(res.status, 200);
      return (res.body.usage as any[]).find((u) => u.request_id === id);
    });
    assert.equal(entry.app_id, ECHO);
    assert.equal(entry.state, "SUCCEEDED");
    assert.equal(entry.billable_units, 1);
    assert.equal(typeof entry.queue_ms, "number");
    assert.ok(entry.queue_ms >= 0);
    assert.ok(entry.run_ms >= 140, `run_ms ${entry.run_ms} covers the 150 ms sleep`);
    assert.ok(!Number.isNaN(Date.parse(entry.finished_at)));
    const res = await http(p, "GET", `/v1/usage?app=${encodeURIComponent(ECHO)}`);
    assert.ok(res.body.summary[ECHO].requests >= 1);
  });
});
