/**
 * Runners and the app probe start from the compiled runtime on a real server when the checkout's
 * build is fresh: a built-in app's runner runs `node dist/runtime/runner-main.js` with no tsx
 * loader, while an app outside src/ (a test fixture) runs through tsx as before; a compiled spare
 * becomes the runner of a built-in app, never of a fixture; a server with an app outside src/ keeps
 * a tsx spare, which any of its apps can become.
 *
 * The build is made here first (`npm run build:runtime`, skipped when dist/ is up to date), so that
 * this holds whether or not the checkout was built before.
 * @module
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { checkBuild, probeStart } from "../../src/runtime/compiled-runtime.js";
import type { RunnerHandlers } from "../../src/scheduler/runner-process.js";
import { SpareRunners } from "../../src/scheduler/spare-runners.js";
import { ECHO_APP, eventually, http, REPO_ROOT, startTestPlatform, TEST_APPS, type TestPlatform } from "../helpers/platform.js";
import { opsOf } from "../helpers/queue.js";

const ECHO = "darkroom/echo";
const FIXTURE = "darkroom-test/pid-setup";
const FIXTURE_APP = path.join(TEST_APPS, "pid-setup.ts");
const TSX_LOADER = import.meta.resolve("tsx");

const procfs = existsSync("/proc/self/cmdline");
const skip = procfs ? false : "reads runners' command lines from /proc (Linux)";

/** A process's command line, its arguments joined by spaces. */
function commandLine(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
}

function assertCompiled(pid: number): void {
  const command = commandLine(pid);
  assert.ok(command.endsWith(` ${path.join(REPO_ROOT, "dist/runtime/runner-main.js")}`), command);
  assert.doesNotMatch(command, /tsx|--import/, command);
}

function assertThroughTsx(pid: number): void {
  const command = commandLine(pid);
  assert.ok(command.includes(`--import ${TSX_LOADER}`), command);
  assert.ok(command.endsWith(` ${path.join(REPO_ROOT, "src/runtime/runner-main.ts")}`), command);
}

/** The pid of the app's one runner, once it is ready. */
async function runnerPid(p: TestPlatform, appId: string): Promise<number> {
  return eventually(async () => {
    const runners = (await opsOf(p, appId)).runners as { pid: number; state: string }[];
    return runners.length === 1 && runners[0]?.state === "ready" ? runners[0].pid : null;
  });
}

async function readySparePid(p: TestPlatform): Promise<number> {
  return eventually(async () => {
    const res = await http(p, "GET", "/v1/ops");
    return (res.body.spare_runners.runners as { pid: number; state: string }[]).find((r) => r.state === "ready")?.pid;
  }, 20_000);
}

before(() => {
  // Someone editing src/ meanwhile makes a build stale at once: a second try then.
  for (let attempt = 0; attempt < 2 && !checkBuild().fresh; attempt++) {
    const run = spawnSync(process.execPath, [path.join(REPO_ROOT, "scripts/build-runtime.mjs")], { encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
  }
  const freshness = checkBuild();
  assert.ok(freshness.fresh, freshness.fresh ? "" : freshness.reason);
});

describe("runners on a server whose build is fresh", { skip }, () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform({ appModules: [ECHO_APP, FIXTURE_APP] });
  });
  after(async () => p?.close());

  it("start a built-in app from dist/ without tsx, and report the start's phases", async () => {
    const res = await http(p, "POST", `/run/${ECHO}`, { message: "hi" });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assertCompiled(await runnerPid(p, ECHO));
    const [start] = (await opsOf(p, ECHO)).recent_cold_starts;
    assert.equal(start.spare, false);
    for (const phase of ["spawn_ms", "runtime_ms", "import_ms"]) assert.equal(typeof start[phase], "number", JSON.stringify(start));
  });

  it("start an app outside src/ through tsx, as the gateway runs", async () => {
    const res = await http(p, "POST", `/run/${FIXTURE}`, {});
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assertThroughTsx(res.body.pid as number);
  });

  it("probe built-in apps compiled, and through tsx as soon as one module lies outside src/", () => {
    const compiled = probeStart([ECHO_APP]);
    assert.equal(compiled.main, path.join(REPO_ROOT, "dist/runtime/probe-main.js"));
    assert.deepEqual(compiled.execArgv, []);
    assert.deepEqual(compiled.modulePaths, [path.join(REPO_ROOT, "dist/apps/echo/app.js")]);
    const mixed = probeStart([ECHO_APP, FIXTURE_APP]);
    assert.equal(mixed.main, path.join(REPO_ROOT, "src/runtime/probe-main.ts"));
    assert.deepEqual(mixed.execArgv, ["--import", TSX_LOADER]);
    assert.deepEqual(mixed.modulePaths, [ECHO_APP, FIXTURE_APP]);
  });
});

describe("spare runners when the build is fresh", { skip }, () => {
  it("a server of built-in apps keeps a compiled spare, which becomes the app's runner", async () => {
    const p = await startTestPlatform({ appModules: [ECHO_APP], env: { DARKROOM_SPARE_RUNNERS: "1" } });
    try {
      const spare = await readySparePid(p);
      assertCompiled(spare);
      const res = await http(p, "POST", `/run/${ECHO}`, { message: "hi" });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(await runnerPid(p, ECHO), spare, "the spare became echo's runner");
      assert.equal((await opsOf(p, ECHO)).recent_cold_starts[0].spare, true);
    } finally {
      await p.close();
    }
  });

  it("a server with an app outside src/ keeps a tsx spare, which a built-in app can become too", async () => {
    const p = await startTestPlatform({ appModules: [ECHO_APP, FIXTURE_APP], env: { DARKROOM_SPARE_RUNNERS: "1" } });
    try {
      const spare = await readySparePid(p);
      assertThroughTsx(spare);
      const res = await http(p, "POST", `/run/${ECHO}`, { message: "hi" });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(await runnerPid(p, ECHO), spare);
    } finally {
      await p.close();
    }
  });

  it("a compiled spare is not handed an app outside src/, which gets a process of its own", async () => {
    const storage = mkdtempSync(path.join(tmpdir(), "darkroom-spare-"));
    // As platform.ts does before its scheduler starts: the apps this process serves are echo alone.
    probeStart([ECHO_APP]);
    const spares = new SpareRunners({ count: 1, env: { DARKROOM_STORAGE_ROOT: storage } });
    const handlers: RunnerHandlers = { onMessage: () => undefined, onExit: () => undefined };
    try {
      spares.fill();
      await eventually(() => spares.snapshot().ready === 1, 20_000);
      assert.equal(spares.take({ id: FIXTURE, modulePath: FIXTURE_APP }, handlers), null);
      const taken = spares.take({ id: ECHO, modulePath: ECHO_APP }, handlers);
      assert.ok(taken?.compiled, "echo took the compiled spare");
      assertCompiled(taken.pid ?? 0);
      taken.kill();
    } finally {
      spares.stop();
      rmSync(storage, { recursive: true, force: true });
    }
  });
});
