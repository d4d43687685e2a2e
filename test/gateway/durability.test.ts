/**
 * A request that got its 200 survives `kill -9` of the server: after a restart on the same data
 * folder, queued requests run, interrupted ones are retried, and each ends exactly once.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { nodeRequestId } from "../../src/scheduler/workflow-executor.js";
import { ADMIN_KEY, REPO_ROOT, eventually, http } from "../helpers/platform.js";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function startServer(dataDir: string, port: number): ChildProcess {
  return spawn(process.execPath, [path.join(REPO_ROOT, "bin/darkroom.js"), "serve", "--port", String(port), "--data-dir", dataDir, "--only", "darkroom/echo"], {
    env: { ...process.env, DARKROOM_ADMIN_KEY: ADMIN_KEY, DARKROOM_LOG_LEVEL: "warn" },
    // Started outside the repository, as an installed `darkroom` is: runners must still find tsx.
    cwd: dataDir,
    stdio: ["ignore", "ignore", "inherit"],
  });
}

describe("durability across kill -9 of the server", () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), "darkroom-durability-"));
  let server: ChildProcess | null = null;
  const cleanup: string[] = [dataDir];

  /** kill -9 of the server, once it has exited. */
  async function killServer(): Promise<void> {
    const killed = server;
    if (!killed || killed.exitCode !== null || killed.signalCode !== null) return;
    const exited = new Promise((resolve) => killed.once("exit", resolve));
    killed.kill("SIGKILL");
    await exited;
  }

  /** kill -9, then a new server on the same data folder and port, once it is ready. */
  async function killAndRestart(dir: string, port: number): Promise<void> {
    await killServer();
    server = startServer(dir, port);
    await eventually(async () => (await fetch(`http://127.0.0.1:${port}/ready`)).ok, 30_000, 100);
  }
  after(() => {
    server?.kill("SIGKILL");
    for (const dir of cleanup) rmSync(dir, { recursive: true, force: true });
  });

  it("runs queued requests and retries interrupted ones after a restart", async () => {
    const port = await freePort();
    const target = { url: `http://127.0.0.1:${port}`, auth: { authorization: `Key ${ADMIN_KEY}` } };
    server = startServer(dataDir, port);
    await eventually(async () => (await fetch(`${target.url}/ready`)).ok, 30_000, 100);

    // Long enough that the kill lands while some run and the rest wait (echo runs 32 at once per runner, 2 runners).
    const ids: string[] = [];
    for (let i = 0; i < 80; i++) {
      const res = await http(target, "POST", "/queue/darkroom/echo", { message: i, sleep_ms: 2000 });
      assert.equal(res.status, 200);
      ids.push(res.body.request_id as string);
    }
    await eventually(async () => {
      const { body } = await http(target, "GET", `/queue/darkroom/echo/requests/${ids[0]}/status`);
      return body.status === "IN_PROGRESS";
    }, 20_000);

    await killAndRestart(dataDir, port);

    const outcomes = await eventually(async () => {
      const all = await Promise.all(ids.map((id) => http(target, "GET", `/v1/requests/${id}`)));
      return all.every((r) => r.body.state === "SUCCEEDED") ? all : null;
    }, 60_000, 250);

    const attempts = outcomes.map((r) => r.body.attempt as number);
    assert.ok(attempts.some((a) => a >= 2), "requests that were running when the server died were retried");
    assert.ok(attempts.every((a) => a <= 2), "nothing ran more than once after the single crash");
    for (const [i, r] of outcomes.entries()) {
      assert.deepEqual(r.body.output, { message: i, attempt: r.body.attempt }, "each request ends with its own output");
      const result = await http(target, "GET", `/queue/darkroom/echo/requests/${ids[i]}`);
      assert.equal(result.status, 200);
      assert.equal(result.body.message, i);
    }
    // One terminal write each: usage holds exactly one record per request.
    const usage = await http(target, "GET", "/v1/usage?limit=1000");
    const counted = (usage.body.usage as { request_id: string }[]).filter((u) => ids.includes(u.request_id));
    assert.equal(counted.length, ids.length);
  });
  it("resumes a workflow after kill -9 without running again the nodes that had finished", async () => {
    // A server of its own, on a data folder of its own: one process owns a SQLite file.
    await killServer();
    const workflowDir = mkdtempSync(path.join(tmpdir(), "darkroom-durability-wf-"));
    cleanup.push(workflowDir);
    const port = await freePort();
    const target = { url: `http://127.0.0.1:${port}`, auth: { authorization: `Key ${ADMIN_KEY}` } };
    server = startServer(workflowDir, port);
    await eventually(async () => (await fetch(`${target.url}/ready`)).ok, 30_000, 100);
    const registered = await http(target, "PUT", "/v1/workflows/acme/durable", {
      contents: {
        nodes: {
          input: { type: "input", depends: [], input: { text: "" } },
          quick: { type: "run", depends: ["input"], app: "darkroom/echo", input: { message: "$input.text", sleep_ms: 100 } },
          slow: { type: "run", depends: ["quick"], app: "darkroom/echo", input: { message: "$quick.message", sleep_ms: 3000 } },
        },
        output: { text: "$slow.message" },
      },
    });
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    const submitted = await http(target, "POST", "/queue/acme/durable", { text: "survives" });
    assert.equal(submitted.status, 200, JSON.stringify(submitted.body));
    const id = submitted.body.request_id as string;
    const quickId = nodeRequestId(id, "quick");
    const slowId = nodeRequestId(id, "slow");
    await eventually(async () => (await http(target, "GET", `/v1/requests/${slowId}`)).body.state === "RUNNING", 20_000);
    const quickBefore = (await http(target, "GET", `/v1/requests/${quickId}`)).body;
    assert.equal(quickBefore.state, "SUCCEEDED");

    await killAndRestart(workflowDir, port);

    const workflow = await eventually(async () => {
      const { body } = await http(target, "GET", `/v1/requests/${id}`);
      return body.state === "SUCCEEDED" || body.state === "FAILED" ? body : null;
    }, 60_000, 250);
    assert.equal(workflow.state, "SUCCEEDED", JSON.stringify(workflow));
    assert.deepEqual(workflow.output, { text: "survives" });
    assert.equal(workflow.attempt, 2, "the workflow was taken up again after the restart");
    const quickAfter = (await http(target, "GET", `/v1/requests/${quickId}`)).body;
    assert.equal(quickAfter.attempt, 1, "the finished node did not run again");
    assert.equal(quickAfter.finished_at, quickBefore.finished_at);
    const slowAfter = (await http(target, "GET", `/v1/requests/${slowId}`)).body;
    assert.equal(slowAfter.state, "SUCCEEDED");
    assert.equal(slowAfter.attempt, 2, "the node that was running when the server died ran once more, under the same id");
  });
});
