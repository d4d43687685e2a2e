/**
 * The fleet on one machine: two gateways (`darkroom serve` processes) on one PostgreSQL database
 * and one S3 server (s3rver), two runner hosts (`darkroom runner`) that connect out to them. Any
 * gateway answers for any request; a status stream on one follows a request submitted to the other.
 * Under load, one gateway and one runner are killed with SIGKILL: every accepted request still ends
 * exactly once from the client's view, none is lost, none runs to completion twice.
 * @module
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { request as httpRequest } from "node:http";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import S3rver from "s3rver";
import { createPostgresStore, type PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.js";
import { ADMIN_KEY, REPO_ROOT } from "../helpers/platform.js";
import { readSse, sleep } from "../helpers/queue.js";
import { startRunnerProcess, type RunnerProcess } from "../helpers/remote-runner.js";
import { createTestDatabase, type TestDatabase } from "../store/pg-database.js";

const APP = "darkroom-test/ledger";
const LEDGER_APP = path.join(REPO_ROOT, "test/fixtures/apps/ledger.ts");
const BUCKET = "darkroom-fleet";
const LEASE_MS = 2000;
const auth = { authorization: `Key ${ADMIN_KEY}`, "content-type": "application/json" };

interface Accepted {
  id: string;
  marker: string;
  file: boolean;
  via: string;
}

async function submitVia(gateways: string[], input: Record<string, unknown>): Promise<{ id: string; via: string } | null> {
  // A client that finds one gateway down tries the next, as a load balancer would.
  for (const gateway of gateways) {
    try {
      const res = await fetch(`${gateway}/queue/${APP}`, { method: "POST", headers: auth, body: JSON.stringify(input), signal: AbortSignal.timeout(5000) });
      if (res.status !== 200) continue;
      const body = (await res.json()) as { request_id: string };
      return { id: body.request_id, via: gateway };
    } catch {
      // refused or cut: not accepted there
    }
  }
  return null;
}

async function waitDone(gateway: string, id: string, timeoutMs: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${gateway}/queue/${APP}/requests/${id}/status`, { headers: auth });
    const body = (await res.json()) as Record<string, unknown>;
    if (body["status"] === "COMPLETED") return body;
    if (Date.now() > deadline) throw new Error(`${id} not completed within ${timeoutMs} ms: ${JSON.stringify(body)}`);
    await sleep(100);
  }
}

describe("several gateways, remote runners, PostgreSQL and S3", () => {
  let database: TestDatabase;
  let s3: S3rver;
  let s3Dir: string;
  let dataDir: string;
  let ledger: string;
  let store: PostgresStore;
  const gateways: GatewayProcess[] = [];
  const runners: RunnerProcess[] = [];

  before(async () => {
    database = await createTestDatabase();
    s3Dir = await mkdtemp(path.join(tmpdir(), "darkroom-fleet-s3-"));
    s3 = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: s3Dir });
    const address = await s3.run();
    const endpoint = `http://127.0.0.1:${address.port}`;
    const client = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } });
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    client.destroy();
    // Gateways share their secrets (tokens, signed URLs, webhook keys) through one folder, as a
    // fleet shares them through one mounted Secret; nothing else lives there.
    dataDir = await mkdtemp(path.join(tmpdir(), "darkroom-fleet-"));
    ledger = path.join(dataDir, "ledger.txt");
    await writeFile(ledger, "");
    const env = {
      DARKROOM_ADMIN_KEY: ADMIN_KEY,
      DARKROOM_DATA_DIR: dataDir,
      DARKROOM_DATABASE_URL: database.url,
      DARKROOM_STORAGE_URL: `s3://${BUCKET}/fleet`,
      DARKROOM_S3_ENDPOINT: endpoint,
      AWS_ACCESS_KEY_ID: "S3RVER",
      AWS_SECRET_ACCESS_KEY: "S3RVER",
      AWS_REGION: "us-east-1",
      DARKROOM_LEASE_MS: String(LEASE_MS),
      DARKROOM_LOCAL_RUNNERS: "false",
      DARKROOM_BUILTIN_APPS: "false",
      DARKROOM_APPS: LEDGER_APP,
      DARKROOM_LOG_LEVEL: "warn",
    };
    // One after the other: the first start runs the migrations and provisions the admin key.
    gateways.push(await startGatewayProcess({ env }));
    gateways.push(await startGatewayProcess({ env }));
    const [g1, g2] = gateways as [GatewayProcess, GatewayProcess];
    const minted = await fetch(`${g1.url}/v1/runner-tokens`, { method: "POST", headers: auth, body: JSON.stringify({ apps: [APP] }) });
    assert.equal(minted.status, 201);
    const token = ((await minted.json()) as { token: string }).token;
    const runnerEnv = { DARKROOM_TEST_LEDGER: ledger };
    // Each runner prefers its own gateway and fails over to the other.
    runners.push(await startRunnerProcess({ gateways: [g1.url, g2.url], token, app: LEDGER_APP, slots: 4, env: runnerEnv }));
    runners.push(await startRunnerProcess({ gateways: [g2.url, g1.url], token, app: LEDGER_APP, slots: 4, env: runnerEnv }));
    store = createPostgresStore({ url: database.url });
  });

  after(async () => {
    await Promise.all(runners.map((r) => r.kill()));
    await Promise.all(gateways.map((g) => g.kill()));
    await store?.close();
    s3?.httpServer?.closeAllConnections();
    await s3?.close();
    await database?.drop();
    await rm(s3Dir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  });

  it("a status stream on one gateway follows a request submitted to the other, logs and progress included", async () => {
    const [g1, g2] = gateways as [GatewayProcess, GatewayProcess];
    const submitted = await submitVia([g1.url], { marker: "crossing", work_ms: 600 });
    assert.ok(submitted);
    const sse = await readSse({ url: g2.url, auth }, `/queue/${APP}/requests/${submitted.id}/status/stream?logs=1`, 20_000);
    assert.equal(sse.events.at(-1)?.status, "COMPLETED");
    assert.ok(sse.events.some((e) => e.status === "IN_PROGRESS"), "saw it running");
    const logs = sse.events.flatMap((e) => (e.logs ?? []) as { message: string }[]).map((l) => l.message);
    assert.ok(logs.includes("working on crossing"), JSON.stringify(logs));
    const result = await fetch(`${g2.url}/queue/${APP}/requests/${submitted.id}`, { headers: auth });
    assert.equal(((await result.json()) as { marker: string }).marker, "crossing");
  });

  it("a request submitted to one gateway is cancelled through the other", async () => {
    const [g1, g2] = gateways as [GatewayProcess, GatewayProcess];
    const submitted = await submitVia([g1.url], { marker: "doomed", work_ms: 30_000 });
    assert.ok(submitted);
    for (let i = 0; i < 100 && (await store.get(submitted.id))?.state !== "RUNNING"; i++) await sleep(100);
    const res = await fetch(`${g2.url}/queue/${APP}/requests/${submitted.id}/cancel`, { method: "PUT", headers: auth });
    assert.equal(res.status, 202);
    const done = await waitDone(g1.url, submitted.id, 10_000);
    assert.equal(done["error_type"], "client_cancelled");
    assert.equal((await store.get(submitted.id))?.state, "CANCELLED");
  });

  it("an app only a remote runner knows, registered on one gateway, is served by the other and outlives its runner", async () => {
    const [g1, g2] = gateways as [GatewayProcess, GatewayProcess];
    const remoteApp = "darkroom-test/warm";
    assert.equal((await fetch(`${g2.url}/v1/models/${remoteApp}`, { headers: auth })).status, 404);
    const minted = await fetch(`${g1.url}/v1/runner-tokens`, { method: "POST", headers: auth, body: JSON.stringify({ apps: [remoteApp] }) });
    const token = ((await minted.json()) as { token: string }).token;
    const runner = await startRunnerProcess({ gateways: [g1.url], token, app: path.join(REPO_ROOT, "test/fixtures/apps/warm.ts") });
    try {
      // g2 learns it from the store after g1's wake-up names it.
      for (let i = 0; i < 50 && (await fetch(`${g2.url}/v1/models/${remoteApp}`, { headers: auth })).status !== 200; i++) await sleep(100);
      const res = await fetch(`${g2.url}/run/${remoteApp}`, { method: "POST", headers: auth, body: "{}" });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(((await res.json()) as { setup_calls: number }).setup_calls, 1);
    } finally {
      await runner.stop();
    }
    // No runner now: the app is still known, so work queues (for a runner to come, e.g. scaled from zero).
    const queued = await fetch(`${g2.url}/queue/${remoteApp}`, { method: "POST", headers: auth, body: "{}" });
    assert.equal(queued.status, 200);
    const { request_id } = (await queued.json()) as { request_id: string };
    await fetch(`${g2.url}/queue/${remoteApp}/requests/${request_id}/cancel`, { method: "PUT", headers: auth });
  });

  it("result reuse across gateways: an identical request on the other gateway joins the first, then hits; the manifest names the remote runner", async () => {
    const [g1, g2] = gateways as [GatewayProcess, GatewayProcess];
    const cachedApp = "darkroom-test/cached-ledger";
    const minted = await fetch(`${g1.url}/v1/runner-tokens`, { method: "POST", headers: auth, body: JSON.stringify({ apps: [cachedApp] }) });
    const token = ((await minted.json()) as { token: string }).token;
    const cachedLedger = path.join(dataDir, "cached-ledger.txt");
    await writeFile(cachedLedger, "");
    const runner = await startRunnerProcess({ gateways: [g1.url, g2.url], token, app: path.join(REPO_ROOT, "test/fixtures/apps/cached-ledger.ts"), slots: 4, env: { DARKROOM_TEST_LEDGER: cachedLedger } });
    try {
      for (let i = 0; i < 50 && (await fetch(`${g2.url}/v1/models/${cachedApp}`, { headers: auth })).status !== 200; i++) await sleep(100);
      // Both gateways behind one name, as a load balancer passes its Host on: a result's output URLs
      // are built on the origin its client used, so results are shared between clients of one origin.
      const publicHost = new URL(g1.url).host;
      const submit = async (gateway: string): Promise<{ headers: Headers; json: () => Promise<unknown> }> => {
        const target = new URL(`${gateway}/queue/${cachedApp}`);
        const body = JSON.stringify({ marker: "fleet-join", work_ms: 1500 });
        return new Promise((resolve, reject) => {
          const req = httpRequest({ host: target.hostname, port: target.port, path: target.pathname, method: "POST", headers: { ...auth, host: publicHost, "content-length": Buffer.byteLength(body) } }, (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              const headers = new Headers();
              for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") headers.set(k, v);
              const text = Buffer.concat(chunks).toString("utf8");
              resolve({ headers, json: async () => JSON.parse(text) as unknown });
            });
          });
          req.on("error", reject);
          req.end(body);
        });
      };
      const first = await submit(g1.url);
      assert.equal(first.headers.get("x-darkroom-cache-status"), "MISS", "the runner declared the app's results reusable by default");
      const second = await submit(g2.url);
      assert.equal(second.headers.get("x-darkroom-cache-status"), "JOINED", "the other gateway joins it");
      const ids = [((await first.json()) as { request_id: string }).request_id, ((await second.json()) as { request_id: string }).request_id];
      const results = await Promise.all(
        ids.map(async (id, i) => {
          const gateway = i === 0 ? g1.url : g2.url;
          for (let n = 0; n < 200 && (await store.get(id))?.state !== "SUCCEEDED"; n++) await sleep(100);
          return (await fetch(`${gateway}/queue/${cachedApp}/requests/${id}`, { headers: auth })).text();
        }),
      );
      assert.equal(results[1], results[0], "one result");
      assert.equal((await readFile(cachedLedger, "utf8")).split("\n").filter((l) => l.startsWith("fleet-join ")).length, 1, "it ran once");
      const third = await submit(g2.url);
      assert.equal(third.headers.get("x-darkroom-cache-status"), "HIT");
      const manifest = (await (await fetch(`${g2.url}/v1/requests/${ids[1]}/manifest`, { headers: auth })).json()) as { cache: string; made_by: { request_id: string }; runner: { kind: string; runner_id: string; app_id: string } };
      assert.deepEqual([manifest.cache, manifest.made_by.request_id, manifest.runner.kind, manifest.runner.runner_id, manifest.runner.app_id], ["JOINED", ids[0], "remote", runner.runnerId, cachedApp]);
    } finally {
      await runner.stop();
    }
  });

  it("under load, kill -9 one gateway and one runner: every accepted request ends exactly once", async () => {
    const [g1, g2] = gateways as [GatewayProcess, GatewayProcess];
    const [runnerA] = runners as [RunnerProcess, RunnerProcess];
    const total = 48;
    const accepted: Accepted[] = [];
    let refused = 0;
    let killed = false;
    const killAt = 16;
    for (let i = 0; i < total; i++) {
      const preferred = i % 2 === 0 ? [g1.url, g2.url] : [g2.url, g1.url];
      const marker = `load-${i}`;
      const file = i % 6 === 0;
      const got = await submitVia(preferred, { marker, work_ms: 300 + ((i * 137) % 700), file });
      if (got) accepted.push({ ...got, marker, file });
      else refused += 1;
      if (i === killAt) {
        // Both at once, while requests are queued and running everywhere.
        await Promise.all([g1.kill(), runnerA.kill()]);
        killed = true;
      }
      await sleep(40);
    }
    assert.ok(killed);
    assert.ok(accepted.length >= total - 2, `accepted ${accepted.length} of ${total} (${refused} refused)`);

    // The survivor answers for every request, whichever gateway took it.
    const outcomes = await Promise.all(accepted.map(async (a) => ({ a, status: await waitDone(g2.url, a.id, 60_000) })));
    const runnerAPid = runnerA.child.pid;
    const ledgerLines = (await readFile(ledger, "utf8")).split("\n").filter(Boolean).map((line) => line.split(" "));
    const usage = await store.listUsage({ appId: APP, limit: 10_000 });
    let retried = 0;
    let unreportedCompletions = 0;
    for (const { a, status } of outcomes) {
      assert.equal(status["error"], undefined, `${a.marker}: ${JSON.stringify(status)}`);
      const res = await fetch(`${g2.url}/queue/${APP}/requests/${a.id}`, { headers: auth });
      assert.equal(res.status, 200);
      const output = (await res.json()) as { marker: string; attempt: number; file?: { url: string } };
      assert.equal(output.marker, a.marker, "each request got its own output");
      if (output.attempt > 1) retried += 1;
      if (a.file) {
        assert.ok(output.file, `${a.marker} has its file`);
        // The file is in S3: any gateway serves it, whichever took the request.
        const url = new URL(output.file.url);
        const bytes = await (await fetch(`${g2.url}${url.pathname}`)).text();
        assert.equal(bytes, `payload of ${a.marker}`);
      }
      const record = await store.get(a.id);
      assert.equal(record?.state, "SUCCEEDED");
      assert.equal(usage.filter((u) => u.requestId === a.id).length, 1, `${a.marker}: exactly one terminal write`);
      // Completions by the ledger: one reported run; at most one more by the runner that was
      // killed between finishing a handler and reporting it (its work was lost, so it ran again).
      const runs = ledgerLines.filter(([id]) => id === a.id);
      const survivorRuns = runs.filter(([, , pid]) => Number(pid) !== runnerAPid);
      const killedRuns = runs.filter(([, , pid]) => Number(pid) === runnerAPid);
      assert.ok(runs.length >= 1, `${a.marker} ran`);
      assert.ok(survivorRuns.length <= 1 && killedRuns.length <= 1, `${a.marker} ran to completion ${runs.length} times: ${JSON.stringify(runs)}`);
      if (runs.length === 2) {
        unreportedCompletions += 1;
        assert.equal(output.attempt, 2, "the second run is a retry");
      }
    }
    // The kill caught some requests in flight or in the dead gateway's hands, and they were retried.
    assert.ok(retried + accepted.filter((a) => a.via === g1.url).length > 0);
    process.stdout.write(`# fleet: ${accepted.length} accepted, ${refused} refused, ${retried} retried after the kill, ${unreportedCompletions} completed-but-unreported runs redone\n`);
  });
});
