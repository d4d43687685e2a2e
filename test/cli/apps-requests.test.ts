/**
 * `darkroom apps list|show` and `darkroom requests list|show|cancel` against a real server.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ADMIN_KEY, ECHO_APP, TEST_APPS, eventually, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { cli, scratchDir } from "./helpers.js";

async function finished(p: TestPlatform, id: string): Promise<Record<string, any>> {
  return eventually(async () => {
    const r = await http(p, "GET", `/v1/requests/${id}`);
    return r.body.finished_at ? r.body : null;
  });
}

describe("darkroom apps and requests", () => {
  let p: TestPlatform;
  let scratch: ReturnType<typeof scratchDir>;
  let env: Record<string, string>;
  before(async () => {
    p = await startTestPlatform({ appModules: [ECHO_APP, path.join(TEST_APPS, "unavailable.ts"), path.join(TEST_APPS, "serial.ts")] });
    scratch = scratchDir();
    env = { DARKROOM_URL: p.url, DARKROOM_KEY: ADMIN_KEY };
  });
  after(async () => {
    await p.close();
    scratch.remove();
  });

  it("apps list shows id, category and availability with the reason", async () => {
    const [text, json] = await Promise.all([cli(["apps", "list"], { env }), cli(["apps", "list", "--json"], { env })]);
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.trimEnd().split("\n");
    assert.match(lines[0] ?? "", /^ID\s+NAME\s+CATEGORY\s+AVAILABILITY$/);
    assert.ok(lines.some((l) => /^darkroom\/echo\s+Echo\s+utility\s+available$/.test(l)), text.stdout);
    assert.ok(
      lines.some((l) => /^darkroom-test\/unavailable\s+.*\s+test\s+unavailable: the program 'frobnicate' is not installed$/.test(l)),
      text.stdout,
    );
    assert.equal(json.code, 0, json.stderr);
    const models = JSON.parse(json.stdout) as { endpoint_id: string; availability: { available: boolean } }[];
    assert.deepEqual(models.map((m) => m.endpoint_id).sort(), ["darkroom-test/serial", "darkroom-test/unavailable", "darkroom/echo"]);
  });

  it("apps show describes the endpoints and the input fields from the JSON schema", async () => {
    const r = await cli(["apps", "show", "darkroom/echo"], { env });
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout;
    assert.match(out, /^darkroom\/echo {2}Echo\n {2}Returns its input\./);
    assert.match(out, /availability {2}available/);
    assert.match(out, /darkroom\/echo\/stream\s+stream\s+darkroom run darkroom\/echo\/stream/);
    assert.match(out, /darkroom\/echo\/realtime\s+realtime\s+WebSocket/);
    assert.match(out, /Input of darkroom\/echo, darkroom\/echo\/stream/);
    assert.match(out, /\n {2}sleep_ms\s+integer\s+0\s+0\.\.600000\s+Work time to simulate/);
    assert.match(out, /\n {2}fail\s+string\s+one of: error, crash, hang, validation/);
    assert.match(out, /\n {2}logs\s+array<string>\s+\[\]/);
    assert.match(out, /\n {2}file_url\s+file URL\s+A file/);
    assert.match(out, /Output of darkroom\/echo\n[\s\S]*attempt \*\s+integer/);

    const [unavailable, json, missing] = await Promise.all([
      cli(["apps", "show", "darkroom-test/unavailable"], { env }),
      cli(["apps", "show", "darkroom/echo", "--json"], { env }),
      cli(["apps", "show", "nobody/missing"], { env }),
    ]);
    assert.match(unavailable.stdout, /availability {2}unavailable: the program 'frobnicate' is not installed\n {2}remedy {8}apt-get install frobnicate/);
    assert.equal(JSON.parse(json.stdout).endpoint_id, "darkroom/echo");
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /app 'nobody\/missing' not found/);
  });

  it("requests list filters by app, status and limit", async () => {
    const ok = (await http(p, "POST", "/queue/darkroom/echo", { message: "listed", logs: ["hello log"] })).body.request_id as string;
    const failed = (await http(p, "POST", "/queue/darkroom/echo", { fail: "error" })).body.request_id as string;
    await finished(p, ok);
    await finished(p, failed);

    const [all, onlyFailed, limited, table, badStatus] = await Promise.all([
      cli(["requests", "list", "--app", "darkroom/echo", "--json"], { env }),
      cli(["requests", "list", "--status", "failed", "--json"], { env }),
      cli(["requests", "list", "--limit", "1", "--json"], { env }),
      cli(["requests", "list"], { env }),
      cli(["requests", "list", "--status", "DONE"], { env }),
    ]);
    assert.equal(all.code, 0, all.stderr);
    const ids = (JSON.parse(all.stdout) as { request_id: string }[]).map((r) => r.request_id);
    assert.ok(ids.includes(ok) && ids.includes(failed));
    const failedRows = JSON.parse(onlyFailed.stdout) as { request_id: string; state: string; error_type: string }[];
    assert.ok(failedRows.length >= 1 && failedRows.every((r) => r.state === "FAILED"));
    assert.ok(failedRows.some((r) => r.request_id === failed));
    assert.equal((JSON.parse(limited.stdout) as unknown[]).length, 1);
    assert.match(table.stdout, /^REQUEST ID\s+ENDPOINT\s+STATE\s+MODE\s+CREATED\s+DURATION\s+ERROR\n/);
    assert.match(table.stdout, new RegExp(`${failed}\\s+darkroom/echo\\s+FAILED\\s+queue\\s+\\S+ \\S+\\s+\\d+\\.\\d+ s\\s+\\S`), "the error column is filled");
    assert.match(table.stdout, new RegExp(`${ok}\\s+darkroom/echo\\s+SUCCEEDED\\s+queue`));
    assert.equal(badStatus.code, 2);
    assert.match(badStatus.stderr, /--status must be one of QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED/);

    const [shown, json, missing] = await Promise.all([
      cli(["requests", "show", ok], { env }),
      cli(["requests", "show", ok, "--json"], { env }),
      cli(["requests", "show", "no-such-request"], { env }),
    ]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`^request {3}${ok}\napp {7}darkroom/echo\nstate {5}SUCCEEDED \\(HTTP 200\\)`));
    assert.match(shown.stdout, /\nstarted {3}\S+ \S+ {2}\(waited \d+\.\d+ s\)\nfinished {2}\S+ \S+ {2}\(ran \d+\.\d+ s, total \d+\.\d+ s\)/);
    assert.match(shown.stdout, /\nLogs \(1\)\n {2}\S+ \S+ INFO {2}hello log\n/);
    assert.match(shown.stdout, /\nResult\n {2}\{\n {4}"message": "listed",/);
    const detail = JSON.parse(json.stdout);
    assert.deepEqual(detail.output, { message: "listed", attempt: 1 });
    assert.equal(detail.logs[0].message, "hello log");
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /request no-such-request not found/);
  });

  it("requests cancel stops a sleeping request, which ends CANCELLED; a finished one cannot be cancelled", async () => {
    const id = (await http(p, "POST", "/queue/darkroom/echo", { sleep_ms: 60_000 })).body.request_id as string;
    await eventually(async () => (await http(p, "GET", `/v1/requests/${id}`)).body.state === "RUNNING");
    const cancelled = await cli(["requests", "cancel", id], { env });
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.equal(cancelled.stdout, `Cancellation requested for ${id}.\n`);
    const record = await finished(p, id);
    assert.equal(record.state, "CANCELLED");

    const [shown, again, missing] = await Promise.all([
      cli(["requests", "show", id], { env }),
      cli(["requests", "cancel", id], { env }),
      cli(["requests", "cancel", "no-such-request"], { env }),
    ]);
    assert.match(shown.stdout, /state {5}CANCELLED \(HTTP 499\)\nerror {5}Request cancelled by client \(client_cancelled\)/);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /has already finished; nothing to cancel/);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /request no-such-request not found/);
  });

  it("run --no-wait prints the request id, and requests cancel removes a queued request", async () => {
    // The serial app runs one request at a time: the first one keeps the second queued.
    const running = await cli(["run", "darkroom-test/serial", "label=first", "sleep_ms=60000", "--no-wait", "--json"], { env, cwd: scratch.dir });
    assert.equal(running.code, 0, running.stderr);
    const submitted = JSON.parse(running.stdout) as { request_id: string; status: string; status_url: string };
    assert.equal(submitted.status, "IN_QUEUE");
    assert.ok(submitted.status_url.endsWith(`/queue/darkroom-test/serial/requests/${submitted.request_id}/status`));
    await eventually(async () => (await http(p, "GET", `/v1/requests/${submitted.request_id}`)).body.state === "RUNNING");

    const queued = await cli(["run", "darkroom-test/serial", "label=second", "--no-wait"], { env, cwd: scratch.dir });
    const queuedId = queued.stdout.trim();
    assert.match(queuedId, /^[0-9a-f-]{36}$/);
    assert.equal((await http(p, "GET", `/v1/requests/${queuedId}`)).body.state, "QUEUED");
    const shown = await cli(["requests", "show", queuedId], { env });
    assert.match(shown.stdout, /state {5}QUEUED\nqueue {5}position 0\n/);

    const c = await cli(["requests", "cancel", queuedId, "--json"], { env });
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(JSON.parse(c.stdout), { request_id: queuedId, http_status: 202, status: "CANCELLATION_REQUESTED" });
    assert.equal((await http(p, "GET", `/v1/requests/${queuedId}`)).body.state, "CANCELLED", "a queued request is removed at once");
    await cli(["requests", "cancel", submitted.request_id], { env });
    assert.equal((await finished(p, submitted.request_id)).state, "CANCELLED");
  });
});
