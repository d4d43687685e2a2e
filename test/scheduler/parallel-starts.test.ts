/**
 * Runners of one app starting at once are bounded (`--parallel-starts`): a burst that needs two
 * runners at an idle app starts the second only once the first is ready, so that on a machine with
 * few cores the two starts do not slow each other and the first request; with a bound of 2 both
 * start together. Real runner processes, through the public API.
 * @module
 */
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { SETUP_MS } from "../fixtures/apps/pid-setup.js";
import { http, startTestPlatform, TEST_APPS } from "../helpers/platform.js";
import { opsOf } from "../helpers/queue.js";

const APP = "darkroom-test/pid-setup";
const APP_MODULE = path.join(TEST_APPS, "pid-setup.ts");

interface RunnerView {
  pid: number;
  state: string;
  spawned_at: number;
  ready_at: number | null;
}

/** Ten requests at once at an idle app whose runners take four each: the pool wants both of its two runners. */
async function burst(parallelStarts: string): Promise<{ runners: RunnerView[]; pids: Set<number> }> {
  const p = await startTestPlatform({ appModules: [APP_MODULE], env: { DARKROOM_PARALLEL_STARTS: parallelStarts } });
  try {
    const runs = await Promise.all(Array.from({ length: 10 }, () => http(p, "POST", `/run/${APP}`, { sleep_ms: 600 })));
    for (const r of runs) assert.equal(r.status, 200, JSON.stringify(r.body));
    const runners = ((await opsOf(p, APP)).runners as RunnerView[]).sort((a, b) => a.spawned_at - b.spawned_at);
    return { runners, pids: new Set(runs.map((r) => r.body.pid as number)) };
  } finally {
    await p.close();
  }
}

describe("parallel runner starts", () => {
  it("with a bound of 1, starts the second runner once the first is ready, and both serve the burst", async () => {
    const { runners, pids } = await burst("1");
    assert.equal(runners.length, 2);
    const [first, second] = runners as [RunnerView, RunnerView];
    assert.ok(first.ready_at !== null && first.ready_at - first.spawned_at >= SETUP_MS, "the first ran its setup");
    assert.ok(second.spawned_at >= first.ready_at, `the second started ${second.spawned_at - first.ready_at} ms after the first was ready`);
    assert.equal(pids.size, 2, "both runners served requests");
  });

  it("with a bound of 2, starts both at once", async () => {
    const { runners, pids } = await burst("2");
    assert.equal(runners.length, 2);
    const [first, second] = runners as [RunnerView, RunnerView];
    assert.ok(first.ready_at !== null && second.spawned_at < first.ready_at, "the second started while the first was still starting");
    assert.equal(pids.size, 2);
  });
});
