/**
 * Replicate's API at /replicate/v1 (src/gateway/routes/replicate.ts) with the official `replicate`
 * SDK, unchanged but for its base URL, on a real server: `run` on echo; `predictions.create` and
 * `get` to succeeded on speech to text with a real recording; a model's predictions route; cancel
 * of a running prediction; `Prefer: wait` and `Cancel-After`; the list; a model with its OpenAPI
 * schema; an unknown model's 404; and each prediction one request in /v1/requests and usage.
 * @module
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import Replicate, { validateWebhook, type Prediction } from "replicate";
import { ADMIN_KEY, ECHO_APP, FIXTURES, REPO_ROOT, eventually, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { startWebhookReceiver, type WebhookDelivery, type WebhookReceiver } from "../helpers/webhook-receiver.js";
import { wordErrorRate } from "../helpers/word-error-rate.js";

const FIXTURE_TEXT = "the quick brown fox jumps over the lazy dog welcome to the media platform";

describe("Replicate's API with the official replicate SDK", { timeout: 120_000 }, () => {
  let p: TestPlatform;
  let replicate: Replicate;
  let receiver: WebhookReceiver<Prediction>;
  let hookUrl: string;

  before(async () => {
    receiver = await startWebhookReceiver<Prediction>();
    hookUrl = `http://127.0.0.1:${receiver.port}/hooks`;
    p = await startTestPlatform({ appModules: [ECHO_APP, path.join(REPO_ROOT, "src/apps/speech-to-text/app.ts")], env: { DARKROOM_ALLOW_HOSTS: `127.0.0.1:${receiver.port}` } });
    replicate = new Replicate({ auth: ADMIN_KEY, baseUrl: `${p.url}/replicate/v1` });
  });

  after(async () => {
    await p?.close();
    await receiver?.close();
  });

  /** The webhooks of one prediction once `count` of them came. */
  const hooksOf = (id: string, count: number) =>
    eventually(async () => {
      const mine = receiver.deliveries.filter((d) => d.body.id === id);
      return mine.length >= count ? mine : null;
    }, 20_000);

  /** Whether `secret` signed `hook`, as Replicate's SDK checks it: over its Standard Webhooks headers and exact body. */
  const signedWith = (hook: WebhookDelivery<Prediction>, secret: string): Promise<boolean> =>
    validateWebhook({
      id: String(hook.headers["webhook-id"] ?? ""),
      timestamp: String(hook.headers["webhook-timestamp"] ?? ""),
      signature: String(hook.headers["webhook-signature"] ?? ""),
      body: hook.raw.toString("utf8"),
      secret,
    });

  it("run() on echo returns its output", async () => {
    const output = await replicate.run("darkroom/echo", { input: { message: { said: "hello" } } });
    assert.deepEqual(output, { message: { said: "hello" }, attempt: 1 });
  });

  it("predictions.create and get reach succeeded on speech to text with a real recording; one request in /v1/requests and usage", async () => {
    const audio = `data:audio/wav;base64,${(await readFile(path.join(FIXTURES, "speech-16k.wav"))).toString("base64")}`;
    const created = await replicate.predictions.create({ version: "darkroom/speech-to-text", input: { audio_url: audio } });
    assert.ok(["starting", "processing", "succeeded"].includes(created.status), created.status);
    assert.equal(created.model, "darkroom/speech-to-text");
    assert.match(created.version, /^[0-9a-f]{32}$/, "the app's revision");
    assert.equal(created.urls.get, `${p.url}/replicate/v1/predictions/${created.id}`);
    const done: Prediction = await replicate.wait(created, { interval: 100 });
    assert.equal(done.status, "succeeded");
    const wer = wordErrorRate(FIXTURE_TEXT, (done.output as { text: string }).text);
    assert.ok(wer <= 0.35, `WER ${wer}`);
    assert.ok(typeof done.metrics?.predict_time === "number" && done.metrics.predict_time > 0);
    assert.ok(done.completed_at && done.started_at && Date.parse(done.completed_at) >= Date.parse(done.started_at));

    const again = await replicate.predictions.get(created.id);
    assert.deepEqual(again.output, done.output);
    const record = await http(p, "GET", `/v1/requests/${created.id}`);
    assert.deepEqual([record.body.app_id, record.body.state], ["darkroom/speech-to-text", "SUCCEEDED"]);
    const usage = await http(p, "GET", "/v1/usage?app=darkroom/speech-to-text");
    assert.ok((usage.body.usage as { request_id: string }[]).some((u) => u.request_id === created.id));
  });

  it("takes the version as owner/name:revision, and refuses another revision or an unknown model with 404", async () => {
    const model = await replicate.models.get("darkroom", "echo");
    assert.equal(model.name, "echo");
    const revision = model.latest_version?.id ?? "";
    const schema = model.latest_version?.openapi_schema as { paths?: Record<string, unknown> } | undefined;
    assert.ok(schema?.paths && Object.keys(schema.paths).length > 0, "the OpenAPI schema");
    const pinned = await replicate.predictions.create({ version: `darkroom/echo:${revision}`, input: { message: 1 } });
    assert.equal(pinned.version, revision);
    const byRevision = await replicate.predictions.create({ version: revision, input: { message: 2 } });
    assert.equal(byRevision.model, "darkroom/echo");
    await assert.rejects(replicate.predictions.create({ version: "darkroom/echo:0000", input: {} }), (err: unknown) => (err as { response?: Response }).response?.status === 404);
    await assert.rejects(replicate.run("nobody/nothing", { input: {} }), (err: unknown) => (err as { response?: Response }).response?.status === 404);
    await assert.rejects(replicate.predictions.create({ version: "darkroom/echo", input: { sleep_ms: "long" } }), (err: unknown) => (err as { response?: Response }).response?.status === 422);
  });

  it("a model's predictions route with Prefer: wait answers at once when done, and as it stands when not", async () => {
    const quick = await replicate.predictions.create({ model: "darkroom/echo", input: { message: "quick" }, wait: 10 });
    assert.equal(quick.status, "succeeded");
    assert.deepEqual(quick.output, { message: "quick", attempt: 1 });
    const started = Date.now();
    const slow = await replicate.predictions.create({ model: "darkroom/echo", input: { message: "slow", sleep_ms: 20_000 }, wait: 1 });
    const waited = Date.now() - started;
    assert.ok(["starting", "processing"].includes(slow.status), slow.status);
    assert.ok(waited >= 900 && waited < 5000, `waited ${waited} ms`);
    await replicate.predictions.cancel(slow.id);
  });

  it("cancels a running prediction; Cancel-After cancels one that runs too long", async () => {
    const running = await replicate.predictions.create({ version: "darkroom/echo", input: { sleep_ms: 30_000, progress_steps: 30 } });
    await eventually(async () => ((await replicate.predictions.get(running.id)).status === "processing" ? true : null), 20_000);
    await replicate.predictions.cancel(running.id);
    const ended = await eventually(async () => {
      const now = await replicate.predictions.get(running.id);
      return now.status === "canceled" ? now : null;
    }, 20_000);
    assert.equal(ended.output, null);

    const res = await fetch(`${p.url}/replicate/v1/predictions`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json", "cancel-after": "2s" },
      body: JSON.stringify({ version: "darkroom/echo", input: { sleep_ms: 30_000, progress_steps: 30 } }),
    });
    assert.equal(res.status, 201);
    const { id } = (await res.json()) as { id: string };
    const cut = await eventually(async () => {
      const now = await replicate.predictions.get(id);
      return now.status === "canceled" ? now : null;
    }, 20_000);
    assert.ok(Date.parse(cut.completed_at ?? "") - Date.parse(cut.created_at) >= 1900, "not before its time");
  });

  it("lists predictions newest first, each as a prediction", async () => {
    const made = await replicate.predictions.create({ version: "darkroom/echo", input: { message: "listed" } });
    const page = await replicate.predictions.list();
    assert.equal(page.results[0]?.id, made.id);
    for (const listed of page.results) assert.ok(["starting", "processing", "succeeded", "failed", "canceled"].includes(listed.status));
  });

  it("sends webhooks as webhook_events_filter asks, signed as Replicate signs them with the tenant's secret", async () => {
    const { key: secret } = await replicate.webhooks.default.secret.get();
    assert.match(secret, /^whsec_[A-Za-z0-9+/=]{40,}$/);

    const watched = await replicate.predictions.create({
      version: "darkroom/echo",
      input: { message: "hooked", logs: ["first line", "second line"], sleep_ms: 1500 },
      webhook: hookUrl,
      webhook_events_filter: ["start", "logs", "completed"],
    });
    await replicate.wait(watched, { interval: 100 });
    const hooks = await hooksOf(watched.id, 3);
    const bodies = hooks.map((h) => h.body);
    assert.equal(bodies[0]?.status, "processing", "start");
    assert.ok(bodies.some((b) => b.status === "processing" && b.logs?.includes("second line")), "a logs webhook while it runs");
    const completed = bodies.find((b) => b.status === "succeeded");
    assert.deepEqual(completed?.output, { message: "hooked", attempt: 1 });
    for (const hook of hooks) assert.equal(await signedWith(hook, secret), true, "signed with the secret the API gave");

    // Another tenant's secret does not verify them.
    const other = await http(p, "POST", "/v1/keys", { name: "other tenant", scope: "api", tenant: "elsewhere" });
    const otherSecret = (await new Replicate({ auth: other.body.key as string, baseUrl: `${p.url}/replicate/v1` }).webhooks.default.secret.get()).key;
    assert.notEqual(otherSecret, secret);
    const first = hooks[0] as WebhookDelivery<Prediction>;
    assert.equal(await signedWith(first, otherSecret), false);

    // `output`: the partial results while it runs, at most every 500 ms, then `completed`.
    const partial = await replicate.predictions.create({
      version: "darkroom/echo",
      input: { message: "partial", sleep_ms: 2400, progress_steps: 8, emit_partials: true },
      webhook: hookUrl,
      webhook_events_filter: ["output", "completed"],
    });
    await replicate.wait(partial, { interval: 100 });
    // Until `completed` has come; the outbox may deliver jobs of one batch in any order.
    const outputs = await eventually(async () => {
      const mine = receiver.deliveries.map((d) => d.body).filter((o) => o.id === partial.id);
      return mine.some((o) => o.status === "succeeded") ? mine : null;
    }, 20_000);
    const running = outputs.filter((o) => o.status === "processing");
    assert.ok(running.length >= 2 && running.length <= 6, `${running.length} output webhooks for 8 partials over 2.4 s`);
    for (const o of running) assert.equal((o.output as { message: string }).message, "partial", "each carries the output so far");
    const steps = running.map((o) => (o.output as { step: number }).step);
    assert.equal(new Set(steps).size, steps.length, `each a later output than the one before: ${steps.join(", ")}`);

    // Only `completed`: one webhook, at the end.
    const quiet = await replicate.predictions.create({ version: "darkroom/echo", input: { message: "quiet", logs: ["a line"], sleep_ms: 300 }, webhook: hookUrl, webhook_events_filter: ["completed"] });
    await replicate.wait(quiet, { interval: 100 });
    const [only] = await hooksOf(quiet.id, 1);
    assert.equal(only?.body.status, "succeeded");
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.equal(receiver.deliveries.filter((d) => d.body.id === quiet.id).length, 1);
  });

  it("stream() reads the prediction's server-sent events: its output, then done; the stream URL is signed", async () => {
    const events: { event: string; data: string }[] = [];
    for await (const event of replicate.stream("darkroom/echo", { input: { message: "streamed", logs: ["a log line"], sleep_ms: 300 } })) {
      events.push({ event: event.event, data: String(event.data) });
    }
    assert.equal(events.at(-1)?.event, "done");
    const output = events.find((e) => e.event === "output");
    assert.deepEqual(JSON.parse(output?.data ?? "null"), { message: "streamed", attempt: 1 });

    const made = await replicate.predictions.create({ version: "darkroom/echo", input: { message: "signed" } });
    const url = new URL(made.urls.stream ?? "");
    assert.ok(url.searchParams.get("sig"), "a signed capability");
    const forged = new URL(url);
    forged.searchParams.set("sig", "A".repeat(43));
    assert.ok([401, 403].includes((await fetch(forged)).status), "a wrong signature is refused");
    const other = new URL(url);
    other.pathname = other.pathname.replace(made.id, crypto.randomUUID());
    assert.ok([401, 403].includes((await fetch(other)).status), "the signature names one prediction");
    const text = await (await fetch(url)).text();
    assert.match(text, /event: done/);
  });
});
