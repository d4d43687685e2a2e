/**
 * Compatibility with the official JS client, `@fal-ai/client` 1.10.1, used exactly as a user would:
 * `createFalClient` with the Node-enabled proxy option, no middleware and no custom fetch. Every call
 * therefore goes through `/api/fal/proxy` with the real fal URL in `x-fal-target-url` (docs/api.md, Proxy),
 * and the assertions are on what the client hands back to its caller.
 * @module
 */
import assert from "node:assert/strict";
import { createHash, createPublicKey, verify, type JsonWebKey } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ApiError, createFalClient, ValidationError, type FalClient, type QueueStatus, type RequestLog } from "@fal-ai/client";
import WebSocket from "ws";
import { ADMIN_KEY, ECHO_APP, eventually, FIXTURES, http, startTestPlatform, TEST_APPS, type TestPlatform } from "../helpers/platform.js";
import { withFalRealtimeAt } from "../helpers/realtime-socket.js";
import { startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

const SERIAL_APP = path.join(TEST_APPS, "serial.ts");
const COFFEE = readFileSync(path.join(FIXTURES, "coffee.png"));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Json = Record<string, any>;

/** Runs `fn`, expects it to reject with an instance of `type`, and returns the error for more checks. */
async function rejectsWith<T extends Error>(fn: () => Promise<unknown>, type: new (...args: any[]) => T): Promise<T> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected a ${type.name} rejection`);
}

async function getBytes(url: string): Promise<{ status: number; contentType: string | null; bytes: Buffer }> {
  const res = await fetch(url);
  return { status: res.status, contentType: res.headers.get("content-type"), bytes: Buffer.from(await res.arrayBuffer()) };
}

/** A rejected client call's ApiError, with its JSON body typed loosely for assertions. */
function apiError(fn: () => Promise<unknown>): Promise<ApiError<Json | undefined>> {
  return rejectsWith(fn, ApiError) as Promise<ApiError<Json | undefined>>;
}

/** `eventually` for a value: resolves with the first non-null result. */
async function waitFor<T>(fn: () => Promise<T | null | undefined>, timeoutMs = 10_000): Promise<T> {
  const value = await eventually(fn, timeoutMs);
  assert.ok(value !== null && value !== undefined);
  return value;
}

function messages(logs: readonly RequestLog[] | null | undefined): string[] {
  return (logs ?? []).map((l) => l.message);
}

describe("@fal-ai/client 1.10.1 against Darkroom", () => {
  let p: TestPlatform;
  let fal: FalClient;
  let hooks: WebhookReceiver<Json>;
  // A second receiver that is not on the allow list: it must never be reached.
  let forbidden: WebhookReceiver<Json>;

  before(async () => {
    hooks = await startWebhookReceiver<Json>();
    forbidden = await startWebhookReceiver<Json>();
    p = await startTestPlatform({
      appModules: [ECHO_APP, SERIAL_APP],
      env: { DARKROOM_ALLOW_HOSTS: `127.0.0.1:${hooks.port}` },
    });
    fal = createFalClient({ credentials: ADMIN_KEY, proxyUrl: { url: `${p.url}/api/fal/proxy`, when: "always" } });
  });

  after(async () => {
    await p?.close();
    for (const r of [hooks, forbidden]) await r?.close();
  });

  it("run returns {data, requestId} and the id names the server's request record", async () => {
    const message = { hello: "wörld", n: [1, 2, 3] };
    const result = await fal.run("darkroom/echo", { input: { message } });
    assert.deepEqual(result.data, { message, attempt: 1 });
    assert.match(result.requestId, UUID);

    const record = await http(p, "GET", `/v1/requests/${result.requestId}`);
    assert.equal(record.status, 200);
    assert.equal(record.body.request_id, result.requestId);
    assert.equal(record.body.app_id, "darkroom/echo");
    assert.equal(record.body.state, "SUCCEEDED");
    assert.equal(record.body.status, "COMPLETED");
    assert.deepEqual(record.body.output, result.data);
  });

  it("subscribe (polling) reports queue updates with the app's log lines in order", async () => {
    const lines = ["first line", "second line", "third line"];
    const updates: QueueStatus[] = [];
    let enqueued: string | undefined;
    const result = await fal.subscribe("darkroom/echo", {
      input: { message: "polled", logs: lines, sleep_ms: 600 },
      mode: "polling",
      pollInterval: 50,
      logs: true,
      onEnqueue: (id) => (enqueued = id),
      onQueueUpdate: (u) => updates.push(u),
    });
    assert.deepEqual(result.data, { message: "polled", attempt: 1 });
    assert.equal(result.requestId, enqueued);

    assert.ok(updates.some((u) => u.status === "IN_QUEUE" || u.status === "IN_PROGRESS"), `statuses: ${updates.map((u) => u.status).join(",")}`);
    const last = updates.at(-1);
    assert.equal(last?.status, "COMPLETED");
    assert.ok(last && "logs" in last);
    // Polling returns every line so far on each update: the last one holds them all, once each, in order.
    assert.deepEqual(messages(last.logs), lines);
    for (const log of last.logs ?? []) {
      assert.equal(log.source, "USER");
      assert.ok(["STDOUT", "STDERR", "INFO", "WARN", "ERROR", "DEBUG"].includes(log.level), log.level);
      assert.ok(!Number.isNaN(Date.parse(log.timestamp)), log.timestamp);
    }
    // Lines seen while running are a prefix of the final list (never reordered or repeated).
    for (const u of updates) {
      if (u.status === "IN_PROGRESS" && u.logs) assert.deepEqual(messages(u.logs), lines.slice(0, u.logs.length));
    }
    for (const u of updates) assert.equal(u.request_id, result.requestId);
  });

  it("subscribe (streaming) delivers each log line once and progress as IN_PROGRESS updates", async () => {
    const lines = ["alpha", "beta", "gamma"];
    // The client accumulates log lines into one array it keeps mutating: snapshot each update.
    const updates: { status: string; logs: string[] | null; progress: Json | undefined }[] = [];
    const result = await fal.subscribe("darkroom/echo", {
      input: { message: "streamed", logs: lines, progress_steps: 3, sleep_ms: 900 },
      mode: "streaming",
      logs: true,
      onQueueUpdate: (u) => {
        const logs = "logs" in u && u.logs ? messages(u.logs) : null;
        updates.push({ status: u.status, logs, progress: (u as Json)["progress"] as Json | undefined });
      },
    });
    assert.deepEqual(result.data, { message: "streamed", attempt: 1 });
    assert.ok(updates.some((u) => u.status === "IN_QUEUE" || u.status === "IN_PROGRESS"));
    const last = updates.at(-1);
    assert.equal(last?.status, "COMPLETED");
    // Had the server resent old lines, the client's running list would hold duplicates.
    assert.deepEqual(last?.logs, lines);

    const steps = updates.filter((u) => u.status === "IN_PROGRESS" && u.progress).map((u) => u.progress?.["step"]);
    for (const step of [1, 2]) assert.ok(steps.includes(step), `progress steps seen: ${JSON.stringify(steps)}`);
    const lastProgress = updates.filter((u) => u.progress).at(-1)?.progress;
    assert.ok(lastProgress === undefined || lastProgress["total"] === 3);
  });

  it("queue submit / status / cancel / result, and cancelling a finished request", async () => {
    const submitted = await fal.queue.submit("darkroom/echo", { input: { message: "slow", sleep_ms: 5000 } });
    assert.equal(submitted.status, "IN_QUEUE");
    assert.match(submitted.request_id, UUID);
    // Python's client needs these; JS ignores them but they must still point here.
    assert.equal(submitted.status_url, `${p.url}/queue/darkroom/echo/requests/${submitted.request_id}/status`);
    const requestId = submitted.request_id;

    const status = await fal.queue.status("darkroom/echo", { requestId, logs: true });
    assert.ok(status.status === "IN_QUEUE" || status.status === "IN_PROGRESS", status.status);
    assert.equal(status.request_id, requestId);

    const started = Date.now();
    await fal.queue.cancel("darkroom/echo", { requestId });
    const done = await waitFor<Json>(async () => {
      const s = await fal.queue.status("darkroom/echo", { requestId, logs: true });
      return s.status === "COMPLETED" ? s : null;
    });
    // The handler stops at once on its AbortSignal rather than sleeping out its 5 s.
    assert.ok(Date.now() - started < 4000, `cancellation took ${Date.now() - started} ms`);
    assert.equal(done["error_type"], "client_cancelled");
    assert.ok(Array.isArray(done["logs"]));

    const err = await apiError(() => fal.queue.result("darkroom/echo", { requestId }));
    assert.equal(err.status, 499);
    assert.equal(err.body?.error_type, "client_cancelled");
    assert.equal(typeof err.body?.detail, "string");
    assert.equal(err.requestId, requestId);

    // Cancelling it again, or cancelling a request that succeeded, is a 400 ALREADY_COMPLETED.
    const again = await apiError(() => fal.queue.cancel("darkroom/echo", { requestId }));
    assert.equal(again.status, 400);
    assert.equal(again.body?.status, "ALREADY_COMPLETED");

    const quick = await fal.queue.submit("darkroom/echo", { input: { message: "quick" } });
    await eventually(async () => (await fal.queue.status("darkroom/echo", { requestId: quick.request_id })).status === "COMPLETED");
    const finished = await fal.queue.result("darkroom/echo", { requestId: quick.request_id });
    assert.deepEqual(finished.data, { message: "quick", attempt: 1 });
    assert.equal(finished.requestId, quick.request_id);
    const late = await apiError(() => fal.queue.cancel("darkroom/echo", { requestId: quick.request_id }));
    assert.equal(late.status, 400);
    assert.equal(late.body?.status, "ALREADY_COMPLETED");

    const missing = await apiError(() => fal.queue.cancel("darkroom/echo", { requestId: crypto.randomUUID() }));
    assert.equal(missing.status, 404);
    assert.equal(missing.body?.status, "NOT_FOUND");
  });

  it("priority: low waits behind normal; startTimeout ends a request that cannot start in time", async () => {
    // 1.10.1's submit options are `priority` ("normal" | "low", sent as x-fal-queue-priority) and
    // `startTimeout` (seconds, must be > 1, sent as x-fal-request-timeout).
    const app = "darkroom-test/serial";
    const blocker = await fal.queue.submit(app, { input: { label: "blocker", sleep_ms: 4000 } });
    await eventually(async () => (await fal.queue.status(app, { requestId: blocker.request_id })).status === "IN_PROGRESS", 20_000);

    const low = await fal.queue.submit(app, { input: { label: "low" }, priority: "low" });
    const normal = await fal.queue.submit(app, { input: { label: "normal" } });
    const timed = await fal.queue.submit(app, { input: { label: "timed" }, startTimeout: 1.5 });

    const lowRecord = await http(p, "GET", `/v1/requests/${low.request_id}`);
    assert.equal(lowRecord.body.priority, "low");
    assert.equal((await http(p, "GET", `/v1/requests/${normal.request_id}`)).body.priority, "normal");
    // The normal request was submitted after the low one but is ahead of it in the queue.
    const lowStatus = await fal.queue.status(app, { requestId: low.request_id });
    const normalStatus = await fal.queue.status(app, { requestId: normal.request_id });
    assert.equal(lowStatus.status, "IN_QUEUE");
    assert.equal(normalStatus.status, "IN_QUEUE");
    assert.ok(
      (normalStatus as Json)["queue_position"] < (lowStatus as Json)["queue_position"],
      `positions: normal ${(normalStatus as Json)["queue_position"]}, low ${(lowStatus as Json)["queue_position"]}`,
    );

    const timeout = await waitFor<Json>(async () => {
      const s = await fal.queue.status(app, { requestId: timed.request_id });
      return s.status === "COMPLETED" ? s : null;
    }, 10_000);
    assert.equal(timeout["error_type"], "request_timeout");
    const timeoutErr = await apiError(() => fal.queue.result(app, { requestId: timed.request_id }));
    assert.equal(timeoutErr.status, 504);
    assert.equal(timeoutErr.timeoutType, "user");
    assert.ok(timeoutErr.isUserTimeout);

    const [lowResult, normalResult, blockerResult] = await Promise.all(
      [low, normal, blocker].map(async (r) => {
        await eventually(async () => (await fal.queue.status(app, { requestId: r.request_id })).status === "COMPLETED", 20_000);
        return (await fal.queue.result(app, { requestId: r.request_id })).data as Json;
      }),
    );
    assert.equal(lowResult?.["label"], "low");
    assert.ok(normalResult?.["started_at"] >= blockerResult?.["started_at"]);
    assert.ok(normalResult?.["started_at"] < lowResult?.["started_at"], "the normal request started before the low one");
  });

  it("stream yields one event per step and done() resolves with the final output", async () => {
    const stream = await fal.stream("darkroom/echo/stream", { input: { progress_steps: 3, message: "sse" } });
    const events: Json[] = [];
    for await (const event of stream) events.push(event as Json);
    const final = await stream.done();
    assert.deepEqual(
      events.map((e) => e["step"]),
      [1, 2, 3],
    );
    for (const e of events) assert.equal(e["message"], "sse");
    assert.deepEqual(final, { message: "sse", attempt: 1, step: 3, total: 3 });
    assert.match(stream.requestId ?? "", UUID);
  });

  it("storage.upload stores a Blob and returns a URL here that serves the same bytes", async () => {
    const url = await fal.storage.upload(new Blob([COFFEE], { type: "image/png" }));
    assert.ok(url.startsWith(`${p.url}/files/`), url);
    const got = await getBytes(url);
    assert.equal(got.status, 200);
    assert.equal(got.contentType, "image/png");
    assert.ok(got.bytes.equals(COFFEE));
  });

  it("run uploads Blob inputs automatically; data: URIs and sync_mode work too", async () => {
    const uploaded = await fal.run("darkroom/echo", { input: { file_url: new Blob([COFFEE], { type: "image/png" }) } });
    const file = (uploaded.data as Json)["file"] as Json;
    assert.equal(file["content_type"], "image/png");
    assert.equal(file["file_size"], COFFEE.length);
    assert.ok(String(file["url"]).startsWith(`${p.url}/files/`), file["url"]);
    assert.ok((await getBytes(file["url"])).bytes.equals(COFFEE));
    // What reached the server was the URL of the upload, not the Blob.
    const record = await http(p, "GET", `/v1/requests/${uploaded.requestId}`);
    assert.ok(String(record.body.input.file_url).startsWith(`${p.url}/files/uploads/`), record.body.input.file_url);

    const dataUri = `data:image/png;base64,${COFFEE.toString("base64")}`;
    const inline = await fal.run("darkroom/echo", { input: { file_url: dataUri } });
    const inlineFile = (inline.data as Json)["file"] as Json;
    assert.equal(inlineFile["file_size"], COFFEE.length);
    assert.equal(inlineFile["content_type"], "image/png");
    assert.ok((await getBytes(inlineFile["url"])).bytes.equals(COFFEE));

    const sync = await fal.run("darkroom/echo", { input: { file_url: new Blob([COFFEE], { type: "image/png" }), sync_mode: true } });
    const syncFile = (sync.data as Json)["file"] as Json;
    const prefix = "data:image/png;base64,";
    assert.ok(String(syncFile["url"]).startsWith(prefix));
    assert.ok(Buffer.from(String(syncFile["url"]).slice(prefix.length), "base64").equals(COFFEE));
    assert.equal(syncFile["file_size"], COFFEE.length);
  });

  it("multipart upload: initiate through the proxy, PUT parts, complete, read back", async () => {
    // The client only goes multipart above 90 MiB; this walks the same URLs with small parts.
    const initiated = await http(p, "POST", "/api/fal/proxy", { content_type: "application/octet-stream", file_name: "parts.bin" }, {
      "x-fal-target-url": "https://rest.fal.ai/storage/upload/initiate-multipart?storage_type=fal-cdn-v3",
    });
    assert.equal(initiated.status, 200);
    const { upload_url: uploadUrl, file_url: fileUrl } = initiated.body as { upload_url: string; file_url: string };
    assert.ok(fileUrl.startsWith(`${p.url}/files/`), fileUrl);

    const parts = [Buffer.alloc(70_000, 1), Buffer.from(COFFEE.subarray(0, 50_000)), Buffer.from("tail ✓")];
    const target = new URL(uploadUrl);
    const answers: { partNumber: number; etag: string }[] = [];
    for (const [i, part] of parts.entries()) {
      // The client's URL shape: {origin}{pathname}/{partNumber}{search}, no Authorization header.
      const res = await fetch(`${target.origin}${target.pathname}/${i + 1}${target.search}`, { method: "PUT", body: part });
      assert.equal(res.status, 200);
      const answer = (await res.json()) as { partNumber: number; etag: string };
      assert.equal(answer.partNumber, i + 1);
      assert.equal(typeof answer.etag, "string");
      answers.push(answer);
    }
    const completed = await fetch(`${target.origin}${target.pathname}/complete${target.search}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ parts: answers }),
    });
    assert.equal(completed.status, 200);

    const got = await getBytes(fileUrl);
    assert.equal(got.status, 200);
    assert.equal(got.contentType, "application/octet-stream");
    assert.ok(got.bytes.equals(Buffer.concat(parts)));
  });

  it("realtime: connect with the default token path, echo request_id; a token for another app is refused", async () => {
    const wsBase = p.url.replace(/^http/, "ws");
    // Node 20 has no global WebSocket, and the client hardcodes wss://fal.run (docs/api.md, Pointing the clients at Darkroom).
    await withFalRealtimeAt(p.url, async () => {
      const results: Json[] = [];
      const errors: unknown[] = [];
      const connection = fal.realtime.connect("darkroom/echo", {
        onResult: (r) => results.push(r as Json),
        onError: (e) => errors.push(e),
      });
      connection.send({ message: "x", request_id: "r1" });
      await eventually(() => results.length > 0, 15_000);
      assert.deepEqual(results[0], { message: "x", request_id: "r1" });
      assert.deepEqual(errors, []);
      connection.close();
    });

    const token = await http(p, "POST", "/rest/tokens/", { allowed_apps: ["other"], token_expiration: 60 });
    assert.equal(token.status, 201);
    assert.equal(typeof token.body, "string");
    const socket = new WebSocket(`${wsBase}/darkroom/echo/realtime?fal_jwt_token=${encodeURIComponent(token.body as string)}`);
    const { first, code } = await new Promise<{ first: string; code: number }>((resolve, reject) => {
      let first = "";
      socket.on("message", (data: Buffer, isBinary: boolean) => {
        if (!first) first = isBinary ? "<binary>" : data.toString("utf8");
      });
      socket.on("close", (c) => resolve({ first, code: c }));
      socket.on("error", reject);
    });
    assert.deepEqual(JSON.parse(first), { status: "error", error: "Unauthorized" });
    assert.equal(code, 1000);
  });

  it("webhooks: signed OK and ERROR deliveries, a delivery log, and a refused URL", async () => {
    const hookUrl = `http://127.0.0.1:${hooks.port}/hook`;
    const ok = await fal.queue.submit("darkroom/echo", { input: { message: "hooked" }, webhookUrl: hookUrl });
    const failed = await fal.queue.submit("darkroom/echo", { input: { fail: "error" }, webhookUrl: hookUrl });
    await eventually(() => [ok, failed].every((r) => hooks.deliveries.some((d) => d.body["request_id"] === r.request_id)), 15_000);

    const jwks = await http(p, "GET", "/.well-known/jwks.json");
    assert.equal(jwks.status, 200);
    const keys = (jwks.body as { keys: JsonWebKey[] }).keys;
    assert.ok(keys.length > 0);

    for (const delivery of hooks.deliveries) {
      // The spec's verification, written out here: Ed25519 over "{request_id}\n{user_id}\n{timestamp}\n{sha256_hex(body)}".
      const h = delivery.headers;
      const requestId = String(h["x-fal-webhook-request-id"]);
      const userId = String(h["x-fal-webhook-user-id"]);
      const timestamp = String(h["x-fal-webhook-timestamp"]);
      const signature = Buffer.from(String(h["x-fal-webhook-signature"]), "hex");
      assert.equal(requestId, delivery.body["request_id"]);
      assert.ok(Math.abs(Date.now() / 1000 - Number(timestamp)) <= 300, `timestamp ${timestamp}`);
      const message = `${requestId}\n${userId}\n${timestamp}\n${createHash("sha256").update(delivery.raw).digest("hex")}`;
      const valid = keys.some((jwk) => verify(null, Buffer.from(message, "utf8"), createPublicKey({ key: jwk, format: "jwk" }), signature));
      assert.ok(valid, `signature of ${requestId} does not verify against the JWKS`);
      // A signature over other bytes must not verify.
      const tampered = `${requestId}\n${userId}\n${timestamp}\n${createHash("sha256").update("{}").digest("hex")}`;
      assert.ok(!keys.some((jwk) => verify(null, Buffer.from(tampered), createPublicKey({ key: jwk, format: "jwk" }), signature)));
    }

    const okBody = hooks.deliveries.find((d) => d.body["request_id"] === ok.request_id)?.body;
    assert.deepEqual(okBody, { request_id: ok.request_id, gateway_request_id: ok.request_id, status: "OK", payload: { message: "hooked", attempt: 1 } });
    const errBody = hooks.deliveries.find((d) => d.body["request_id"] === failed.request_id)?.body;
    assert.equal(errBody?.["status"], "ERROR");
    assert.equal(errBody?.["gateway_request_id"], failed.request_id);
    assert.equal(typeof errBody?.["error"], "string");
    assert.ok(errBody && "payload" in errBody);

    const log = await waitFor<Json>(async () => {
      const res = await http(p, "GET", `/v1/requests/${ok.request_id}/webhooks`);
      return res.body.deliveries?.[0]?.state === "delivered" ? res.body : null;
    });
    assert.equal(log.deliveries.length, 1);
    assert.equal(log.deliveries[0].url, hookUrl);
    assert.equal(log.deliveries[0].log.length, 1);
    assert.equal(log.deliveries[0].log[0].ok, true);
    assert.equal(log.deliveries[0].log[0].status, 200);

    // Loopback on a port the allow list does not name: refused before any connection, and logged.
    const refusedUrl = `http://127.0.0.1:${forbidden.port}/hook`;
    const refused = await fal.queue.submit("darkroom/echo", { input: { message: "nope" }, webhookUrl: refusedUrl });
    const attempt = await waitFor(async () => {
      const res = await http(p, "GET", `/v1/requests/${refused.request_id}/webhooks`);
      return res.body.deliveries?.[0]?.log?.[0] as Json | undefined;
    }, 15_000);
    assert.equal(attempt["ok"], false);
    assert.equal(attempt["status"], null);
    assert.match(String(attempt["error"]), /refused|not allowed|private|loopback/i);
    assert.equal(forbidden.deliveries.length, 0);
  });

  it("errors: 422 ValidationError with field locations, 404 for an unknown app, 401 for a wrong key", async () => {
    const invalid = await rejectsWith(() => fal.run("darkroom/echo", { input: { sleep_ms: "nope" } }), ValidationError);
    assert.equal(invalid.status, 422);
    assert.ok(
      invalid.fieldErrors.some((e) => JSON.stringify(e.loc) === JSON.stringify(["body", "sleep_ms"])),
      JSON.stringify(invalid.fieldErrors),
    );
    assert.equal(invalid.getFieldErrors("sleep_ms").length, 1);

    const unknown = await apiError(() => fal.run("darkroom/nope", { input: {} }));
    assert.ok(!(unknown instanceof ValidationError));
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body?.error_type, "not_found");

    const wrong = createFalClient({ credentials: "dk_testadmin:not-the-secret", proxyUrl: { url: `${p.url}/api/fal/proxy`, when: "always" } });
    const denied = await apiError(() => wrong.run("darkroom/echo", { input: { message: "hi" } }));
    assert.equal(denied.status, 401);
    assert.equal(typeof denied.body?.detail, "string");
    assert.equal(denied.body?.error_type, "unauthorized");
  });
});
