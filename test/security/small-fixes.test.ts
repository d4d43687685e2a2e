/**
 * Small fixes from issue #13 (item 12), each checked on a real server:
 * - file URL schemes are case-insensitive end to end (`DATA:`, `HTTP://`), not only in the zod schema;
 * - a realtime message nested too deeply is a BAD_MESSAGE, and the connection stays usable;
 * - `darkroom.db` and its WAL files are owner-only (0600), like the other secrets in the data folder;
 * - a webhook the SSRF policy refuses fails at once instead of being retried ten times.
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { decode, encode } from "@msgpack/msgpack";
import WebSocket from "ws";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { eventually, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { submit, waitCompleted } from "../helpers/queue.js";

const ECHO = "darkroom/echo";

/** One frame from the server: a decoded msgpack result, or a JSON control frame. */
type Frame = { binary: true; value: any } | { binary: false; value: any };

/** A realtime connection to echo that hands frames out in order. */
async function connectRealtime(p: TestPlatform): Promise<{ socket: WebSocket; next(timeoutMs?: number): Promise<Frame>; nextResult(timeoutMs?: number): Promise<Frame> }> {
  const token = await http(p, "POST", "/rest/tokens/", { allowed_apps: [ECHO], token_expiration: 120 });
  assert.equal(token.status, 201, JSON.stringify(token.body));
  const socket = new WebSocket(`${p.url.replace(/^http/, "ws")}/${ECHO}/realtime?fal_jwt_token=${encodeURIComponent(token.body as string)}`);
  const frames: Frame[] = [];
  const waiters: ((frame: Frame) => void)[] = [];
  socket.on("message", (data: Buffer, isBinary: boolean) => {
    const frame: Frame = isBinary ? { binary: true, value: decode(data) } : { binary: false, value: JSON.parse(data.toString("utf8")) };
    const waiter = waiters.shift();
    if (waiter) waiter(frame);
    else frames.push(frame);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  const next = (timeoutMs = 15_000): Promise<Frame> => {
    const queued = frames.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no frame within the time limit")), timeoutMs);
      waiters.push((frame) => {
        clearTimeout(timer);
        resolve(frame);
      });
    });
  };
  // A result is followed by a `timings` control frame; skip those.
  const nextResult = async (timeoutMs = 15_000): Promise<Frame> => {
    for (;;) {
      const frame = await next(timeoutMs);
      if (!frame.binary && frame.value?.type === "x-fal-message") continue;
      return frame;
    }
  };
  return { socket, next, nextResult };
}

describe("issue #13 item 12: small fixes", () => {
  let p: TestPlatform;
  let oldUmask: number;

  before(async () => {
    // The usual umask, so that a database created with the default mode would come out 0644.
    oldUmask = process.umask(0o022);
    // Retries at once: a refused webhook that were retried would show more than one attempt within the test.
    p = await startTestPlatform({ webhookBackoff: (n) => (n <= 10 ? 0 : null) });
  });
  after(async () => {
    await p?.close();
    process.umask(oldUmask);
  });

  it("accepts upper- and mixed-case file URL schemes: DATA: is read, HTTP:// passes the schema", async () => {
    const res = await http(p, "POST", `/run/${ECHO}`, { file_url: "DATA:text/plain;base64,aGk=" });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.file.content_type, "text/plain");
    assert.equal(res.body.file.file_size, 2);
    const file = await fetch(res.body.file.url);
    assert.equal(file.status, 200);
    assert.equal(await file.text(), "hi");

    const mixed = await http(p, "POST", `/run/${ECHO}`, { file_url: "Data:text/plain,hello", sync_mode: true });
    assert.equal(mixed.status, 200, JSON.stringify(mixed.body));
    assert.equal(Buffer.from(String(mixed.body.file.url).split(",")[1] ?? "", "base64").toString("utf8"), "hello");

    // Past the schema, the SSRF guard refuses loopback: a different error from the pattern's.
    for (const url of ["HTTP://127.0.0.1:9/x.png", "Https://127.0.0.1:9/x.png"]) {
      const refused = await http(p, "POST", `/run/${ECHO}`, { file_url: url });
      assert.notEqual(refused.status, 200);
      const detail = JSON.stringify(refused.body);
      assert.doesNotMatch(detail, /pattern|must be an http\(s\) URL/, `schema refused ${url}: ${detail}`);
      assert.match(detail, /refused|loopback/i, detail);
    }

    // Lower-case schemes still work, and other schemes are still refused by the schema.
    const plain = await http(p, "POST", `/run/${ECHO}`, { file_url: "data:text/plain;base64,aGk=" });
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    const ftp = await http(p, "POST", `/run/${ECHO}`, { file_url: "FTP://example.com/x.png" });
    assert.equal(ftp.status, 422);
    assert.deepEqual(ftp.body.detail[0].loc, ["body", "file_url"]);
  });

  it("answers a realtime message nested too deeply with BAD_MESSAGE and keeps the connection", { timeout: 60_000 }, async () => {
    const rt = await connectRealtime(p);
    try {
      // {"message": [[[…"leaf"…]]], "request_id": "deep-msgpack"}, 10,000 levels, written byte by byte:
      // the msgpack encoder recurses, and would overflow this test's own stack building it.
      const deepMsgpack = Buffer.concat([
        Buffer.from([0x82]), // map of 2
        encode("message"),
        Buffer.alloc(10_000, 0x91), // array of 1, 10,000 times
        encode("leaf"),
        encode("request_id"),
        encode("deep-msgpack"),
      ]);
      const sends: [string, () => void][] = [
        ["JSON", () => rt.socket.send(`{"message": ${"[".repeat(10_000)}${"]".repeat(10_000)}, "request_id": "deep-json"}`)],
        ["msgpack", () => rt.socket.send(deepMsgpack)],
      ];
      for (const [kind, send] of sends) {
        send();
        const frame = await rt.nextResult();
        assert.equal(frame.binary, false, `${kind}: expected a control frame`);
        assert.equal(frame.value.type, "x-fal-error", `${kind}: ${JSON.stringify(frame.value)}`);
        assert.equal(frame.value.error, "BAD_MESSAGE", `${kind}: ${JSON.stringify(frame.value)}`);
        assert.match(frame.value.reason, /nested deeper than/);

        rt.socket.send(encode({ message: `after ${kind}`, request_id: `ok-${kind}` }));
        const ok = await rt.nextResult();
        assert.equal(ok.binary, true, `${kind}: the connection did not echo the next message: ${JSON.stringify(ok.value)}`);
        assert.deepEqual(ok.value, { message: `after ${kind}`, request_id: `ok-${kind}` });
      }

      // Nesting that an HTTP body may have is echoed on the socket too.
      let moderate: unknown = "leaf";
      for (let i = 0; i < 300; i++) moderate = [moderate];
      rt.socket.send(encode({ message: moderate, request_id: "moderate" }, { maxDepth: 1000 }));
      const echoed = await rt.nextResult();
      assert.equal(echoed.binary, true, JSON.stringify(echoed.value));
      assert.deepEqual(echoed.value, { message: moderate, request_id: "moderate" });
    } finally {
      rt.socket.close();
    }
  });

  it("creates darkroom.db and its WAL files owner-only (0600)", { skip: process.platform === "win32" }, async () => {
    // A finished request has written through the WAL.
    await waitCompleted(p, ECHO, await submit(p, ECHO, { message: "x" }));
    const db = path.join(p.dataDir, "darkroom.db");
    assert.ok(existsSync(db));
    for (const file of [db, `${db}-wal`, `${db}-shm`]) {
      if (!existsSync(file)) continue;
      assert.equal((statSync(file).mode & 0o777).toString(8), "600", `${path.basename(file)} mode`);
    }
  });

  it("tightens a database and WAL files left 0644 by an earlier version", { skip: process.platform === "win32" }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "darkroom-dbmode-"));
    try {
      const db = path.join(dir, "darkroom.db");
      const first = createSqliteStore({ path: db });
      await first.migrate();
      await first.close();
      for (const file of [db, `${db}-wal`, `${db}-shm`]) if (existsSync(file)) chmodSync(file, 0o644);
      writeFileSync(`${db}-shm`, "", { flag: "a" });
      chmodSync(`${db}-shm`, 0o644);
      const store = createSqliteStore({ path: db });
      try {
        await store.migrate();
        for (const file of [db, `${db}-wal`, `${db}-shm`]) {
          if (!existsSync(file)) continue;
          assert.equal((statSync(file).mode & 0o777).toString(8), "600", `${path.basename(file)} mode`);
        }
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fails a webhook the SSRF policy refuses after one attempt, with the reason in the log", async () => {
    // 10.0.0.1 is an IP literal in a private range: safeFetch refuses it before opening any socket
    // (requestOnce checks IP-literal hosts up front), so no traffic leaves this machine.
    const res = await http(p, "POST", `/queue/${ECHO}?fal_webhook=${encodeURIComponent("http://10.0.0.1/hook")}`, { message: "hooked" });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const id = res.body.request_id as string;
    await waitCompleted(p, ECHO, id);
    const delivery = await eventually(async () => {
      const log = await http(p, "GET", `/v1/requests/${id}/webhooks`);
      const first = log.body.deliveries?.[0];
      return first && first.state !== "pending" ? first : null;
    }, 15_000);
    // With the test's zero backoff, any retry would have happened by now; wait a few polls to see none do.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const final = (await http(p, "GET", `/v1/requests/${id}/webhooks`)).body.deliveries[0];
    assert.deepEqual(final, delivery);
    assert.equal(delivery.state, "failed");
    assert.equal(delivery.attempts, 1);
    assert.equal(delivery.next_attempt_at, null);
    assert.equal(delivery.log.length, 1);
    assert.equal(delivery.log[0].ok, false);
    assert.equal(delivery.log[0].status, null);
    assert.match(delivery.log[0].error, /refused/);
    assert.match(delivery.log[0].error, /private/);
    assert.match(delivery.log[0].error, /policy/i);
  });
});
