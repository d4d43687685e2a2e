/**
 * Runner lifecycle through the public API: crashes and retries, hangs past request_timeout, setup
 * failures and startup timeouts, warm runners and keep_alive, scaling limits, metrics, and a
 * graceful shutdown that drains in-flight work.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { SETUP_ERROR } from "../fixtures/apps/flaky-setup.js";
import { ECHO_APP, eventually, http, startTestPlatform, TEST_APPS, type TestPlatform } from "../helpers/platform.js";
import { opsOf, record, result, sleep, submit, waitCompleted, waitFor } from "../helpers/queue.js";

const ECHO = "darkroom/echo";
const TIMEOUT = "darkroom-test/timeout-app";
const FLAKY = "darkroom-test/flaky-setup";
const HANG = "darkroom-test/hang-setup";
const WARM = "darkroom-test/warm";
const PAIR = "darkroom-test/pair";
const SLOW = "darkroom-test/slow-single";

const app = (file: string): string => path.join(TEST_APPS, file);

/** Counts the terminal state events the scheduler publishes for one request. */
function countTerminalEvents(p: TestPlatform, id: string): { readonly count: number; stop(): void } {
  let count = 0;
  const stop = p.scheduler.events.subscribe(id, (event) => {
    if (event.type === "state" && ["SUCCEEDED", "FAILED", "CANCELLED"].includes(event.record.state)) count += 1;
  });
  return {
    get count() {
      return count;
    },
    stop,
  };
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

describe("runners", () => {
  let p: TestPlatform;

  before(async () => {
    p = await startTestPlatform({
      appModules: [ECHO_APP, app("timeout-app.ts"), app("flaky-setup.ts"), app("hang-setup.ts"), app("warm.ts"), app("pair.ts")],
    });
  });
  after(async () => {
    await p.close();
  });

  it("retries a request whose runner crashes, then ends it once with runner_disconnected", async () => {
    const id = await submit(p, ECHO, { fail: "crash" });
    const terminal = countTerminalEvents(p, id);
    try {
      const done = await waitCompleted(p, ECHO, id, 30_000);
      assert.equal(done.status, "COMPLETED");
      assert.equal(done.error_type, "runner_disconnected");
      const res = await result(p, ECHO, id);
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("x-fal-error-type"), "runner_disconnected");
      assert.equal(res.body.error_type, "runner_disconnected");
      assert.equal(typeof res.body.detail, "string");
      const first = await record(p, id);
      assert.equal(first.state, "FAILED");
      assert.equal(first.attempt, 3, "the queue's default of 3 attempts was used up");
      for (let i = 0; i < 3; i++) {
        await sleep(200);
        assert.equal((await record(p, id)).finished_at, first.finished_at, "finished_at never changes once set");
      }
      assert.equal(terminal.count, 1, "exactly one terminal state");
    } finally {
      terminal.stop();
    }
  });

  it("retries the other requests a crash takes down, and they succeed", async () => {
    // One warm runner, so that every request below shares it.
    assert.equal((await http(p, "POST", `/run/${ECHO}`, {})).status, 200);
    const normal: string[] = [];
    for (let i = 0; i < 3; i++) normal.push(await submit(p, ECHO, { message: i, sleep_ms: 1500 }));
    for (const id of normal) await waitFor(p, ECHO, id, "IN_PROGRESS");
    const crash = await submit(p, ECHO, { fail: "crash" });

    for (const [i, id] of normal.entries()) {
      await waitCompleted(p, ECHO, id, 30_000);
      const res = await result(p, ECHO, id);
      assert.equal(res.status, 200, `request ${i}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.message, i);
      // The four are retried apart from other work in two halves; the one that shares a half with the
      // crashing request goes down with it once more and then runs alone, on its last attempt.
      assert.ok(res.body.attempt <= 3, `request ${i} needed ${res.body.attempt} attempts`);
    }
    const attempts = await Promise.all(normal.map(async (id) => (await record(p, id)).attempt as number));
    assert.ok(attempts.filter((n) => n === 3).length <= 1, `only the crashing request's neighbour in its half needs a third attempt: ${attempts.join(", ")}`);
    const crashed = await waitCompleted(p, ECHO, crash, 30_000);
    assert.equal(crashed.error_type, "runner_disconnected");
    assert.equal((await record(p, crash)).attempt, 3);
  });

  it("kills and replaces a runner that hangs past request_timeout", async () => {
    const id = await submit(p, TIMEOUT, { ms: 60_000 });
    await waitFor(p, TIMEOUT, id, "IN_PROGRESS");
    const hung = (await opsOf(p, TIMEOUT)).runners[0];
    const started = Date.now();
    const done = await waitCompleted(p, TIMEOUT, id, 40_000);
    assert.equal(done.error_type, "request_timeout");
    assert.ok(Date.now() - started >= 1500, "the first attempt ran for its request_timeout");
    const res = await result(p, TIMEOUT, id);
    assert.equal(res.status, 504);
    assert.equal(res.body.error_type, "request_timeout");
    assert.equal(res.headers.get("x-fal-request-timeout-type"), null, "a run timeout is not the caller's start timeout");
    assert.equal((await record(p, id)).attempt, 3);
    assert.ok(processGone(hung.pid), "the hung runner was killed");

    const next = await http(p, "POST", `/run/${TIMEOUT}`, { ms: 0 });
    assert.equal(next.status, 200);
    assert.notEqual(next.body.pid, hung.pid, "a new runner serves the next request");
  });

  it("fails queued requests with the setup error instead of letting them wait forever", async () => {
    const ids = [await submit(p, FLAKY, {}), await submit(p, FLAKY, {})];
    for (const id of ids) {
      const done = await waitCompleted(p, FLAKY, id, 30_000);
      assert.equal(done.error_type, "startup_timeout");
      assert.ok(done.error.includes(SETUP_ERROR), `error mentions the setup error: ${done.error}`);
      const res = await result(p, FLAKY, id);
      assert.equal(res.status, 504);
      assert.ok(res.body.detail.includes(SETUP_ERROR));
      assert.equal(res.body.error_type, "startup_timeout");
    }
    const ops = await opsOf(p, FLAKY);
    assert.ok(ops.last_setup_error.includes(SETUP_ERROR), `last_setup_error: ${ops.last_setup_error}`);
    assert.equal(ops.queue_depth, 0);
    // With nothing waiting, the pool stops trying.
    await eventually(async () => (await opsOf(p, FLAKY)).runners.length === 0, 5000);
    await sleep(500);
    assert.equal((await opsOf(p, FLAKY)).runners.length, 0, "no runner is restarted for an empty queue");
  });

  it("fails queued requests when setup does not finish within startup_timeout", async () => {
    const id = await submit(p, HANG, {});
    const done = await waitCompleted(p, HANG, id, 40_000);
    assert.equal(done.error_type, "startup_timeout");
    assert.match(done.error, /startup_timeout/);
    const res = await result(p, HANG, id);
    assert.equal(res.status, 504);
    assert.match(res.body.detail, /startup_timeout/);
    assert.match((await opsOf(p, HANG)).last_setup_error, /startup_timeout/);
    await eventually(async () => (await opsOf(p, HANG)).runners.length === 0, 5000);
  });

  it("keeps min_runners ready before any request and serves requests on the same warm runner", async () => {
    const ready = await eventually(async () => {
      const ops = await opsOf(p, WARM);
      return ops.runners.length === 1 && ops.runners[0].state === "ready" ? ops : null;
    }, 15_000);
    assert.equal(ready.cold_starts, 1);
    const pid = ready.runners[0].pid;

    const first = await http(p, "POST", `/run/${WARM}`, {});
    const second = await http(p, "POST", `/run/${WARM}`, {});
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    assert.equal(first.body.pid, pid, "served by the runner started ahead of time");
    // The platform runs in this test process: handler code must never run here.
    assert.notEqual(first.body.pid, process.pid, "the handler ran in a runner process, not the gateway");
    assert.equal(second.body.pid, pid);
    assert.equal(second.body.setup_id, first.body.setup_id, "setup() ran once for both");
    assert.equal(second.body.setup_calls, 1);
    assert.equal((await opsOf(p, WARM)).cold_starts, 1);
  });

  it("stops an idle runner keep_alive seconds after its last request", async () => {
    const res = await http(p, "POST", `/run/${PAIR}`, { ms: 0 });
    assert.equal(res.status, 200);
    const finishedAt = Date.now();
    const right = await opsOf(p, PAIR);
    assert.equal(right.runners.length, 1);
    assert.equal(right.runners[0].state, "ready", "still warm right after the request");
    await eventually(async () => (await opsOf(p, PAIR)).runners.length === 0, 6000, 50);
    const idle = Date.now() - finishedAt;
    assert.ok(idle >= 800, `stopped after ${idle} ms, not before keep_alive (1 s)`);
    assert.ok(idle < 4000, `stopped after ${idle} ms`);
    assert.ok(processGone(right.runners[0].pid));
  });

  it("scales out to max_runners and never beyond", async () => {
    let maxRunners = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxRunners = Math.max(maxRunners, (await opsOf(p, PAIR)).runners.length);
        await sleep(25);
      }
    })();
    try {
      const runs = await Promise.all([0, 1, 2, 3].map(() => http(p, "POST", `/run/${PAIR}`, { ms: 1200 })));
      for (const r of runs) assert.equal(r.status, 200);
      const pids = new Set(runs.map((r) => r.body.pid));
      assert.equal(pids.size, 2, "two runners served the four requests");
      // At any moment at most two requests ran, and at some moment two did.
      let peak = 0;
      for (const r of runs) {
        const t = r.body.started_at + 1;
        const concurrent = runs.filter((o) => o.body.started_at <= t && o.body.finished_at > t).length;
        peak = Math.max(peak, concurrent);
      }
      assert.equal(peak, 2);
    } finally {
      sampling = false;
      await sampler;
    }
    assert.equal(maxRunners, 2, "the pool never held more than max_runners");
  });

  it("exports Prometheus metrics for runners, queues and requests", async () => {
    const res = await fetch(`${p.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
    const text = await res.text();
    const cold = text.match(/^darkroom_cold_starts_total\{app="darkroom-test\/warm"\} (\d+)/m);
    assert.ok(cold, "cold starts of the warm app are counted");
    assert.ok(Number(cold[1]) >= 1);
    assert.match(text, /^darkroom_queue_depth\{app="darkroom\/echo"\} 0$/m);
    assert.match(text, /^darkroom_runners\{app="darkroom-test\/warm",state="ready"\} 1$/m);
    assert.match(text, /^darkroom_request_duration_seconds_bucket\{le="[^"]+",app="darkroom\/echo",state="SUCCEEDED"\} \d+$/m);
    assert.match(text, /^darkroom_runner_failures_total\{app="darkroom\/echo",reason="exit"\} \d+$/m);
  });
});

describe("graceful shutdown", () => {
  it("lets in-flight requests finish, large outputs included, before stop() resolves", async () => {
    const p = await startTestPlatform({ appModules: [ECHO_APP, app("slow-single.ts")] });
    const outcomes = new Map<string, string>();
    try {
      const small = await submit(p, SLOW, { ms: 1500, label: "drain" });
      // A multi-megabyte output is still in the IPC pipe when the draining runner wants to exit.
      const large = await submit(p, ECHO, { message: "x".repeat(4 * 1024 * 1024), sleep_ms: 1500 });
      await waitFor(p, SLOW, small, "IN_PROGRESS");
      await waitFor(p, ECHO, large, "IN_PROGRESS");
      const terminals = [small, large].map((id) => p.scheduler.waitForTerminal(id).then((r) => void outcomes.set(id, r.state)));
      const started = Date.now();
      await p.stop(10_000);
      assert.ok(Date.now() - started >= 500, "stop() waited for the handlers");
      assert.equal(outcomes.get(small), "SUCCEEDED", "the request finished before stop() resolved");
      assert.equal(outcomes.get(large), "SUCCEEDED", "the large output was not lost when its runner exited");
      await Promise.all(terminals);
    } finally {
      await p.close();
    }
  });
});
