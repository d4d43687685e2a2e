/**
 * Runner starts through the public API, on real runner processes: a spare runner (started before
 * any app needed it) is taken by the first request and replaced; a spare still loading is taken
 * rather than spawning another process; a spare that dies is replaced; stopping the server ends it;
 * and every start is reported phase by phase in `/v1/ops` and `/metrics`.
 * @module
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { SETUP_MS } from "../fixtures/apps/pid-setup.js";
import { eventually, http, startTestPlatform, TEST_APPS, type TestPlatform } from "../helpers/platform.js";
import { opsOf } from "../helpers/queue.js";

const APP = "darkroom-test/pid-setup";
const APP_MODULE = path.join(TEST_APPS, "pid-setup.ts");

interface SpareView {
  target: number;
  ready: number;
  starting: number;
  runners: { id: string; pid: number; state: "starting" | "ready" }[];
}

async function spares(p: TestPlatform): Promise<SpareView> {
  const res = await http(p, "GET", "/v1/ops");
  assert.equal(res.status, 200);
  return res.body.spare_runners as SpareView;
}

async function readySpare(p: TestPlatform, other?: number): Promise<number> {
  return eventually(async () => {
    const view = await spares(p);
    const ready = view.runners.find((r) => r.state === "ready" && r.pid !== other);
    return ready?.pid;
  }, 20_000);
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function run(p: TestPlatform, input: object = {}): Promise<{ pid: number }> {
  const res = await http(p, "POST", `/run/${APP}`, input);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body as { pid: number };
}

describe("spare runners", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform({ appModules: [APP_MODULE], env: { DARKROOM_SPARE_RUNNERS: "1" } });
  });
  after(async () => p?.close());

  it("serves the first request on the ready spare, whose start is the app's import and setup alone, then replaces it", async () => {
    const sparePid = await readySpare(p);
    const served = await run(p);
    assert.equal(served.pid, sparePid, "the spare's process became the app's runner");

    const [start] = (await opsOf(p, APP)).recent_cold_starts;
    assert.equal(start.spare, true);
    assert.equal(start.spawn_ms, null, "a spare's spawn was paid before it was needed");
    assert.ok(start.runtime_ms < 50, `runtime left to load: ${start.runtime_ms} ms`);
    assert.equal(typeof start.import_ms, "number");
    assert.ok(start.setup_ms >= SETUP_MS, `setup ${start.setup_ms} ms`);
    assert.ok(start.ready_ms >= start.setup_ms + start.import_ms - 1, JSON.stringify(start));
    assert.equal(typeof start.first_request_ms, "number");

    const replacement = await readySpare(p, sparePid);
    assert.notEqual(replacement, sparePid);
    assert.ok(processExists(sparePid), "the taken spare lives on as the app's runner");
  });

  it("replaces a spare that dies while it waits", async () => {
    const sparePid = await readySpare(p);
    process.kill(sparePid, "SIGKILL");
    const replacement = await readySpare(p, sparePid);
    assert.notEqual(replacement, sparePid);
    assert.equal((await spares(p)).target, 1);
  });
});

describe("a spare still loading", () => {
  it("is taken by a request that arrives before it is ready, and ends with the server", async () => {
    const p = await startTestPlatform({ appModules: [APP_MODULE], env: { DARKROOM_SPARE_RUNNERS: "1" } });
    let sparePid: number;
    try {
      const view = await spares(p);
      assert.equal(view.runners.length, 1);
      sparePid = view.runners[0]!.pid;
      // Right after the start the spare is normally still loading; either way no second process is spawned.
      const served = await run(p);
      assert.equal(served.pid, sparePid);
      const [start] = (await opsOf(p, APP)).recent_cold_starts;
      assert.equal(start.spare, true);
      const replacement = await readySpare(p, sparePid);
      await p.close();
      await eventually(() => !processExists(replacement), 5_000);
    } catch (err) {
      await p.close();
      throw err;
    }
    assert.ok(!processExists(sparePid), "the runner the spare became ended with the server");
  });
});

describe("cold-start phases without spares", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform({ appModules: [APP_MODULE], env: { DARKROOM_SPARE_RUNNERS: "0" } });
  });
  after(async () => p?.close());

  it("reports spawn, runtime, import, setup and the first request in /v1/ops and /metrics", async () => {
    assert.deepEqual(await spares(p), { target: 0, ready: 0, starting: 0, runners: [] });
    await run(p, { sleep_ms: 120 });
    const [start] = (await opsOf(p, APP)).recent_cold_starts;
    assert.equal(start.spare, false);
    for (const phase of ["spawn_ms", "runtime_ms", "import_ms", "setup_ms", "first_request_ms"]) {
      assert.equal(typeof start[phase], "number", `${phase} in ${JSON.stringify(start)}`);
      assert.ok(start[phase] >= 0, `${phase} in ${JSON.stringify(start)}`);
    }
    assert.ok(start.runtime_ms > 0, "Node and the runtime take time to load");
    assert.ok(start.setup_ms >= SETUP_MS);
    assert.ok(start.first_request_ms >= 120, `first request ${start.first_request_ms} ms`);
    // The phases happen one after another inside the start the scheduler timed.
    assert.ok(start.spawn_ms + start.runtime_ms + start.import_ms + start.setup_ms <= start.ready_ms + 5, JSON.stringify(start));

    const metrics = await (await fetch(`${p.url}/metrics`)).text();
    for (const phase of ["spawn", "runtime", "import", "setup", "first_request"]) {
      const line = new RegExp(`^darkroom_cold_start_phase_seconds_count\\{app="${APP.replace("/", "\\/")}",phase="${phase}"\\} 1$`, "m");
      assert.match(metrics, line, `phase ${phase}`);
    }
  });
});
