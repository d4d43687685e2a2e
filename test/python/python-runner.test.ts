/**
 * The Python runner SDK (`python/`) against a real Darkroom server: the machine's `python3` serves
 * `python/examples/echo_app.py` over the runner protocol (`python -m darkroom_runner`, no install:
 * PYTHONPATH=python), and clients use the official `@fal-ai/client` or plain HTTP. The gateway does
 * not load the app: it learns it from the runner's registration. Leases are short here, so a killed
 * runner's request is retried within seconds. The Python unittest suite runs from here too, as CI
 * runs only `npm test`.
 * @module
 */
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { ApiError, createFalClient, ValidationError, type FalClient } from "@fal-ai/client";
import { ADMIN_KEY, eventually, http, REPO_ROOT, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { cancel, readSse, record, sleep, waitFor } from "../helpers/queue.js";

const APP = "examples/python-echo";
const PYTHON = process.env["PYTHON"] ?? "python3";
const LEASE_MS = 1500;
const PLATFORM_ENV = { DARKROOM_LEASE_MS: String(LEASE_MS), DARKROOM_LOCAL_RUNNERS: "false" };

interface PythonRunner {
  child: ChildProcess;
  runnerId: string;
  /** Everything the runner wrote to stderr so far (its own log). */
  log(): string;
  exited: Promise<number | null>;
}

/**
 * Starts `python -m darkroom_runner` serving the echo example and waits until it took the app. With
 * `viaEnv` the gateway and token go in DARKROOM_GATEWAY and DARKROOM_RUNNER_TOKEN instead of flags.
 */
async function startRunner(gateway: string, token: string, options: { extra?: string[]; viaEnv?: boolean } = {}): Promise<PythonRunner> {
  const where = options.viaEnv ? { DARKROOM_GATEWAY: gateway, DARKROOM_RUNNER_TOKEN: token } : {};
  const args = [...(options.viaEnv ? [] : ["--gateway", gateway, "--token", token]), "--app", "python/examples/echo_app.py", ...(options.extra ?? [])];
  const child = spawn(PYTHON, ["-m", "darkroom_runner", ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...where, PYTHONPATH: path.join(REPO_ROOT, "python"), PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" },
    stdio: ["ignore", "inherit", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
    if (process.env["DARKROOM_TEST_LOG"]) process.stderr.write(chunk);
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const runnerId = await eventually(() => /runner ready: (rr-\S+)/.exec(stderr)?.[1] ?? (child.exitCode !== null ? Promise.reject(new Error(`runner exited: ${stderr}`)) : null), 20_000);
  return { child, runnerId, log: () => stderr, exited };
}

async function stopRunner(runner: PythonRunner | undefined): Promise<void> {
  if (!runner || runner.child.exitCode !== null || runner.child.signalCode !== null) return;
  runner.child.kill("SIGKILL");
  await runner.exited;
}

async function bytesOf(url: string): Promise<{ status: number; contentType: string | null; bytes: Buffer }> {
  const res = await fetch(url);
  return { status: res.status, contentType: res.headers.get("content-type"), bytes: Buffer.from(await res.arrayBuffer()) };
}

describe("Python runner SDK against a real gateway", () => {
  let p: TestPlatform;
  let fal: FalClient;
  let token: string;
  let first: PythonRunner | undefined;
  let second: PythonRunner | undefined;
  let shortTokenExpiry = 0;
  /** The data folder of a restarted server, which the server does not delete itself. */
  let keptDataDir: string | undefined;

  before(async () => {
    p = await startTestPlatform({ env: PLATFORM_ENV });
    fal = createFalClient({ credentials: ADMIN_KEY, proxyUrl: { url: `${p.url}/api/fal/proxy`, when: "always" } });
    const minted = await http(p, "POST", "/v1/runner-tokens", { apps: [APP] });
    assert.equal(minted.status, 201, JSON.stringify(minted.body));
    token = minted.body.token as string;
    // The first gateway URL answers nothing: the runner must fail over to the second.
    first = await startRunner(`http://127.0.0.1:9,${p.url}`, token);
  });

  after(async () => {
    await stopRunner(first);
    await stopRunner(second);
    await p?.close();
    if (keptDataDir) rmSync(keptDataDir, { recursive: true, force: true });
  });

  it("passes the Python unittest suite (python/tests)", async () => {
    // Asynchronous: the runner above keeps heartbeating through this server meanwhile.
    const { stderr } = await promisify(execFile)(PYTHON, ["-m", "unittest", "discover", "-s", "python/tests", "-t", "python"], {
      cwd: REPO_ROOT,
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
      timeout: 120_000,
    });
    assert.match(stderr, /\nOK/);
  });

  it("the gateway lists the app it learned from the registration, with its schema", async () => {
    const models = await http(p, "GET", "/v1/models");
    assert.equal(models.status, 200);
    const model = (models.body.models as any[]).find((m) => m.endpoint_id === APP);
    assert.ok(model, `models: ${(models.body.models as any[]).map((m) => m.endpoint_id).join(", ")}`);
    assert.equal(model.metadata.display_name, "Python echo");
    assert.equal(model.knobs.max_multiplexing, 2);
    const root = (model.endpoints as any[]).find((e) => e.path === "");
    assert.ok(root, JSON.stringify(model.endpoints));
    assert.deepEqual(root.input_schema.required, ["message"]);
    assert.equal(root.input_schema.properties.steps.default, 3);
    assert.ok((model.endpoints as any[]).some((e) => e.path === "count" && e.kind === "stream"));
    assert.match(first?.log() ?? "", new RegExp(`switched to gateway ${p.url}`));
  });

  it("completes a queued request: logs and progress on the status stream, output files with the exact bytes", async () => {
    const message = "hello wörld from a test";
    const { request_id: id } = await fal.queue.submit(APP, { input: { message, steps: 3, step_ms: 400, width: 20, height: 10 } });
    const stream = await readSse(p, `/queue/${APP}/requests/${id}/status/stream?logs=1`);
    const last = stream.events.at(-1);
    assert.equal(last.status, "COMPLETED");
    assert.equal(last.error, undefined);
    const logs = stream.events.flatMap((e) => (e.logs ?? []) as { message: string }[]).map((l) => l.message);
    assert.deepEqual(logs, [`echoing ${message.length} characters in 3 steps (attempt 1)`, "step 1 of 3", "step 2 of 3", "step 3 of 3"]);
    const progress = stream.events.filter((e) => e.progress).map((e) => e.progress);
    assert.ok(progress.length > 0, "no progress on the stream");
    assert.deepEqual(progress.map((x) => x.step), [...progress.map((x) => x.step)].sort((a, b) => a - b));
    assert.equal(progress.at(-1).total, 3);

    const result = await fal.queue.result(APP, { requestId: id });
    const output = result.data;
    assert.equal(output.message, message);
    assert.equal(output.attempt, 1);
    assert.equal(output.greeting, "hello from Python");
    assert.equal(output.image.content_type, "image/png");
    assert.equal(output.image.width, 20);
    assert.equal(output.image.height, 10);
    const image = await bytesOf(output.image.url);
    assert.equal(image.status, 200);
    assert.equal(image.contentType, "image/png");
    assert.equal(image.bytes.length, output.image.file_size);
    assert.deepEqual(image.bytes.subarray(0, 8), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    assert.equal(createHash("sha256").update(image.bytes).digest("hex"), output.image_sha256);
    const text = await bytesOf(output.text.url);
    assert.equal(text.status, 200);
    assert.match(text.contentType ?? "", /^text\/plain/);
    assert.deepEqual(text.bytes, Buffer.from(message, "utf8"));
    assert.equal(output.text.file_size, Buffer.byteLength(message));
    assert.match(output.text.url, new RegExp(`/files/outputs/${id}/[A-Za-z0-9_-]{12}/message\\.txt$`));

    const stored = await record(p, id);
    assert.equal(stored.state, "SUCCEEDED");
    assert.equal(stored.billable_units, 1);
  });

  it("sync_mode returns the files inline; a stream endpoint sends partials", async () => {
    const inline = await fal.run(APP, { input: { message: "inline", steps: 0, sync_mode: true } });
    const text = (inline.data).text;
    assert.equal(text.url, `data:text/plain;base64,${Buffer.from("inline").toString("base64")}`);

    const res = await fetch(`${p.url}/run/${APP}/count`, { method: "POST", headers: { ...p.auth, "content-type": "application/json", accept: "text/event-stream" }, body: JSON.stringify({ count: 3 }) });
    const body = await res.text();
    const events = body.split("\n\n").filter((b) => b.startsWith("data:")).map((b) => JSON.parse(b.slice(5)));
    assert.deepEqual(events, [{ count: 1 }, { count: 2 }, { count: 3 }]);
  });

  it("refuses invalid input with fal's 422 field errors: at the gateway, and from the handler", async () => {
    // The declared schema: the gateway validates before queueing.
    const refused = await fal.queue.submit(APP, { input: { message: "", bogus: 1 } }).then(
      () => assert.fail("submit should be refused"),
      (err: unknown) => err,
    );
    assert.ok(refused instanceof ValidationError, String(refused));
    assert.equal(refused.status, 422);
    assert.deepEqual(
      refused.fieldErrors.map((e) => [e.loc, e.type]),
      [
        [["body", "bogus"], "extra_forbidden"],
        [["body", "message"], "minLength"],
      ],
    );

    // A check only the handler makes (field_error in Python): the request fails with the same shape.
    const { request_id: id } = await fal.queue.submit(APP, { input: { message: "   " } });
    await waitFor(p, APP, id, "COMPLETED");
    const failed = await fal.queue.result(APP, { requestId: id }).then(
      () => assert.fail("the result should be an error"),
      (err: unknown) => err,
    );
    assert.ok(failed instanceof ApiError, String(failed));
    assert.equal(failed.status, 422);
    assert.deepEqual((failed.body).detail, [{ loc: ["body", "message"], msg: "must not be blank", type: "value_error" }]);
  });

  it("a cancelled running request ends CANCELLED once, and the handler saw the cancellation", async () => {
    const { request_id: id } = await fal.queue.submit(APP, { input: { message: "cancel me", steps: 100, step_ms: 100 } });
    await eventually(async () => ((await record(p, id)).progress?.step ?? 0) >= 2, 10_000);
    const stream = readSse(p, `/queue/${APP}/requests/${id}/status/stream?logs=1`);
    assert.equal((await cancel(p, APP, id)).status, 202);
    const sse = await stream;
    const terminal = sse.events.filter((e) => e.status === "COMPLETED");
    assert.equal(terminal.length, 1);
    assert.equal(terminal[0].error_type, "client_cancelled");

    const done = await record(p, id);
    assert.equal(done.state, "CANCELLED");
    assert.equal(done.status_code, 499);
    const seen = (done.logs as { message: string; level: string }[]).filter((l) => l.message.startsWith("cancellation seen at step"));
    assert.equal(seen.length, 1, JSON.stringify(done.logs));
    assert.equal(seen[0]?.level, "WARN");
    // Nothing more arrives afterwards: a second report would have been refused and logged.
    await sleep(LEASE_MS);
    const later = await record(p, id);
    assert.equal(later.state, "CANCELLED");
    assert.equal(later.finished_at, done.finished_at);
    assert.equal(later.logs.length, done.logs.length);
    assert.doesNotMatch(first?.log() ?? "", new RegExp(`(refused|failed).*${id}`));
  });

  it("after kill -9 of its runner, a request is retried by another Python runner as attempt 2", async () => {
    const { request_id: id } = await fal.queue.submit(APP, { input: { message: "survive", steps: 20, step_ms: 100 } });
    await eventually(async () => ((await record(p, id)).progress?.step ?? 0) >= 2, 10_000);
    first?.child.kill("SIGKILL");
    await first?.exited;
    // The lease runs out (LEASE_MS) with nobody renewing it: the request goes back to the queue.
    await eventually(async () => (await record(p, id)).state === "QUEUED", 10_000);
    // This one's token lives 3 s: the next test checks that the runner refreshed it.
    const minted = await http(p, "POST", "/v1/runner-tokens", { apps: [APP], ttl_seconds: 3 });
    assert.equal(minted.status, 201);
    shortTokenExpiry = Date.parse(minted.body.expires_at as string);
    second = await startRunner(p.url, minted.body.token as string, { extra: ["--grace", "0.5"], viaEnv: true });
    assert.notEqual(second.runnerId, first?.runnerId);
    const done = await waitFor(p, APP, id, "COMPLETED", 20_000);
    assert.equal(done.error, undefined, JSON.stringify(done));
    const result = await fal.queue.result(APP, { requestId: id });
    assert.equal((result.data).attempt, 2);
    assert.equal((result.data).message, "survive");
    const stored = await record(p, id);
    assert.equal(stored.attempt, 2);
    assert.ok((stored.logs as { message: string }[]).some((l) => l.message.includes("(attempt 2)")));
  });

  it("the runner refreshes its token before it expires and goes on working past the old expiry", async () => {
    const runner = second;
    assert.ok(runner);
    await eventually(() => runner.log().includes("runner token refreshed"), 10_000);
    await sleep(Math.max(0, shortTokenExpiry - Date.now() + 1000));
    const done = await fal.run(APP, { input: { message: "still here", steps: 1, step_ms: 10 } });
    assert.equal((done.data).message, "still here");
    assert.doesNotMatch(runner.log(), /failed/);
  });

  it("rides out a gateway restart: it re-registers with the new process and serves the next request", async () => {
    const runner = second;
    assert.ok(runner);
    const port = Number(new URL(p.url).port);
    keptDataDir = p.dataDir;
    await p.stop(2000);
    // While the gateway is gone the runner's calls fail; it retries with a growing pause.
    await eventually(() => /lease call failed/.test(runner.log()), 10_000);
    p = await startTestPlatform({ port, dataDir: keptDataDir, env: PLATFORM_ENV });
    await eventually(async () => ((await http(p, "GET", "/v1/models")).body.models as any[]).some((m) => m.endpoint_id === APP), 15_000);
    const done = await fal.run(APP, { input: { message: "after the restart", steps: 1, step_ms: 10 } });
    assert.equal((done.data).message, "after the restart");
    assert.equal(runner.child.exitCode, null);
  });

  it("SIGTERM drains: a request still running past the grace period is handed back to the queue", async () => {
    const runner = second;
    assert.ok(runner);
    const { request_id: id } = await fal.queue.submit(APP, { input: { message: "drain", steps: 100, step_ms: 100 } });
    await eventually(async () => ((await record(p, id)).progress?.step ?? 0) >= 1, 10_000);
    runner.child.kill("SIGTERM");
    assert.equal(await runner.exited, 0);
    assert.match(runner.log(), /SIGTERM: draining \(1 in flight\)/);
    // Handed back with ERR_RUNNER_DISCONNECTED, which the gateway retries: queued again at once.
    const back = await record(p, id);
    assert.equal(back.state, "QUEUED", JSON.stringify(back));
    assert.equal((await cancel(p, APP, id)).status, 202);
  });
});
