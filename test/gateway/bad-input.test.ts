/**
 * Bad input at the gateway: malformed and invalid bodies, unknown apps, paths and requests, body
 * limits, credentials and key scopes, bad headers, and a fuzz loop over every queue and proxy route.
 * Every refusal must be a JSON error with a `detail` (docs/errors.md), and the server must survive.
 */
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, it } from "node:test";
import { ECHO_APP, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { submit, waitCompleted } from "../helpers/queue.js";

const ECHO = "darkroom/echo";

/** A fal error: JSON, a `detail`, and the `x-fal-error-type` header matching `error_type` when there is one. */
function assertFalError(res: { status: number; headers: Headers; body: any }, status: number, errorType?: string): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${JSON.stringify(res.body)}`);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  assert.equal(typeof res.body, "object");
  assert.ok(res.body !== null && "detail" in res.body, `no detail in ${JSON.stringify(res.body)}`);
  // None of these client errors can be fixed by retrying the same request.
  if (status < 500 && status !== 429) assert.equal(res.headers.get("x-fal-retryable"), "false");
  if (errorType) {
    assert.equal(res.body.error_type, errorType);
    assert.equal(res.headers.get("x-fal-error-type"), errorType);
  }
}

describe("bad input", () => {
  let p: TestPlatform;

  before(async () => {
    p = await startTestPlatform({ appModules: [ECHO_APP] });
  });
  after(async () => {
    await p.close();
  });

  it("refuses malformed JSON with 400 bad_request", async () => {
    for (const body of ["{", "{\"message\": }", "nul", "[1,2", "\u0000\u0001", "{'single': 1}"]) {
      const res = await http(p, "POST", `/queue/${ECHO}`, body, { "content-type": "application/json" });
      assertFalError(res, 400, "bad_request");
      assert.equal(typeof res.body.detail, "string");
    }
    const sync = await http(p, "POST", `/run/${ECHO}`, "{nope", { "content-type": "application/json" });
    assertFalError(sync, 400, "bad_request");
  });

  it("refuses JSON nested too deeply to store, and takes reasonable nesting", async () => {
    const deep = (n: number): string => "[".repeat(n) + "]".repeat(n);
    for (const body of [`{"message": ${deep(10_000)}}`, deep(100_000), `{"message": ${deep(600)}}`]) {
      for (const route of [`/queue/${ECHO}`, `/run/${ECHO}`]) {
        const res = await http(p, "POST", route, body, { "content-type": "application/json" });
        assertFalError(res, 400, "bad_request");
        assert.match(res.body.detail, /nested deeper than/);
      }
    }
    const ok = await http(p, "POST", `/run/${ECHO}`, `{"message": ${deep(100)}}`, { "content-type": "application/json" });
    assert.equal(ok.status, 200);
    assert.equal(JSON.stringify(ok.body.message), deep(100));
  });

  it("refuses large app inputs (kept unparsed, checked on a body worker) that are malformed, blank, too deep, too wide or off-schema", async () => {
    const padding = "p".repeat(400 * 1024);
    const cases: [string, number, RegExp][] = [
      [`{"message": "${padding}"`, 400, /Malformed JSON body/],
      [`{"message": "${padding}", }`, 400, /Malformed JSON body/],
      [" ".repeat(400 * 1024), 400, /Malformed JSON body/],
      [`{"message": "${padding}", "deep": ${"[".repeat(600)}${"]".repeat(600)}}`, 400, /nested deeper than/],
      [`{"message": [${"1,".repeat(150_000)}1]}`, 400, /more than 100000 values/],
      [`{"message": "${padding}", "logs": "not a list"}`, 422, /./],
    ];
    for (const [body, status, detail] of cases) {
      for (const route of [`/queue/${ECHO}`, `/run/${ECHO}`]) {
        const res = await http(p, "POST", route, body, { "content-type": "application/json" });
        assertFalError(res, status, status === 422 ? undefined : "bad_request");
        assert.match(JSON.stringify(res.body.detail), detail, `${route}: ${JSON.stringify(res.body).slice(0, 200)}`);
      }
    }
  });

  it("fails a realtime input too deep to hand to a runner instead of waiting forever", { timeout: 10_000 }, async () => {
    let value: unknown = [];
    for (let i = 0; i < 20_000; i++) value = [value];
    await assert.rejects(p.scheduler.invokeEphemeral(ECHO, "realtime", { message: value }, p.url), (err: any) => {
      assert.equal(err.code, "ERR_BAD_REQUEST");
      assert.match(err.message, /cannot be passed to a runner/);
      return true;
    });
    // The runner is unharmed and takes the next message.
    assert.deepEqual(await p.scheduler.invokeEphemeral(ECHO, "realtime", { message: "next", request_id: "r1" }, p.url), { message: "next", request_id: "r1" });
  });

  it("refuses schema violations with 422 and Pydantic-shaped detail[]", async () => {
    const res = await http(p, "POST", `/queue/${ECHO}`, { sleep_ms: "soon", logs: "not a list", fail: "explode" });
    assert.equal(res.status, 422);
    assert.equal(res.headers.get("x-fal-billable-units"), "0");
    assert.ok(Array.isArray(res.body.detail) && res.body.detail.length >= 3, JSON.stringify(res.body));
    for (const entry of res.body.detail) {
      assert.ok(Array.isArray(entry.loc) && entry.loc[0] === "body", JSON.stringify(entry));
      assert.equal(typeof entry.msg, "string");
      assert.equal(typeof entry.type, "string");
    }
    const fields = res.body.detail.map((d: any) => d.loc[1]);
    for (const f of ["sleep_ms", "logs", "fail"]) assert.ok(fields.includes(f), `${f} in ${JSON.stringify(fields)}`);
    // A body that is not an object at all.
    const array = await http(p, "POST", `/queue/${ECHO}`, [1, 2, 3]);
    assert.equal(array.status, 422);
    assert.ok(Array.isArray(array.body.detail));
  });

  it("answers unknown apps, paths and requests with 404 and a detail", async () => {
    assertFalError(await http(p, "POST", "/queue/nobody/nothing", {}), 404, "not_found");
    assertFalError(await http(p, "POST", "/run/nobody/nothing", {}), 404, "not_found");
    assertFalError(await http(p, "POST", `/queue/${ECHO}/no/such/endpoint`, {}), 404, "not_found");
    assertFalError(await http(p, "GET", "/definitely/not/a/route/at/all"), 404, "not_found");
    assertFalError(await http(p, "GET", "/v2/whatever"), 404, "not_found");
    const id = crypto.randomUUID();
    assertFalError(await http(p, "GET", `/queue/${ECHO}/requests/${id}/status`), 404, "not_found");
    assertFalError(await http(p, "GET", `/queue/${ECHO}/requests/${id}`), 404, "not_found");
    assertFalError(await http(p, "GET", `/queue/${ECHO}/requests/${id}/status/stream`), 404, "not_found");
    assertFalError(await http(p, "GET", `/v1/requests/${id}`), 404, "not_found");
    assertFalError(await http(p, "GET", `/queue/${ECHO}/requests/${id}/frobnicate`), 404, "not_found");
  });

  it("refuses a bad x-fal-queue-priority with 400", async () => {
    const res = await http(p, "POST", `/queue/${ECHO}`, {}, { "x-fal-queue-priority": "urgent" });
    assertFalError(res, 400, "bad_request");
    assert.match(res.body.detail, /x-fal-queue-priority/);
    // Case and surrounding space are forgiven.
    assert.equal((await http(p, "POST", `/queue/${ECHO}`, {}, { "x-fal-queue-priority": " LOW " })).status, 200);
  });

  it("refuses missing, wrong and revoked keys with 401", async () => {
    const anonymous = { url: p.url, auth: {} };
    assertFalError(await http(anonymous, "POST", `/queue/${ECHO}`, {}), 401, "unauthorized");
    assertFalError(await http(anonymous, "GET", `/queue/${ECHO}/requests/${crypto.randomUUID()}/status`), 401, "unauthorized");
    assertFalError(await http(anonymous, "GET", "/v1/keys"), 401, "unauthorized");
    const wrongs = ["Key dk_testadmin:wrong-secret", "Key nonsense", "Bearer abc", "Key ", "Basic Zm9vOmJhcg==", "Key dk_nobody:secret"];
    for (const authorization of wrongs) {
      assertFalError(await http({ url: p.url, auth: { authorization } }, "POST", `/queue/${ECHO}`, {}), 401, "unauthorized");
    }

    const created = await http(p, "POST", "/v1/keys", { name: "revoke me", scope: "api" });
    assert.equal(created.status, 201);
    const key = { url: p.url, auth: { authorization: `Key ${created.body.key}` } };
    assert.equal((await http(key, "POST", `/queue/${ECHO}`, {})).status, 200);
    const revoked = await http(p, "DELETE", `/v1/keys/${created.body.id}`);
    assert.equal(revoked.status, 200);
    assertFalError(await http(key, "POST", `/queue/${ECHO}`, {}), 401, "unauthorized");
    assertFalError(await http(key, "GET", "/v1/usage"), 401, "unauthorized");
  });

  it("keeps api-scope keys away from key management and from other keys' requests", async () => {
    const mk = async (name: string): Promise<{ url: string; auth: Record<string, string> }> => {
      const res = await http(p, "POST", "/v1/keys", { name, scope: "api" });
      assert.equal(res.status, 201);
      return { url: p.url, auth: { authorization: `Key ${res.body.key}` } };
    };
    const alice = await mk("alice");
    const bob = await mk("bob");
    assertFalError(await http(alice, "GET", "/v1/keys"), 403, "forbidden");
    assertFalError(await http(alice, "POST", "/v1/keys", { name: "escalate", scope: "admin" }), 403, "forbidden");
    assertFalError(await http(alice, "GET", "/v1/ops"), 403, "forbidden");

    const id = await submit(alice, ECHO, { message: "alice's" });
    await waitCompleted(alice, ECHO, id);
    assert.equal((await http(alice, "GET", `/queue/${ECHO}/requests/${id}`)).status, 200);
    assertFalError(await http(bob, "GET", `/queue/${ECHO}/requests/${id}/status`), 404, "not_found");
    assertFalError(await http(bob, "GET", `/queue/${ECHO}/requests/${id}`), 404, "not_found");
    assertFalError(await http(bob, "GET", `/v1/requests/${id}`), 404, "not_found");
    assert.equal((await http(bob, "PUT", `/queue/${ECHO}/requests/${id}/cancel`)).status, 404);
    const listed = await http(bob, "GET", "/v1/requests");
    assert.equal(listed.status, 200);
    assert.ok(!(listed.body.requests as any[]).some((r) => r.request_id === id), "bob's listing hides alice's request");
    // The admin sees everything.
    assert.equal((await http(p, "GET", `/v1/requests/${id}`)).status, 200);
  });

  it("survives a fuzz loop over the queue, run and proxy routes", async (t) => {
    let seed = 0x2545f491;
    const rand = (): number => {
      // xorshift32: reproducible, so a failure can be replayed from its iteration number.
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 0x100000000;
    };
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const randomBytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
    const deep = (n: number): string => "[".repeat(n) + "]".repeat(n);
    const scalars: unknown[] = [
      null, true, 0, -0, 1e308, -1e308, 12345678901234567890, 2 ** 53 + 1, 0.1, "", "ünïcödé ✓ 𝄞 \u202e", "\ud800",
      "a".repeat(5000), [], {}, "data:text/plain;base64,aGk=", "http://169.254.169.254/latest/meta-data/",
      "file:///etc/passwd", "http://127.0.0.1:1/", "error", "validation",
    ];
    const value = (depth: number): unknown => {
      const r = rand();
      if (depth > 3 || r < 0.5) return pick(scalars);
      if (r < 0.75) return Array.from({ length: Math.floor(rand() * 4) }, () => value(depth + 1));
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(rand() * 4); i > 0; i--) o[pick(["message", "sleep_ms", "logs", "progress_steps", "file_url", "sync_mode", "fail", "__proto__", "constructor", "x"])] = value(depth + 1);
      return o;
    };
    // Bodies as raw strings, so that they can be anything, valid JSON or not.
    const body = (): string => {
      const r = rand();
      if (r < 0.1) return randomBytes(Math.floor(rand() * 64)).toString("latin1");
      if (r < 0.15) return deep(10_000);
      if (r < 0.2) return `{"message": ${deep(10_000)}}`;
      if (r < 0.25) return "9".repeat(400);
      if (r < 0.3) return JSON.stringify({ message: "ünïcödé", logs: ["\u0000", "𝄞".repeat(100)] });
      if (r < 0.35) return "null";
      if (r < 0.4) return `{"sleep_ms": 1e400, "progress_steps": -1}`;
      if (r < 0.6) return JSON.stringify(value(0));
      return plausible();
    };
    // Anything goes in `message`, so these mostly pass validation and reach a runner.
    const plausible = (): string =>
      JSON.stringify({ message: value(0), ...(rand() < 0.25 ? { [pick(["sleep_ms", "logs", "sync_mode", "file_url", "fail"])]: value(2) } : {}) });
    const ids = [crypto.randomUUID(), "..", "%2e%2e", "not-a-uuid", "' OR 1=1 --", "%00", "x".repeat(500)];
    const targets = [
      "http://169.254.169.254/latest/meta-data/",
      "file:///etc/passwd",
      "http://127.0.0.1:22/",
      "gopher://queue.fal.run/",
      "not a url",
      "",
      "https://queue.fal.run/darkroom/echo",
      "https://fal.run/darkroom/echo",
      "https://rest.fal.ai/storage/upload/initiate",
      `https://queue.fal.run/darkroom/echo/requests/${crypto.randomUUID()}/status`,
      "https://queue.fal.run/%ff%fe/%00",
      "https://evil.example/queue.fal.run/darkroom/echo",
    ];
    const submitted: string[] = [];
    const failures: string[] = [];
    const seen = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const kind = pick(["submit", "run", "status", "result", "cancel", "stream", "proxy"] as const);
      const id = rand() < 0.5 && submitted.length > 0 ? pick(submitted) : pick(ids);
      let method = "GET";
      let route = "";
      const headers: Record<string, string> = {};
      let payload: string | undefined;
      if (rand() < 0.8) headers["content-type"] = pick(["application/json", "application/json", "application/json", "application/json; charset=utf-8", "text/plain", "application/octet-stream"]);
      if (rand() < 0.1) headers["x-fal-queue-priority"] = pick(["normal", "low", "", "LOW", "l\u00f4w"]);
      if (rand() < 0.1) headers["x-fal-request-timeout"] = pick(["30", "30.0", "0", "-5", "NaN", "1e999", "abc"]);
      switch (kind) {
        case "submit":
          method = "POST";
          route = `/queue/${ECHO}`;
          if (rand() < 0.2) route += pick(["/stream", "/realtime", "/%00", "/requests"]);
          if (rand() < 0.2) route += pick(["?fal_webhook=file:///etc/passwd", "?fal_webhook=http://169.254.169.254/", "?fal_max_queue_length=-1", "?logs=☃"]);
          payload = rand() < 0.5 ? plausible() : body();
          break;
        case "run":
          method = pick(["POST", "GET"]);
          route = `/run/${ECHO}${pick(["", "/stream", "?message=%ff"])}`;
          if (method === "POST") payload = body();
          break;
        case "status":
          route = `/queue/${ECHO}/requests/${id}/status?logs=${pick(["1", "0", "true", "false", "maybe", ""])}`;
          break;
        case "result":
          route = `/queue/${ECHO}/requests/${id}`;
          break;
        case "cancel":
          method = "PUT";
          route = `/queue/${ECHO}/requests/${id}/cancel`;
          if (rand() < 0.5) payload = body();
          break;
        case "stream":
          route = `/queue/${pick([ECHO, "nobody/x"])}/requests/${id}/status/stream?logs=1`;
          break;
        case "proxy":
          method = pick(["GET", "POST", "PUT", "DELETE"]);
          route = "/api/fal/proxy";
          headers["x-fal-target-url"] = pick(targets);
          if (method !== "GET") payload = body();
          break;
      }
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 15_000);
      let res: Response;
      try {
        res = await fetch(`${p.url}${route}`, { method, headers: { ...p.auth, ...headers }, ...(payload !== undefined ? { body: payload } : {}), signal: controller.signal });
      } finally {
        clearTimeout(timer);
      }
      const text = await res.text();
      const bucket = `${kind} ${res.status}`;
      seen.set(bucket, (seen.get(bucket) ?? 0) + 1);
      const where = `#${i} ${method} ${route} [${headers["x-fal-target-url"] ?? ""}] → ${res.status} ${text.slice(0, 200)}`;
      if (res.status >= 500 && !(res.status === 503 || res.status === 504)) failures.push(`server error: ${where}`);
      const type = res.headers.get("content-type") ?? "";
      if (type.startsWith("text/event-stream")) continue;
      let json: any;
      try {
        json = JSON.parse(text);
      } catch {
        failures.push(`not JSON: ${where}`);
        continue;
      }
      if (res.status >= 400 && (json === null || typeof json !== "object" || !("detail" in json))) failures.push(`no detail: ${where}`);
      if (kind === "submit" && res.status === 200 && typeof json.request_id === "string") submitted.push(json.request_id);
    }
    assert.deepEqual(failures, []);
    t.diagnostic(`answers by route and status: ${JSON.stringify(Object.fromEntries([...seen].sort()))}`);
    // The loop reached past the parsers: some fuzzed bodies were accepted and ran.
    assert.ok(submitted.length >= 3, `only ${submitted.length} fuzzed submits were accepted`);

    // What the fuzz queued ends like any request: with a result or a fal error, not an internal error.
    for (const id of submitted) {
      await p.scheduler.cancel(id);
      const done = await waitCompleted(p, ECHO, id, 20_000);
      assert.notEqual(done.error_type, "internal_error", `${id}: ${done.error}`);
    }
    const health = await http(p, "GET", "/health");
    assert.equal(health.status, 200);
    assert.equal(health.body.status, "ok");
  });
});

describe("body limit", () => {
  let p: TestPlatform;

  before(async () => {
    p = await startTestPlatform({ appModules: [ECHO_APP], env: { DARKROOM_MAX_BODY_BYTES: "1024" } });
  });
  after(async () => {
    await p.close();
  });

  it("answers 413 from the content-length alone, before the body arrives", async () => {
    const { port } = new URL(p.url);
    const declared = 10 * 1024 * 1024;
    const res = await new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      const req = httpRequest(
        {
          host: "127.0.0.1",
          port: Number(port),
          method: "POST",
          path: `/queue/${ECHO}`,
          headers: { ...p.auth, "content-type": "application/json", "content-length": String(declared) },
        },
        (response) => {
          let text = "";
          response.setEncoding("utf8");
          response.on("data", (chunk: string) => (text += chunk));
          response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }));
          response.on("error", reject);
        },
      );
      req.on("error", reject);
      // 64 KiB of the declared 10 MiB: the answer must not wait for the rest, which never comes.
      req.write(`{"message":"${"x".repeat(64 * 1024)}`);
      setTimeout(() => {
        req.destroy();
        reject(new Error("no answer within 5 s: the server waited for the whole body"));
      }, 5000).unref();
    });
    assert.equal(res.status, 413);
    const body = JSON.parse(res.body);
    assert.equal(body.error_type, "bad_request");
    assert.equal(typeof body.detail, "string");
    assert.equal(res.headers["x-fal-error-type"], "bad_request");

    // A whole oversized body sent with fetch gets the same answer.
    const big = await http(p, "POST", `/queue/${ECHO}`, { message: "y".repeat(10 * 1024 * 1024) });
    assert.equal(big.status, 413);
    assert.equal(big.body.error_type, "bad_request");

    // The server is alive and still takes bodies under the limit.
    assert.equal((await http(p, "GET", "/health")).status, 200);
    const small = await http(p, "POST", `/run/${ECHO}`, { message: "fits" });
    assert.equal(small.status, 200);
    assert.equal(small.body.message, "fits");
  });
});
