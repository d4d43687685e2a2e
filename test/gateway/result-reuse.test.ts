/**
 * Result reuse (src/reuse/, docs/result-reuse.md) on a real server: the official fal client gets a
 * HIT byte for byte without the app running again (a real upscale of a real photo); two identical
 * requests at once run once (JOINED) and both end with the one result; a joined request whose
 * leader is cancelled runs itself, and one its own client cancels ends alone; `refresh` and `off`
 * run again; an input naming a file, of this server or another, is keyed by the file's content,
 * and one the outbound policy may not fetch is not reused (BYPASS); results are never shared between
 * tenants; workflow nodes reuse results; usage records hits with no run time.
 * @module
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createFalClient, type FalClient } from "@fal-ai/client";
import sharp from "sharp";
import { ADMIN_KEY, ECHO_APP, FIXTURES, REPO_ROOT, eventually, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { waitCompleted } from "../helpers/queue.js";

type Json = Record<string, any>;

const LEDGER_APP = "darkroom-test/cached-ledger";
const UPSCALE = "darkroom/upscale";

describe("result reuse", { timeout: 180_000 }, () => {
  let p: TestPlatform;
  let fal: FalClient;
  let ledgerDir: string;
  let ledgerFile: string;
  /** Another server's file, whose content a test changes. */
  let fileServer: Server;
  let fileServerPort = 0;
  let remoteBody = "";

  /** How often each marker really ran, from the app's own ledger. */
  const runsOf = (marker: string): number => {
    let text = "";
    try {
      text = readFileSync(ledgerFile, "utf8");
    } catch {
      return 0;
    }
    return text.split("\n").filter((line) => line.split(" ")[0] === marker).length;
  };
  const submit = (appId: string, input: unknown, headers: Record<string, string> = {}, as: { url: string; auth: Record<string, string> } = p) => http(as, "POST", `/queue/${appId}`, input, headers);
  const result = (appId: string, id: string) => http(p, "GET", `/queue/${appId}/requests/${id}`);

  before(async () => {
    ledgerDir = mkdtempSync(path.join(tmpdir(), "darkroom-reuse-"));
    ledgerFile = path.join(ledgerDir, "ledger.txt");
    // Runners inherit the environment: the fixture app writes its ledger here.
    process.env["DARKROOM_TEST_LEDGER"] = ledgerFile;
    fileServer = createServer((_req, res) => res.writeHead(200, { "content-type": "text/plain" }).end(remoteBody));
    await new Promise<void>((resolve) => fileServer.listen(0, "127.0.0.1", resolve));
    fileServerPort = (fileServer.address() as AddressInfo).port;
    p = await startTestPlatform({
      appModules: [ECHO_APP, path.join(REPO_ROOT, "src/apps/upscale/app.ts"), path.join(REPO_ROOT, "test/fixtures/apps/cached-ledger.ts")],
      env: { DARKROOM_ALLOW_HOSTS: `127.0.0.1:${fileServerPort}` },
    });
    fal = createFalClient({
      credentials: ADMIN_KEY,
      proxyUrl: { url: `${p.url}/api/fal/proxy`, when: "always" },
      // The only change to the client: ask for reuse, as an application opting in would.
      requestMiddleware: async (request) => ({ ...request, headers: { ...request.headers, "x-darkroom-cache": "use" } }),
    });
  });

  after(async () => {
    await p.close();
    await new Promise((resolve) => fileServer?.close(resolve));
    delete process.env["DARKROOM_TEST_LEDGER"];
    rmSync(ledgerDir, { recursive: true, force: true });
  });

  it("answers a repeated upscale from its first result, byte for byte, with the official client, without running it again", async () => {
    const photo = await sharp(path.join(FIXTURES, "astronaut.png")).extract({ left: 160, top: 48, width: 96, height: 96 }).png().toBuffer();
    const input = { image_url: `data:image/png;base64,${photo.toString("base64")}`, scale: 2 };
    const first = await fal.subscribe(UPSCALE, { input });
    const image = (first.data as Json).image as Json;
    assert.deepEqual([image.width, image.height], [192, 192]);
    const firstRecord = await p.store.get(first.requestId);
    assert.equal(firstRecord?.cache, null, "the first one ran");

    const again = await fal.subscribe(UPSCALE, { input: { scale: 2, image_url: input.image_url } });
    assert.deepEqual(again.data, first.data, "the same output, the same file");
    const hit = await p.store.get(again.requestId);
    assert.deepEqual([hit?.cache, hit?.reusedFrom, hit?.state], ["HIT", first.requestId, "SUCCEEDED"]);
    assert.equal(hit?.startedAt, hit?.finishedAt, "it ran nothing");
    assert.deepEqual(await p.store.getLogs(again.requestId), [], "no runner logged anything for it");

    // Through the queue by hand: the headers, and the result's bytes equal the first's.
    const submitted = await submit(UPSCALE, input, { "x-darkroom-cache": "use" });
    assert.equal(submitted.headers.get("x-darkroom-cache-status"), "HIT");
    assert.equal(submitted.body.status, "COMPLETED", "a hit is finished when it is submitted");
    const firstBytes = await (await fetch(`${p.url}/queue/${UPSCALE}/requests/${first.requestId}`, { headers: p.auth })).text();
    const hitResponse = await fetch(`${p.url}/queue/${UPSCALE}/requests/${submitted.body.request_id as string}`, { headers: p.auth });
    assert.equal(hitResponse.headers.get("x-darkroom-cache-status"), "HIT");
    assert.equal(await hitResponse.text(), firstBytes, "byte-identical result");
    const file = await fetch(image.url as string);
    assert.equal(file.status, 200, "its file is still served");

    const usage = await http(p, "GET", `/v1/usage?app=${UPSCALE}`);
    const row = (usage.body.usage as Json[]).find((u) => u.request_id === again.requestId);
    assert.deepEqual([row?.run_ms, row?.cache, row?.billable_units], [0, "HIT", firstRecord?.billableUnits], "billed as the price says, with no compute");

    // What made each result: the first one's runner, for both.
    const made = await http(p, "GET", `/v1/requests/${first.requestId}/manifest`);
    assert.equal(made.status, 200, JSON.stringify(made.body));
    const runner = made.body.runner as Json;
    assert.deepEqual([runner.kind, runner.app_id, runner.runner_id, made.body.made_by.request_id], ["local", UPSCALE, firstRecord?.leaseOwner, first.requestId]);
    assert.match(runner.app_revision as string, /^[0-9a-f]{32}$/);
    assert.deepEqual(
      (runner.weights as Json[]).map((w) => [w.package, w.version]),
      ["@upscalerjs/esrgan-slim", "@upscalerjs/esrgan-medium", "@upscalerjs/esrgan-thick"].map((name) => [name, JSON.parse(readFileSync(path.join(REPO_ROOT, "node_modules", name, "package.json"), "utf8")).version]),
    );
    assert.equal(runner.runtime.node, process.version);
    assert.equal(runner.runtime.sharp, JSON.parse(readFileSync(path.join(REPO_ROOT, "node_modules/sharp/package.json"), "utf8")).version);
    assert.equal(runner.darkroom_version, JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")).version);
    const reused = await http(p, "GET", `/v1/requests/${again.requestId}/manifest`);
    assert.deepEqual([reused.body.cache, reused.body.made_by.request_id, reused.body.runner.runner_id], ["HIT", first.requestId, runner.runner_id]);
    assert.equal(reused.body.input_sha256, made.body.input_sha256, "the same input, whatever the order of its fields");
    assert.equal(reused.body.seed, null, "upscale takes no seed");

    // The app's default is off: without the header it runs again, with a new file.
    const plain = await http(p, "POST", `/run/${UPSCALE}`, input);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get("x-darkroom-cache-status"), null);
    assert.notEqual(plain.body.image.url, image.url);
  });

  it("runs two identical requests sent at once only once: the second joins the first and ends with its result", async () => {
    const input = { marker: "joined-pair", work_ms: 800 };
    const leader = await submit(LEDGER_APP, input);
    assert.equal(leader.headers.get("x-darkroom-cache-status"), "MISS", "the app uses the cache by default");
    const follower = await submit(LEDGER_APP, { work_ms: 800, marker: "joined-pair" });
    assert.equal(follower.headers.get("x-darkroom-cache-status"), "JOINED");
    assert.equal(follower.body.status, "IN_PROGRESS");
    const [a, b] = await Promise.all([waitCompleted(p, LEDGER_APP, leader.body.request_id), waitCompleted(p, LEDGER_APP, follower.body.request_id)]);
    assert.equal(a.error, undefined);
    assert.equal(b.error, undefined);
    const [ra, rb] = await Promise.all([result(LEDGER_APP, leader.body.request_id), result(LEDGER_APP, follower.body.request_id)]);
    assert.deepEqual(rb.body, ra.body, "one result, one file");
    assert.equal(rb.headers.get("x-darkroom-cache-status"), "JOINED");
    assert.equal(runsOf("joined-pair"), 1, "the app ran once");
    const joined = await p.store.get(follower.body.request_id);
    assert.equal(joined?.reusedFrom, leader.body.request_id);
    const usage = (await p.store.listUsage({ appId: LEDGER_APP })).find((u) => u.requestId === joined?.id);
    assert.deepEqual([usage?.runMs, usage?.cache, usage?.billableUnits], [0, "JOINED", 2]);

    // Later, the same input is a hit; refresh runs it again and the next hit has the new result.
    const hit = await submit(LEDGER_APP, input);
    assert.equal(hit.headers.get("x-darkroom-cache-status"), "HIT");
    const refreshed = await submit(LEDGER_APP, input, { "x-darkroom-cache": "refresh" });
    assert.equal(refreshed.headers.get("x-darkroom-cache-status"), "MISS");
    await waitCompleted(p, LEDGER_APP, refreshed.body.request_id);
    assert.equal(runsOf("joined-pair"), 2);
    const newer = await submit(LEDGER_APP, input);
    assert.equal(newer.headers.get("x-darkroom-cache-status"), "HIT");
    assert.equal((await p.store.get(newer.body.request_id))?.reusedFrom, refreshed.body.request_id);
    const off = await submit(LEDGER_APP, input, { "x-darkroom-cache": "off" });
    assert.equal(off.headers.get("x-darkroom-cache-status"), null);
    await waitCompleted(p, LEDGER_APP, off.body.request_id);
    assert.equal(runsOf("joined-pair"), 3, "off runs it");
  });

  it("runs a joined request itself when its leader is cancelled, and ends one its own client cancels alone", async () => {
    const leader = await submit(LEDGER_APP, { marker: "leader-cancelled", work_ms: 1500 });
    const follower = await submit(LEDGER_APP, { marker: "leader-cancelled", work_ms: 1500 });
    assert.equal(follower.headers.get("x-darkroom-cache-status"), "JOINED");
    const cancelled = await http(p, "PUT", `/queue/${LEDGER_APP}/requests/${leader.body.request_id}/cancel`);
    assert.equal(cancelled.status, 202, JSON.stringify(cancelled.body));
    await waitCompleted(p, LEDGER_APP, follower.body.request_id, 30_000);
    const ran = await p.store.get(follower.body.request_id);
    assert.deepEqual([ran?.state, ran?.cache, ran?.reusedFrom], ["SUCCEEDED", null, null], "it ran as a request of its own");
    assert.equal((await p.store.get(leader.body.request_id))?.state, "CANCELLED");
    assert.equal(runsOf("leader-cancelled"), 1, "once, for the follower");

    const second = await submit(LEDGER_APP, { marker: "follower-cancelled", work_ms: 1200 });
    const quitter = await submit(LEDGER_APP, { marker: "follower-cancelled", work_ms: 1200 });
    assert.equal(quitter.headers.get("x-darkroom-cache-status"), "JOINED");
    const gone = await http(p, "PUT", `/queue/${LEDGER_APP}/requests/${quitter.body.request_id}/cancel`);
    assert.equal(gone.status, 202);
    assert.equal((await p.store.get(quitter.body.request_id))?.state, "CANCELLED", "at once");
    await waitCompleted(p, LEDGER_APP, second.body.request_id);
    assert.equal((await p.store.get(second.body.request_id))?.state, "SUCCEEDED", "the leader ran on");
  });

  it("ends a joined request as its leader failed, and never reuses a failure", async () => {
    const leader = await submit(LEDGER_APP, { marker: "failing", work_ms: 500, fail: true });
    const follower = await submit(LEDGER_APP, { marker: "failing", work_ms: 500, fail: true });
    assert.equal(follower.headers.get("x-darkroom-cache-status"), "JOINED");
    await eventually(async () => ((await p.store.get(follower.body.request_id))?.state === "FAILED" ? true : null), 20_000);
    const [ra, rb] = await Promise.all([result(LEDGER_APP, leader.body.request_id), result(LEDGER_APP, follower.body.request_id)]);
    assert.equal(rb.status, ra.status);
    assert.deepEqual(rb.body, ra.body);
    const retry = await submit(LEDGER_APP, { marker: "failing", work_ms: 0, fail: true }, {});
    assert.equal(retry.headers.get("x-darkroom-cache-status"), "MISS", "another input (work_ms): a new key");
    const again = await submit(LEDGER_APP, { marker: "failing", work_ms: 500, fail: true });
    assert.equal(again.headers.get("x-darkroom-cache-status"), "MISS", "a failed result is not kept");
  });

  it("keys a file of this server by its content", async () => {
    const uploaded = await http(p, "POST", "/api/fal/proxy", { content_type: "text/plain", file_name: "in.txt" }, { "x-fal-target-url": "https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3" });
    assert.equal(uploaded.status, 200, JSON.stringify(uploaded.body));
    const put = await fetch(uploaded.body.upload_url as string, { method: "PUT", body: "first content", headers: { "content-type": "text/plain" } });
    assert.ok(put.ok, `upload answered ${put.status}`);
    const fileUrl = uploaded.body.file_url as string;
    const first = await submit(LEDGER_APP, { marker: "by-content", file_url: fileUrl });
    assert.equal(first.headers.get("x-darkroom-cache-status"), "MISS");
    await waitCompleted(p, LEDGER_APP, first.body.request_id);
    assert.equal((await submit(LEDGER_APP, { marker: "by-content", file_url: fileUrl })).headers.get("x-darkroom-cache-status"), "HIT");
    // The same URL, other bytes behind it: a new key.
    const key = decodeURIComponent(new URL(fileUrl).pathname.slice("/files/".length));
    await p.storage.put(key, Buffer.from("second, longer content"), { contentType: "text/plain", fileName: "in.txt" });
    const changed = await submit(LEDGER_APP, { marker: "by-content", file_url: fileUrl });
    assert.equal(changed.headers.get("x-darkroom-cache-status"), "MISS");
    await waitCompleted(p, LEDGER_APP, changed.body.request_id);
    assert.equal((await result(LEDGER_APP, changed.body.request_id)).body.input_bytes, "second, longer content".length);

  });

  it("keys another server's file by the content it serves now, and does not reuse one it may not fetch", async () => {
    const remote = `http://127.0.0.1:${fileServerPort}/remote.txt`;
    remoteBody = "remote content, first";
    const first = await submit(LEDGER_APP, { marker: "remote-file", file_url: remote });
    assert.equal(first.headers.get("x-darkroom-cache-status"), "MISS");
    await waitCompleted(p, LEDGER_APP, first.body.request_id);
    assert.equal((await submit(LEDGER_APP, { marker: "remote-file", file_url: remote })).headers.get("x-darkroom-cache-status"), "HIT");
    remoteBody = "remote content, changed behind the same URL";
    const changed = await submit(LEDGER_APP, { marker: "remote-file", file_url: remote });
    assert.equal(changed.headers.get("x-darkroom-cache-status"), "MISS");
    await waitCompleted(p, LEDGER_APP, changed.body.request_id);
    assert.equal((await result(LEDGER_APP, changed.body.request_id)).body.input_bytes, remoteBody.length);

    // A private address the outbound policy does not allow: not fetched for a key (the request still runs, and its runner refuses it).
    const refused = await submit(LEDGER_APP, { marker: "private-file", file_url: "http://10.0.0.1/in.txt" });
    assert.equal(refused.headers.get("x-darkroom-cache-status"), "BYPASS");
    assert.match(refused.headers.get("x-darkroom-cache-reason") ?? "", /could not be fetched/);
  });

  it("never shares a result between tenants", async () => {
    const created = await http(p, "POST", "/v1/keys", { name: "other team", scope: "api", tenant: "other-team" });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const other = { url: p.url, auth: { authorization: `Key ${created.body.key as string}` } };
    const mine = await submit(LEDGER_APP, { marker: "tenant-apart" });
    await waitCompleted(p, LEDGER_APP, mine.body.request_id);
    const theirs = await submit(LEDGER_APP, { marker: "tenant-apart" }, {}, other);
    assert.equal(theirs.headers.get("x-darkroom-cache-status"), "MISS");
    await waitCompleted(p, LEDGER_APP, theirs.body.request_id);
    assert.equal(runsOf("tenant-apart"), 2);
    assert.equal((await submit(LEDGER_APP, { marker: "tenant-apart" }, {}, other)).headers.get("x-darkroom-cache-status"), "HIT", "within the tenant");
  });

  it("refuses an unknown X-Darkroom-Cache (400) and queues nothing", async () => {
    const before = (await p.store.list({ appId: LEDGER_APP, limit: 500 })).length;
    const bad = await submit(LEDGER_APP, { marker: "bad-header" }, { "x-darkroom-cache": "sometimes" });
    assert.equal(bad.status, 400);
    assert.match(bad.body.detail, /use, refresh, off/);
    assert.equal((await p.store.list({ appId: LEDGER_APP, limit: 500 })).length, before);
  });

  it("reuses node results in workflows: a second run of the same workflow runs no node again", async () => {
    const registered = await http(p, "PUT", "/v1/workflows/acme/cached-pair", {
      contents: {
        nodes: {
          input: { id: "input", type: "input", depends: [], input: { text: "" } },
          first: { id: "first", type: "run", depends: ["input"], app: LEDGER_APP, input: { marker: "$input.text" } },
          second: { id: "second", type: "run", depends: ["first"], app: LEDGER_APP, input: { marker: "$first.file.file_name" } },
        },
        output: { file: "$second.file" },
      },
    });
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    const plainFal = createFalClient({ credentials: ADMIN_KEY, proxyUrl: { url: `${p.url}/api/fal/proxy`, when: "always" } });
    const one = await plainFal.subscribe("workflows/acme/cached-pair", { input: { text: "wf-node" } });
    const two = await plainFal.subscribe("workflows/acme/cached-pair", { input: { text: "wf-node" } });
    assert.deepEqual(two.data, one.data);
    assert.deepEqual([runsOf("wf-node"), runsOf("wf-node.txt")], [1, 1], "each node ran once over both runs");
    const nodes = (await p.store.list({ appId: LEDGER_APP, limit: 500 })).filter((r) => r.reusedFrom !== null && ["wf-node", "wf-node.txt"].includes((r.input as Json).marker));
    assert.equal(nodes.length, 2, "both nodes of the second run are hits");
  });
});
