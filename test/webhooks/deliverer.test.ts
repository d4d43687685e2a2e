import assert from "node:assert/strict";
import fs from "node:fs/promises";
import http, { type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import type { RequestRecord } from "../../src/core/types.js";
import { AllowList } from "../../src/net/allow-list.js";
import type { Store, TerminalWrite } from "../../src/store/store.js";
import { WebhookDeliverer, type WebhookDelivererOptions } from "../../src/webhooks/deliverer.js";
import { buildWebhookBody, serializeWebhookBody } from "../../src/webhooks/payload.js";
import { verifyWebhook } from "../../src/webhooks/signature.js";
import { SigningKeys } from "../../src/webhooks/signing-keys.js";
import { memoryStore } from "../helpers/memory-store.js";

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  method: string;
}

/** A webhook receiver on 127.0.0.1 that answers with the scripted statuses (the last one repeats). */
class Receiver {
  readonly received: Received[] = [];
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      this.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), method: req.method ?? "" });
      const status = this.statuses[Math.min(this.received.length - 1, this.statuses.length - 1)] ?? 200;
      setTimeout(() => {
        res.writeHead(status, { "content-type": "text/plain" });
        res.end(status === 200 ? "ok" : "nope");
      }, this.delayMs);
    });
  });

  constructor(
    private readonly statuses: number[] = [200],
    private readonly delayMs = 0,
  ) {}

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

async function waitFor<T>(probe: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}

let dir: string;
let keys: SigningKeys;
let store: Store;
let receivers: Receiver[] = [];
let deliverers: WebhookDeliverer[] = [];
let seq = 0;

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "darkroom-deliverer-"));
  keys = await SigningKeys.open(dir);
});

after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  store = await memoryStore();
});

afterEach(async () => {
  await Promise.all(deliverers.map((d) => d.stop()));
  await Promise.all(receivers.map((r) => r.close()));
  deliverers = [];
  receivers = [];
  await store.close();
});

async function receiver(statuses?: number[], delayMs?: number): Promise<Receiver> {
  const r = new Receiver(statuses, delayMs);
  await r.listen();
  receivers.push(r);
  return r;
}

function deliverer(options: Partial<WebhookDelivererOptions> & { allow: AllowList }): WebhookDeliverer {
  const d = new WebhookDeliverer({ store, signingKeys: keys, userId: "darkroom-test", pollIntervalMs: 20, timeoutMs: 2000, ...options });
  deliverers.push(d);
  return d;
}

function allowOnly(r: Receiver): AllowList {
  return AllowList.parse(`127.0.0.1:${new URL(r.url).port}`);
}

/** A real terminal record, written through the store like the scheduler does. */
async function finishedRequest(webhookUrl: string | null, write: Partial<TerminalWrite> = {}): Promise<RequestRecord> {
  const id = `req-${++seq}`;
  await store.enqueue({
    id,
    appId: "darkroom/echo",
    endpoint: "",
    input: { prompt: "hi" },
    priority: "normal",
    mode: "queue",
    startDeadline: null,
    maxAttempts: 1,
    webhookUrl,
    keyId: null,
    baseUrl: "http://127.0.0.1:8787",
  });
  const record = await store.finish(id, {
    state: "SUCCEEDED",
    output: { images: [{ url: "http://127.0.0.1:8787/files/a.png" }], seed: 42 },
    statusCode: 200,
    error: null,
    errorType: null,
    billableUnits: 1,
    ...write,
  });
  assert.ok(record, "request finished");
  return record;
}

describe("webhook payload", () => {
  it("success: status OK with the output", async () => {
    const record = await finishedRequest(null);
    assert.equal(
      serializeWebhookBody(record),
      `{"request_id":"${record.id}","gateway_request_id":"${record.id}","status":"OK","payload":{"images":[{"url":"http://127.0.0.1:8787/files/a.png"}],"seed":42}}`,
    );
  });

  it("app error with a status code: Invalid status code and the error body", async () => {
    const detail = [{ loc: ["body", "prompt"], msg: "field required", type: "value_error.missing" }];
    const record = await finishedRequest(null, { state: "FAILED", statusCode: 422, output: { detail }, error: "field required" });
    assert.deepEqual(JSON.parse(serializeWebhookBody(record)), {
      request_id: record.id,
      gateway_request_id: record.id,
      status: "ERROR",
      error: "Invalid status code: 422",
      payload: { detail },
    });
    // Key order as in fal's example.
    assert.deepEqual(Object.keys(buildWebhookBody(record)), ["request_id", "gateway_request_id", "status", "error", "payload"]);
  });

  it("platform error: its message and a null payload", async () => {
    const record = await finishedRequest(null, {
      state: "FAILED",
      statusCode: 504,
      output: null,
      error: "Request timed out",
      errorType: "request_timeout",
    });
    assert.deepEqual(buildWebhookBody(record), {
      request_id: record.id,
      gateway_request_id: record.id,
      status: "ERROR",
      error: "Request timed out",
      payload: null,
    });
  });

  it("cancelled: ERROR with the cancellation message", async () => {
    const record = await finishedRequest(null, {
      state: "CANCELLED",
      statusCode: 499,
      output: null,
      error: "Request cancelled by client",
      errorType: "client_cancelled",
    });
    const body = buildWebhookBody(record);
    assert.equal(body.status, "ERROR");
    assert.equal(body.error, "Request cancelled by client");
    assert.equal(body.payload, null);
  });

  it("output that is not JSON: payload null and payload_error", async () => {
    const record = { ...(await finishedRequest(null)), output: { big: 10n } };
    const body = buildWebhookBody(record);
    assert.equal(body.status, "OK");
    assert.equal(body.payload, null);
    assert.match(body.payload_error ?? "", /not valid JSON/);
  });

  it("refuses a request that has not finished", async () => {
    const record = { ...(await finishedRequest(null)), state: "RUNNING" as const };
    assert.throws(() => buildWebhookBody(record), /only for finished requests/);
  });
});

describe("webhook deliverer", () => {
  it("delivers a signed body that verifies against the JWKS", async () => {
    const r = await receiver([200]);
    const d = deliverer({ allow: allowOnly(r) });
    d.start();
    const record = await finishedRequest(r.url);
    const job = await d.enqueueFor(record);
    assert.ok(job);
    assert.equal(job.body, serializeWebhookBody(record));

    const got = await waitFor(() => r.received[0]);
    assert.equal(got.method, "POST");
    assert.equal(got.headers["content-type"], "application/json");
    assert.equal(got.headers["x-fal-webhook-request-id"], record.id);
    assert.equal(got.headers["x-fal-webhook-user-id"], "darkroom-test");
    assert.equal(got.body, job.body, "the stored bytes are sent as-is");
    const jwks = JSON.parse(JSON.stringify(keys.jwks())) as { keys: unknown[] };
    assert.equal(verifyWebhook({ headers: got.headers, body: got.body, jwks }), true);
    assert.deepEqual(JSON.parse(got.body), {
      request_id: record.id,
      gateway_request_id: record.id,
      status: "OK",
      payload: { images: [{ url: "http://127.0.0.1:8787/files/a.png" }], seed: 42 },
    });

    const [entry] = await waitFor(async () => {
      const list = await store.listWebhooks(record.id);
      return list[0]?.job.state === "delivered" ? list : null;
    });
    assert.equal(entry!.job.attempts, 1);
    assert.equal(entry!.attempts.length, 1);
    assert.equal(entry!.attempts[0]!.status, 200);
    assert.equal(entry!.attempts[0]!.ok, true);
    assert.equal(entry!.attempts[0]!.error, null);
    assert.equal(r.received.length, 1);
  });

  it("retries 500, 500, 200 on the real schedule with an injected clock", async () => {
    const r = await receiver([500, 500, 200]);
    let clock = 1_750_000_000_000;
    const d = deliverer({ allow: allowOnly(r), now: () => clock });
    const record = await finishedRequest(r.url);
    await d.enqueueFor(record);

    assert.equal(await d.runOnce(), 1);
    let [entry] = await store.listWebhooks(record.id);
    assert.equal(entry!.job.state, "pending");
    const delay = entry!.job.nextAttemptAt - clock;
    assert.ok(delay >= 27_000 && delay <= 33_000, `first retry after ~30 s, got ${delay} ms`);
    assert.equal(await d.runOnce(), 0, "not due before the backoff passes");

    clock += 60 * 60 * 1000;
    assert.equal(await d.runOnce(), 1);
    clock += 60 * 60 * 1000;
    assert.equal(await d.runOnce(), 1);
    assert.equal(await d.runOnce(), 0, "nothing left once delivered");

    [entry] = await store.listWebhooks(record.id);
    assert.equal(entry!.job.state, "delivered");
    assert.equal(entry!.job.attempts, 3);
    assert.deepEqual(
      entry!.attempts.map((a) => [a.attempt, a.status, a.ok, a.error]),
      [
        [1, 500, false, "HTTP 500"],
        [2, 500, false, "HTTP 500"],
        [3, 200, true, null],
      ],
    );
    assert.equal(r.received.length, 3);
    // Each send is signed afresh with the injected clock's time, and verifies at that time.
    const last = r.received[2]!;
    assert.equal(last.headers["x-fal-webhook-timestamp"], String(Math.floor(clock / 1000)));
    assert.equal(verifyWebhook({ headers: last.headers, body: last.body, jwks: keys.jwks(), nowSec: Math.floor(clock / 1000) }), true);
    assert.equal(verifyWebhook({ headers: r.received[0]!.headers, body: last.body, jwks: keys.jwks(), nowSec: Math.floor(clock / 1000) }), false);
  });

  it("retries in the background loop with a shortened backoff", async () => {
    const r = await receiver([500, 500, 200]);
    const d = deliverer({ allow: allowOnly(r), backoff: (n) => (n < 5 ? 5 : null) });
    d.start();
    const record = await finishedRequest(r.url);
    await d.enqueueFor(record);
    const [entry] = await waitFor(async () => {
      const list = await store.listWebhooks(record.id);
      return list[0]?.job.state === "delivered" ? list : null;
    });
    assert.deepEqual(entry!.attempts.map((a) => a.status), [500, 500, 200]);
  });

  it("gives up when the schedule ends", async () => {
    const r = await receiver([503]);
    const d = deliverer({ allow: allowOnly(r), backoff: (n) => (n < 2 ? 0 : null) });
    const record = await finishedRequest(r.url);
    await d.enqueueFor(record);
    await d.runOnce();
    await d.runOnce();
    assert.equal(await d.runOnce(), 0);
    const [entry] = await store.listWebhooks(record.id);
    assert.equal(entry!.job.state, "failed");
    assert.deepEqual(entry!.attempts.map((a) => a.error), ["HTTP 503", "HTTP 503"]);
  });

  it("logs a refused loopback URL with status null, and fails the delivery at once (a refusal is permanent)", async () => {
    const allowed = await receiver([200]);
    const forbidden = await receiver([200]);
    const clock = 1_750_000_000_000;
    // A retry schedule of "at once": a refusal that were retried would be claimed again below.
    const d = deliverer({ allow: allowOnly(allowed), now: () => clock, backoff: () => 0 });
    const record = await finishedRequest(forbidden.url);
    await d.enqueueFor(record);
    assert.equal(await d.runOnce(), 1);
    assert.equal(await d.runOnce(), 0, "a refused delivery is not retried");

    const [entry] = await store.listWebhooks(record.id);
    assert.equal(entry!.attempts.length, 1);
    const attempt = entry!.attempts[0]!;
    assert.equal(attempt.status, null);
    assert.equal(attempt.ok, false);
    assert.match(attempt.error ?? "", /refused/);
    assert.match(attempt.error ?? "", /SSRF policy/);
    assert.equal(entry!.job.state, "failed");
    assert.equal(entry!.job.attempts, 1);
    assert.equal(forbidden.received.length, 0, "nothing reached the un-allowed address");
  });

  it("still retries a connection failure on an allowed address (only a refusal is permanent)", async () => {
    // A port that was just free: allowed by the list, but nothing answers there.
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const clock = 1_750_000_000_000;
    const d = deliverer({ allow: AllowList.parse(`127.0.0.1:${port}`), now: () => clock });
    const record = await finishedRequest(`http://127.0.0.1:${port}/hook`);
    await d.enqueueFor(record);
    assert.equal(await d.runOnce(), 1);
    const [entry] = await store.listWebhooks(record.id);
    assert.equal(entry!.attempts[0]!.status, null);
    assert.doesNotMatch(entry!.attempts[0]!.error ?? "", /refused:|SSRF/);
    assert.equal(entry!.job.state, "pending");
    assert.ok(entry!.job.nextAttemptAt > clock);
  });

  it("delivers an error request's fal body", async () => {
    const r = await receiver([200]);
    const d = deliverer({ allow: allowOnly(r) });
    d.start();
    const detail = [{ loc: ["body", "prompt"], msg: "field required", type: "value_error.missing" }];
    const record = await finishedRequest(r.url, { state: "FAILED", statusCode: 422, output: { detail }, error: "field required" });
    await d.enqueueFor(record);
    const got = await waitFor(() => r.received[0]);
    assert.deepEqual(JSON.parse(got.body), {
      request_id: record.id,
      gateway_request_id: record.id,
      status: "ERROR",
      error: "Invalid status code: 422",
      payload: { detail },
    });
    assert.equal(verifyWebhook({ headers: got.headers, body: got.body, jwks: keys.jwks() }), true);
  });

  it("stop() waits for a send in flight and records it", async () => {
    const r = await receiver([200], 200);
    const d = deliverer({ allow: allowOnly(r) });
    d.start();
    const record = await finishedRequest(r.url);
    await d.enqueueFor(record);
    await waitFor(() => r.received[0]);
    await d.stop();
    const [entry] = await store.listWebhooks(record.id);
    assert.equal(entry!.job.state, "delivered");
    assert.equal(entry!.attempts.length, 1);
  });

  it("enqueueFor skips requests without a webhook and never rejects", async () => {
    const r = await receiver([200]);
    const errors: string[] = [];
    const d = deliverer({
      allow: allowOnly(r),
      logger: { info() {}, warn() {}, error: (_obj, msg) => errors.push(msg ?? "") },
    });
    assert.equal(await d.enqueueFor(await finishedRequest(null)), null);
    const running = { ...(await finishedRequest(r.url)), state: "RUNNING" as const };
    assert.equal(await d.enqueueFor(running), null);
    assert.deepEqual(errors, ["could not queue webhook"]);
  });
});
