/**
 * Large inputs stay out of the database rows (security issue #13, item 7): an input whose JSON is
 * over `DARKROOM_INPUT_SPILL_BYTES` (256 KiB) goes to storage and the row keeps a small reference,
 * on SQLite and on PostgreSQL. The app still gets the input exactly as sent (queue and sync runs,
 * `sync_mode` included), `GET /v1/requests/{id}` shows it whole, and the stored file is served to
 * nobody: `/files/` answers 404 for it, an app cannot be made to read it through a URL, and a
 * reference a caller forges is just that caller's input. A stored input that is gone fails its
 * request with a clear error; a storage outage while it is read back is retried, and requeued.
 * @module
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import pg from "pg";
import { eventually, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { record, result, submit, waitCompleted } from "../helpers/queue.js";
import { createTestDatabase, type TestDatabase } from "../store/pg-database.js";

const ECHO = "darkroom/echo";
const MiB = 1024 * 1024;

/** About `bytes` of JSON, with characters that JSON escapes and multi-byte UTF-8 among them. */
function bigMessage(bytes: number, tag: string): { tag: string; lines: string[] } {
  const line = `${tag} — naïve “quotes” \\ back\tslash \u{1F600} ${"x".repeat(200)}`;
  const lines: string[] = [];
  for (let size = 0; size < bytes; size += line.length + 3) lines.push(`${lines.length}:${line}`);
  return { tag, lines };
}

/** What the request's database row holds in its input column, as text. */
type RowInput = (id: string) => Promise<string>;

function spilledKeyOf(rowInput: string): string {
  const ref = JSON.parse(rowInput) as { $darkroom?: { spilled_input?: string; bytes?: number } };
  const key = ref.$darkroom?.spilled_input;
  assert.ok(typeof key === "string", `the row holds a reference: ${rowInput.slice(0, 200)}`);
  return key;
}

function suite(name: string, setup: () => Promise<{ p: TestPlatform; rowInput: RowInput; close: () => Promise<void> }>): void {
  describe(`large inputs are kept out of request rows (${name})`, { timeout: 120_000 }, () => {
    let p: TestPlatform;
    let rowInput: RowInput;
    let close: () => Promise<void>;

    before(async () => {
      ({ p, rowInput, close } = await setup());
    });

    after(async () => close?.());

    it("queue: the app gets the input exactly, the row holds a small reference, the record shows it whole", async () => {
      const message = bigMessage(2 * MiB, "queued");
      const id = await submit(p, ECHO, { message });
      await waitCompleted(p, ECHO, id, 30_000);
      const res = await result(p, ECHO, id);
      assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
      assert.deepEqual(res.body.message, message);

      const row = await rowInput(id);
      assert.ok(row.length < 1024, `the row's input is ${row.length} characters`);
      const key = spilledKeyOf(row);
      assert.ok(key.startsWith(`inputs/${id}/`), key);
      const meta = await p.storage.head(key);
      assert.equal(meta?.contentType, "application/json");
      assert.equal(JSON.parse(row).$darkroom.bytes, meta?.size);

      const shown = await record(p, id);
      assert.deepEqual(shown.input, { message });

      // The stored input is served to nobody, whatever the spelling of its URL.
      for (const url of [`/files/${key}`, `/files/${key.toUpperCase().slice(0, 7)}${key.slice(7)}`, `/files/%69nputs/${key.slice(7)}`]) {
        for (const method of ["GET", "HEAD"]) {
          const served = await fetch(`${p.url}${url}`, { method, headers: p.auth });
          assert.equal(served.status, 404, `${method} ${url}`);
          const text = await served.text();
          assert.ok(!text.includes("queued —"), `${method} ${url} leaked the input`);
        }
      }
    });

    it("sync run: the same, and sync_mode is read from the stored input", async () => {
      const message = bigMessage(2 * MiB, "synced");
      const payload = Buffer.from("inline because of sync_mode");
      const res = await http(p, "POST", `/run/${ECHO}`, { message, sync_mode: true, file_url: `data:text/plain;base64,${payload.toString("base64")}` });
      assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
      assert.deepEqual(res.body.message, message);
      assert.match(res.body.file.url as string, /^data:text\/plain;base64,/, "sync_mode: the output file came back inline");
      const id = res.headers.get("x-fal-request-id") as string;
      assert.ok(id);
      const row = await rowInput(id);
      assert.ok(row.length < 1024, `the row's input is ${row.length} characters`);
      assert.ok(spilledKeyOf(row).startsWith(`inputs/${id}/`));
      assert.deepEqual((await record(p, id)).input.message, message);
    });

    it("small inputs stay in the row as they were", async () => {
      const id = await submit(p, ECHO, { message: "small" });
      await waitCompleted(p, ECHO, id);
      assert.deepEqual(JSON.parse(await rowInput(id)), { message: "small" });
      assert.deepEqual((await record(p, id)).input, { message: "small" });
    });

    it("a forged reference to another request's stored input reads nothing of it", async () => {
      const secret = bigMessage(512 * 1024, "secret");
      const victim = await submit(p, ECHO, { message: secret });
      await waitCompleted(p, ECHO, victim, 30_000);
      const key = spilledKeyOf(await rowInput(victim));
      const bytes = (await p.storage.head(key))?.size ?? 0;

      const forgeries: unknown[] = [
        { $darkroom: { spilled_input: key, bytes } },
        { message: { $darkroom: { spilled_input: key, bytes } } },
      ];
      let ran = 0;
      for (const forged of forgeries) {
        for (const route of ["queue", "run"] as const) {
          const res = route === "queue" ? await http(p, "POST", `/queue/${ECHO}`, forged) : await http(p, "POST", `/run/${ECHO}`, forged);
          // Refused by the app's schema, or run as the plain input it is.
          if (res.status === 422) continue;
          assert.equal(res.status, 200, JSON.stringify(res.body));
          const id = (route === "queue" ? res.body.request_id : res.headers.get("x-fal-request-id")) as string;
          const out = route === "queue" ? (await waitCompleted(p, ECHO, id), await result(p, ECHO, id)).body : res.body;
          assert.ok(!JSON.stringify(out).includes("secret —"), `${route}: the output leaked the other input`);
          // Echo returns `message`: the look-alike comes back as the plain value it is.
          if ("message" in (forged as object)) assert.deepEqual(out.message, (forged as { message: unknown }).message);
          ran += 1;
          const shown = await record(p, id);
          assert.deepEqual(shown.input, forged, `${route}: the record shows the forged object as it was sent`);
          assert.ok(!JSON.stringify(shown).includes("secret —"));
        }
      }
      assert.ok(ran >= 2, "the forgeries the schema lets through ran");
    });

    it("an app cannot be made to read a stored input through its URL", async () => {
      const victim = await submit(p, ECHO, { message: bigMessage(512 * 1024, "private") });
      await waitCompleted(p, ECHO, victim, 30_000);
      const key = spilledKeyOf(await rowInput(victim));
      const id = await submit(p, ECHO, { file_url: `${p.url}/files/${key}` });
      await waitCompleted(p, ECHO, id);
      const res = await result(p, ECHO, id);
      assert.notEqual(res.status, 200, JSON.stringify(res.body));
      assert.ok(!JSON.stringify(res.body).includes("private —"));
      const shown = await record(p, id);
      assert.equal(shown.state, "FAILED");
    });

    it("a storage outage while the input is read back: the read is retried and the request completes once storage answers", async () => {
      const blocker = await submit(p, ECHO, { message: "blocker", sleep_ms: 1000 });
      await eventually(async () => (await record(p, blocker)).state === "RUNNING", 20_000);
      const message = bigMessage(300 * 1024, "blip");
      const id = await submit(p, ECHO, { message });
      const storage = p.storage as { get: typeof p.storage.get };
      const realGet = storage.get;
      let failures = 0;
      // The bucket stops answering; it is back 200 ms after the first read that failed.
      storage.get = async () => {
        failures += 1;
        if (failures === 1) setTimeout(() => (storage.get = realGet), 200);
        throw new Error("connect ECONNREFUSED (the bucket is unreachable)");
      };
      try {
        await waitCompleted(p, ECHO, id, 30_000);
      } finally {
        storage.get = realGet;
      }
      assert.ok(failures >= 1, "the read failed at least once");
      const shown = await record(p, id);
      assert.equal(shown.state, "SUCCEEDED");
      assert.equal(shown.attempt, 1, "retried within the attempt, not requeued");
      assert.deepEqual((await result(p, ECHO, id)).body.message, message);
    });

    it("a storage outage that outlasts the retries: back to the queue each attempt, then failed once with 503, not 500", async () => {
      const storage = p.storage as { get: typeof p.storage.get };
      const realGet = storage.get;
      let reads = 0;
      // Storage stops answering reads (writes still work: the input is stored at submit).
      storage.get = async () => {
        reads += 1;
        throw new Error("connect ECONNREFUSED (the bucket is unreachable)");
      };
      let id = "";
      try {
        id = await submit(p, ECHO, { message: bigMessage(300 * 1024, "outage") });
        await waitCompleted(p, ECHO, id, 60_000);
      } finally {
        storage.get = realGet;
      }
      const shown = await record(p, id);
      assert.equal(shown.state, "FAILED");
      assert.equal(shown.attempt, 3, "every attempt was tried");
      assert.equal(reads, 3 * 3, "three reads an attempt: the first and two retries");
      assert.match(String(shown.error), /could not be read from storage/);
      const res = await result(p, ECHO, id);
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("x-fal-error-type"), "service_unavailable");
      assert.equal(res.body.error_type, "service_unavailable");
      const next = await http(p, "POST", `/run/${ECHO}`, { message: "after" });
      assert.equal(next.status, 200, "the runner is fine");
    });

    it("a stored input that is gone fails its request with a clear error", async () => {
      // One runner slot (DARKROOM_APP_KNOBS below): the large request waits behind a slow one.
      const blocker = await submit(p, ECHO, { message: "blocker", sleep_ms: 1500 });
      await eventually(async () => (await record(p, blocker)).state === "RUNNING", 20_000);
      const id = await submit(p, ECHO, { message: bigMessage(512 * 1024, "lost") });
      assert.equal((await record(p, id)).state, "QUEUED");
      await p.storage.delete(spilledKeyOf(await rowInput(id)));
      const done = await waitCompleted(p, ECHO, id, 30_000);
      void done;
      const shown = await record(p, id);
      assert.equal(shown.state, "FAILED");
      assert.match(String(shown.error), /input is no longer in storage/);
      // The record stays readable: it shows the reference.
      assert.ok(shown.input.$darkroom.spilled_input.startsWith(`inputs/${id}/`));
      const res = await result(p, ECHO, id);
      assert.equal(res.status, 500);
      // The runner is fine: the next request runs.
      const next = await http(p, "POST", `/run/${ECHO}`, { message: "after" });
      assert.equal(next.status, 200);
    });
  });
}

const KNOBS = { DARKROOM_APP_KNOBS: `${ECHO}:max_runners=1,max_multiplexing=1` };

suite("SQLite", async () => {
  const p = await startTestPlatform({ env: KNOBS });
  const db = new Database(path.join(p.dataDir, "darkroom.db"), { readonly: true, fileMustExist: true });
  const rowInput: RowInput = async (id) => {
    const row = db.prepare("SELECT input FROM requests WHERE id = ?").get(id) as { input: string } | undefined;
    assert.ok(row, `request ${id} has a row`);
    return row.input;
  };
  return {
    p,
    rowInput,
    close: async () => {
      db.close();
      await p.close();
    },
  };
});

suite("PostgreSQL", async () => {
  const database: TestDatabase = await createTestDatabase();
  const p = await startTestPlatform({ env: { ...KNOBS, DARKROOM_DATABASE_URL: database.url } });
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  const rowInput: RowInput = async (id) => {
    const res = await client.query<{ input: string }>("SELECT input FROM requests WHERE id = $1", [id]);
    assert.ok(res.rows[0], `request ${id} has a row`);
    return res.rows[0].input;
  };
  return {
    p,
    rowInput,
    close: async () => {
      await client.end();
      await p.close();
      await database.drop();
    },
  };
});
