/**
 * `darkroom run` when things go wrong: invalid input (422, from the gateway and from the app), an
 * unknown app or path (404), a bad key (401), no server, bad usage, a failing app; and stopping a
 * run: Ctrl-C and --timeout cancel the request on the server, queued or running.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ADMIN_KEY, TEST_APPS, ECHO_APP, eventually, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { cli, closedPort, scratchDir, startCli, submittedId, type RunningCli } from "./helpers.js";

const SERIAL_APP = path.join(TEST_APPS, "serial.ts");

async function waitFor(run: RunningCli, pattern: RegExp): Promise<void> {
  await eventually(() => pattern.test(run.stderr), 20_000, 25).catch(() => {
    throw new Error(`stderr never matched ${pattern}:\n${run.stderr}`);
  });
}

describe("darkroom run: errors and cancellation", () => {
  let p: TestPlatform;
  let scratch: ReturnType<typeof scratchDir>;
  let env: Record<string, string>;
  before(async () => {
    p = await startTestPlatform({ appModules: [ECHO_APP, SERIAL_APP] });
    scratch = scratchDir();
    env = { DARKROOM_URL: p.url, DARKROOM_KEY: ADMIN_KEY };
  });
  after(async () => {
    await p.close();
    scratch.remove();
  });

  it("names the invalid field on a 422, whether the gateway or the app refuses the input", async () => {
    const [gateway, app] = await Promise.all([
      cli(["run", "darkroom/echo", "sleep_ms=soon", "--json"], { env, cwd: scratch.dir }),
      cli(["run", "darkroom/echo", "fail=validation", "--json"], { env, cwd: scratch.dir }),
    ]);
    assert.equal(gateway.code, 1);
    assert.equal(gateway.stdout, "");
    assert.match(gateway.stderr, /error: invalid input \(422\):\n {2}sleep_ms: must be integer/);
    assert.doesNotMatch(gateway.stderr, /submitted/, "nothing was queued");
    assert.equal(app.code, 1);
    assert.equal(app.stdout, "", "stdout holds a result only on success");
    assert.match(app.stderr, /request \S+ failed: invalid input \(422\):\n {2}fail: echo refused the input on request/);
  });

  it("reports an app error with its status and error type", async () => {
    const r = await cli(["run", "darkroom/echo", "fail=error"], { env, cwd: scratch.dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: request \S+ failed \(HTTP 500[^)]*\): echo failed on request \(fail: error\)/);
  });

  it("explains an unknown app or endpoint path (404)", async () => {
    const [app, endpoint] = await Promise.all([
      cli(["run", "nobody/missing", "message=x"], { env, cwd: scratch.dir }),
      cli(["run", "darkroom/echo/nope"], { env, cwd: scratch.dir }),
    ]);
    assert.equal(app.code, 1);
    assert.match(app.stderr, /error: Application 'nobody\/missing' not found on http:\/\/127\.0\.0\.1:\d+; see 'darkroom apps list'/);
    assert.equal(endpoint.code, 1);
    assert.match(endpoint.stderr, /error: Path \/nope not found; see 'darkroom apps show darkroom\/echo'/);
  });

  it("exits 3 for a refused key or an unreachable server, and 2 for usage errors", async () => {
    const port = await closedPort();
    const [badKey, down, noPair, badJson, badFlag, missingFile, badPriority] = await Promise.all([
      cli(["run", "darkroom/echo"], { env: { DARKROOM_URL: p.url, DARKROOM_KEY: "dk_nobody:wrong" }, cwd: scratch.dir }),
      cli(["run", "darkroom/echo"], { env: { DARKROOM_URL: `http://127.0.0.1:${port}`, DARKROOM_KEY: ADMIN_KEY }, cwd: scratch.dir }),
      cli(["run", "darkroom/echo", "message"], { env, cwd: scratch.dir }),
      cli(["run", "darkroom/echo", "--input", "{nope"], { env, cwd: scratch.dir }),
      cli(["run", "darkroom/echo", "--frobnicate"], { env, cwd: scratch.dir }),
      cli(["run", "darkroom/echo", "file_url=@does-not-exist.png"], { env, cwd: scratch.dir }),
      cli(["run", "darkroom/echo", "--priority", "urgent"], { env, cwd: scratch.dir }),
    ]);
    assert.equal(badKey.code, 3);
    assert.match(badKey.stderr, /refused the key from DARKROOM_KEY \(401: .*\)\. Set DARKROOM_KEY=id:secret/);
    assert.equal(down.code, 3);
    assert.match(down.stderr, new RegExp(`cannot reach the server at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`));
    assert.equal(noPair.code, 2);
    assert.match(noPair.stderr, /expected key=value, got 'message'/);
    assert.equal(badJson.code, 2);
    assert.match(badJson.stderr, /--input is not valid JSON/);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /Unknown option '--frobnicate'[\s\S]*Usage: darkroom run/);
    assert.equal(missingFile.code, 2);
    assert.match(missingFile.stderr, /cannot read @does-not-exist\.png: ENOENT/);
    assert.equal(badPriority.code, 2);
  });

  it("cancels the running request on the server when interrupted (SIGINT) and exits 130", async () => {
    const run = startCli(["run", "darkroom/echo", "sleep_ms=60000", "message=interrupt me"], { env, cwd: scratch.dir });
    await waitFor(run, /^running$/m);
    const id = submittedId(run.stderr);
    run.child.kill("SIGINT");
    const r = await run.done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, new RegExp(`interrupted; cancelling request ${id}\ncancelled request ${id}`));
    assert.equal(r.stdout, "");
    const state = await eventually(async () => {
      const s = (await http(p, "GET", `/v1/requests/${id}`)).body.state as string;
      return s === "CANCELLED" ? s : null;
    });
    assert.equal(state, "CANCELLED");
  });

  it("shows the queue position, and Ctrl-C removes a queued request", async () => {
    // The serial app runs one request at a time: a blocker keeps the next one queued.
    const blocker = await http(p, "POST", "/queue/darkroom-test/serial", { label: "blocker", sleep_ms: 60_000 });
    await eventually(async () => (await http(p, "GET", `/v1/requests/${blocker.body.request_id}`)).body.state === "RUNNING");
    const run = startCli(["run", "darkroom-test/serial", "label=waiting", "--priority", "low"], { env, cwd: scratch.dir });
    await waitFor(run, /^queued: position 0$/m);
    const id = submittedId(run.stderr);
    const record = await http(p, "GET", `/v1/requests/${id}`);
    assert.equal(record.body.state, "QUEUED");
    assert.equal(record.body.priority, "low", "--priority low reaches the server");
    run.child.kill("SIGINT");
    const r = await run.done;
    assert.equal(r.code, 130, r.stderr);
    assert.equal((await http(p, "GET", `/v1/requests/${id}`)).body.state, "CANCELLED", "a queued request is removed at once");
    await http(p, "PUT", `/queue/darkroom-test/serial/requests/${blocker.body.request_id}/cancel`);
  });

  it("gives up after --timeout: cancels the request and exits 124", async () => {
    const r = await cli(["run", "darkroom/echo", "sleep_ms=60000", "--timeout", "1.5"], { env, cwd: scratch.dir });
    assert.equal(r.code, 124, r.stderr);
    const id = submittedId(r.stderr);
    assert.match(r.stderr, new RegExp(`timed out after 1.5 s; cancelling request ${id}\ncancelled request ${id}`));
    await eventually(async () => (await http(p, "GET", `/v1/requests/${id}`)).body.state === "CANCELLED");
  });
});
