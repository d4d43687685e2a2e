/**
 * A crash isolates its suspects, not the app (issue #13, item 9), on a real server with real runner
 * processes: while the requests of a runner that died are retried apart, the app's other runners
 * keep multiplexing new work; and the requests of a runner killed with many in flight are retried in
 * a few groups at once, so they finish near their own run time instead of one after the other.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import type { RequestRecord } from "../../src/core/types.js";
import { eventually, startTestPlatform, TEST_APPS, type TestPlatform } from "../helpers/platform.js";
import { record, submit } from "../helpers/queue.js";

const ECHO = "darkroom/echo";
const LEDGER = "darkroom-test/ledger";
/** The run time of the "long" requests. */
const LONG_MS = 3000;

function runnersOf(p: TestPlatform, appId: string): { id: string; state: string; pid: number | undefined; in_flight: number }[] {
  return p.scheduler.snapshot().find((pool) => pool.app === appId)?.runners ?? [];
}

/** Records every terminal state event of the given requests (there must be exactly one each). */
function watchTerminals(p: TestPlatform): { watch(id: string): void; count(id: string): number; stop(): void } {
  const counts = new Map<string, number>();
  const stops: (() => void)[] = [];
  return {
    watch(id) {
      counts.set(id, 0);
      stops.push(
        p.scheduler.events.subscribe(id, (event) => {
          if (event.type === "state" && ["SUCCEEDED", "FAILED", "CANCELLED"].includes(event.record.state)) counts.set(id, (counts.get(id) ?? 0) + 1);
        }),
      );
    },
    count: (id) => counts.get(id) ?? 0,
    stop: () => stops.forEach((stop) => stop()),
  };
}

describe("crash isolation", () => {
  it("keeps serving new requests at full multiplexing while a crashing request and its neighbours are retried apart", async (t) => {
    const p = await startTestPlatform({ env: { DARKROOM_APP_KNOBS: `${ECHO}:min_runners=2,max_runners=2,max_multiplexing=4` } });
    const terminals = watchTerminals(p);
    try {
      await eventually(() => runnersOf(p, ECHO).filter((r) => r.state === "ready").length === 2, 30_000);
      // Both runners busy with long requests (three each, when the submits alternate).
      const long: string[] = [];
      for (let i = 0; i < 6; i++) {
        const id = await submit(p, ECHO, { message: `long-${i}`, sleep_ms: LONG_MS });
        terminals.watch(id);
        long.push(id);
      }
      await eventually(() => runnersOf(p, ECHO).reduce((n, r) => n + r.in_flight, 0) === 6, 10_000);
      const before = runnersOf(p, ECHO).map((r) => r.in_flight);
      t.diagnostic(`in flight before the crash: ${before.join(" + ")}`);

      const crash = await submit(p, ECHO, { fail: "crash" });
      terminals.watch(crash);
      // Its runner died once the request is back in the queue for a second attempt.
      await eventually(async () => (await record(p, crash)).attempt >= 2, 10_000, 25);

      const trivial = await Promise.all(
        Array.from({ length: 5 }, async (_, i) => {
          const submittedAt = Date.now();
          const id = await submit(p, ECHO, { message: `trivial-${i}` });
          terminals.watch(id);
          const done = await p.scheduler.waitForTerminal(id);
          return { id, state: done.state, attempt: done.attempt, tookMs: Date.now() - submittedAt };
        }),
      );
      const slowest = Math.max(...trivial.map((r) => r.tookMs));
      t.diagnostic(`trivial requests after the crash took ${trivial.map((r) => r.tookMs).join(", ")} ms`);
      for (const r of trivial) {
        assert.equal(r.state, "SUCCEEDED");
        assert.equal(r.attempt, 1, "no retry of the crashing request took a new request down");
      }
      assert.ok(slowest <= LONG_MS + 1500, `a trivial request submitted after the crash took ${slowest} ms (at most one long request, ${LONG_MS} ms, plus 1.5 s)`);

      // Keep new work coming while the crashing request is retried: none of it may share a runner with
      // a retry of the crashing request (each would then go down with it and need a second attempt).
      let crashedAt = 0;
      const ended = p.scheduler.waitForTerminal(crash).then((r) => {
        crashedAt = Date.now();
        return r;
      });
      const during: Promise<RequestRecord>[] = [];
      while (crashedAt === 0) {
        const id = await submit(p, ECHO, { message: `during-${during.length}`, sleep_ms: 500 });
        terminals.watch(id);
        during.push(p.scheduler.waitForTerminal(id));
        await new Promise((r) => setTimeout(r, 150));
      }
      const duringDone = await Promise.all(during);
      t.diagnostic(`${duringDone.length} requests submitted while the crashing request was retried`);
      for (const r of duringDone) {
        assert.equal(r.state, "SUCCEEDED", `${r.id}: ${r.error ?? ""}`);
        assert.equal(r.attempt, 1, "a request submitted during the retries never shared a runner with the crashing one");
      }

      const crashed = await ended;
      assert.equal(crashed.state, "FAILED");
      assert.equal(crashed.errorType, "runner_disconnected");
      assert.equal(crashed.attempt, 3, "the crashing request used up its attempts");
      const longDone = await Promise.all(long.map((id) => p.scheduler.waitForTerminal(id)));
      for (const r of longDone) assert.equal(r.state, "SUCCEEDED", `long request ${r.id}: ${r.error ?? ""}`);
      // Only the requests of the runner the crash took down were retried: the other runner's never.
      const retried = longDone.filter((r) => r.attempt > 1).length;
      assert.ok(retried <= Math.max(...before), `${retried} long requests were retried; the crashed runner held at most ${Math.max(...before)}`);
      await new Promise((r) => setTimeout(r, 300));
      for (const id of [crash, ...long, ...trivial.map((r) => r.id), ...duringDone.map((r) => r.id)]) assert.equal(terminals.count(id), 1, `exactly one terminal state for ${id}`);
      assert.equal((await record(p, crash)).state, "FAILED", "the stored outcome stays FAILED");
    } finally {
      terminals.stop();
      await p.close();
    }
  });

  it("finishes every request of a runner killed with eight in flight near one run time, each exactly once", async (t) => {
    const ledgerDir = mkdtempSync(path.join(tmpdir(), "darkroom-isolation-"));
    const ledger = path.join(ledgerDir, "ledger.txt");
    // Runners inherit the test process's environment: the ledger app appends each completed run here.
    process.env["DARKROOM_TEST_LEDGER"] = ledger;
    const p = await startTestPlatform({
      appModules: [path.join(TEST_APPS, "ledger.ts")],
      env: { DARKROOM_APP_KNOBS: `${LEDGER}:min_runners=1,max_runners=2,max_multiplexing=8` },
    });
    const terminals = watchTerminals(p);
    try {
      await eventually(() => runnersOf(p, LEDGER).some((r) => r.state === "ready"), 30_000);
      const n = 8;
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const id = await submit(p, LEDGER, { marker: `m${i}`, work_ms: LONG_MS });
        terminals.watch(id);
        ids.push(id);
      }
      const victim = await eventually(() => runnersOf(p, LEDGER).find((r) => r.in_flight === n), 10_000);
      assert.ok(victim.pid, "the runner has a pid");
      await new Promise((r) => setTimeout(r, 300));
      const killedAt = Date.now();
      process.kill(victim.pid, "SIGKILL");

      const done: RequestRecord[] = await Promise.all(ids.map((id) => p.scheduler.waitForTerminal(id)));
      const tookMs = Date.now() - killedAt;
      t.diagnostic(`all ${n} requests ended ${tookMs} ms after the kill (attempts ${done.map((r) => r.attempt).join(",")})`);
      for (const r of done) assert.equal(r.state, "SUCCEEDED", `${r.id}: ${r.error ?? ""}`);
      assert.ok(tookMs <= 3 * LONG_MS, `the ${n} requests took ${tookMs} ms after the kill (serialised they would take ${n * LONG_MS} ms)`);

      await new Promise((r) => setTimeout(r, 300));
      const runs = readFileSync(ledger, "utf8").trim().split("\n").map((line) => line.split(" ")[0]);
      for (const id of ids) {
        assert.equal(runs.filter((r) => r === id).length, 1, `request ${id} ran to completion exactly once`);
        assert.equal(terminals.count(id), 1, `exactly one terminal state for ${id}`);
      }
    } finally {
      terminals.stop();
      await p.close();
      delete process.env["DARKROOM_TEST_LEDGER"];
      rmSync(ledgerDir, { recursive: true, force: true });
    }
  });
});
