/**
 * What one key can keep in storage, on a real server: the parts of a multipart upload count against
 * the file limit together (the part that passes it is refused, the accepted ones still complete),
 * and each key's uploads, staged parts and files count against its storage quota until they expire;
 * past it an upload is refused with 413 `quota_exceeded` and nothing is stored. Other keys are not
 * affected. File limit 1 MiB, quota 2 MiB.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { eventually, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

const MiB = 1024 * 1024;
const MAX_FILE = MiB;
const QUOTA = 2 * MiB;

interface Caller {
  url: string;
  auth: Record<string, string>;
}

interface Answer {
  status: number;
  code: string | null;
  errorType: string | null;
  body: Record<string, unknown>;
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: res.status, code: res.headers.get("x-darkroom-error-code"), errorType: res.headers.get("x-fal-error-type"), body };
}

/** A body of unknown length (no Content-Length: chunked), arriving in pieces. */
function chunked(bytes: Buffer<ArrayBuffer>, piece = 64 * 1024): { body: ReadableStream<Uint8Array>; duplex: "half" } {
  let at = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(at, at + piece));
      at += piece;
    },
  });
  return { body, duplex: "half" };
}

describe("upload limits: staged multipart parts and the per-key storage quota", { timeout: 120_000 }, () => {
  let p: TestPlatform;

  before(async () => {
    p = await startTestPlatform({ env: { DARKROOM_MAX_FILE_BYTES: String(MAX_FILE), DARKROOM_STORAGE_QUOTA_BYTES: String(QUOTA) } });
  });

  after(async () => {
    await p?.close();
  });

  async function newKey(): Promise<Caller> {
    const created = await http(p, "POST", "/v1/keys", { name: `quota-${randomBytes(4).toString("hex")}`, scope: "api" });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return { url: p.url, auth: { authorization: `Key ${created.body.key as string}` } };
  }

  /** Every object in the local storage folder, by key (each has one `~meta.json` sidecar). */
  function storedObjects(): string[] {
    const root = path.join(p.dataDir, "files", "objects");
    const found: string[] = [];
    const walk = (dir: string): void => {
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else if (entry.name.endsWith("~meta.json")) found.push(path.relative(root, full).slice(0, -"~meta.json".length));
      }
    };
    walk(root);
    return found.sort();
  }

  async function initiate(caller: Caller, route: "initiate" | "initiate-multipart", lifecycle?: number): Promise<{ upload_url: string; file_url: string }> {
    const headers: Record<string, string> = lifecycle ? { "x-fal-object-lifecycle-preference": JSON.stringify({ expiration_duration_seconds: lifecycle }) } : {};
    const res = await http(caller, "POST", `/rest/storage/upload/${route}`, { content_type: "application/octet-stream", file_name: "blob.bin" }, headers);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  }

  /** A signed single upload: initiate with the key, then PUT the bytes to the URL (no key needed). */
  async function signedPut(caller: Caller, bytes: Buffer<ArrayBuffer>, options: { lifecycle?: number; chunked?: boolean } = {}): Promise<Answer & { fileUrl: string }> {
    const { upload_url, file_url } = await initiate(caller, "initiate", options.lifecycle);
    const init: RequestInit = options.chunked ? { method: "PUT", ...chunked(bytes) } : { method: "PUT", body: bytes };
    return { ...(await answer(await fetch(upload_url, init))), fileUrl: file_url };
  }

  /** Python fal_client's token upload: one POST of the bytes. */
  async function tokenPost(caller: Caller, bytes: Buffer<ArrayBuffer>, lifecycle?: number): Promise<Answer> {
    const headers: Record<string, string> = { ...caller.auth, "content-type": "application/octet-stream", "x-fal-file-name": "blob.bin" };
    if (lifecycle) headers["x-fal-object-lifecycle-preference"] = JSON.stringify({ expiration_duration_seconds: lifecycle });
    return answer(await fetch(`${p.url}/files/upload`, { method: "POST", headers, body: bytes }));
  }

  /** The signed multipart flavour (fal's JS client): initiate-multipart, PUT parts, POST complete. */
  async function signedMultipart(caller: Caller) {
    const { upload_url, file_url } = await initiate(caller, "initiate-multipart");
    const [base, query] = upload_url.split("?") as [string, string];
    return {
      fileUrl: file_url,
      part: async (n: number, bytes: Buffer<ArrayBuffer>, streamed = false): Promise<Answer> =>
        answer(await fetch(`${base}/${n}?${query}`, streamed ? { method: "PUT", ...chunked(bytes) } : { method: "PUT", body: bytes })),
      complete: async (parts: { partNumber: number; etag: string }[]): Promise<Answer> =>
        answer(await fetch(`${base}/complete?${query}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ parts }) })),
    };
  }

  /** Python fal_client's multipart upload, with a storage token of the key. */
  async function tokenMultipart(caller: Caller) {
    const token = await http(caller, "POST", "/rest/storage/auth/token?storage_type=fal-cdn-v3", {});
    assert.equal(token.status, 200, JSON.stringify(token.body));
    const auth = `${token.body.token_type as string} ${token.body.token as string}`;
    const created = await fetch(`${p.url}/files/upload/multipart`, {
      method: "POST",
      headers: { authorization: auth, "content-type": "application/octet-stream", "x-fal-file-name": "big.bin" },
    });
    assert.equal(created.status, 200);
    const { access_url, uploadId } = (await created.json()) as { access_url: string; uploadId: string };
    return {
      fileUrl: access_url,
      part: async (n: number, bytes: Buffer<ArrayBuffer>): Promise<Answer> =>
        answer(await fetch(`${access_url}/multipart/${uploadId}/${n}`, { method: "PUT", headers: { authorization: auth }, body: bytes })),
      complete: async (parts: { partNumber: number; etag: string }[]): Promise<Answer> =>
        answer(
          await fetch(`${access_url}/multipart/${uploadId}/complete`, {
            method: "POST",
            headers: { authorization: auth, "content-type": "application/json" },
            body: JSON.stringify({ parts }),
          }),
        ),
    };
  }

  async function download(url: string): Promise<Buffer> {
    const res = await fetch(url);
    assert.equal(res.status, 200);
    return Buffer.from(await res.arrayBuffer());
  }

  function assertRefused(got: Answer, code: "ERR_FILE_TOO_LARGE" | "ERR_STORAGE_QUOTA", detail?: RegExp): void {
    assert.equal(got.status, 413, JSON.stringify(got.body));
    assert.equal(got.code, code);
    if (code === "ERR_STORAGE_QUOTA") assert.equal(got.errorType, "quota_exceeded");
    if (detail) assert.match(String(got.body["detail"]), detail);
  }

  const etagOf = (got: Answer): string => {
    assert.equal(got.status, 200, JSON.stringify(got.body));
    return got.body["etag"] as string;
  };

  it("signed multipart: the part that takes the staged parts past the file limit gets 413, streamed or not; the accepted parts complete", async () => {
    const caller = await newKey();
    const upload = await signedMultipart(caller);
    const [a, b, c] = [randomBytes(400_000), randomBytes(400_000), randomBytes(400_000)];
    const e1 = etagOf(await upload.part(1, a));
    const e2 = etagOf(await upload.part(2, b, true));
    // 800,000 staged + 400,000 > 1 MiB: refused whether the part announces its length or not.
    assertRefused(await upload.part(3, c), "ERR_FILE_TOO_LARGE", /1048576 bytes.*800000 bytes/);
    assertRefused(await upload.part(3, c, true), "ERR_FILE_TOO_LARGE", /1048576 bytes/);
    const done = await upload.complete([
      { partNumber: 1, etag: e1 },
      { partNumber: 2, etag: e2 },
    ]);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body["file_size"], 800_000);
    assert.deepEqual(await download(upload.fileUrl), Buffer.concat([a, b]));
  });

  it("Python multipart: the same cap; a part uploaded again replaces its bytes, so a smaller one makes room", async () => {
    const caller = await newKey();
    const upload = await tokenMultipart(caller);
    const [a, b, c, small] = [randomBytes(400_000), randomBytes(400_000), randomBytes(400_000), randomBytes(100_000)];
    const e1 = etagOf(await upload.part(1, a));
    etagOf(await upload.part(2, b));
    assertRefused(await upload.part(3, c), "ERR_FILE_TOO_LARGE", /1048576 bytes/);
    const e2 = etagOf(await upload.part(2, small));
    const e3 = etagOf(await upload.part(3, c));
    const done = await upload.complete([
      { partNumber: 1, etag: e1 },
      { partNumber: 2, etag: e2 },
      { partNumber: 3, etag: e3 },
    ]);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body["file_size"], 900_000);
    assert.deepEqual(await download(upload.fileUrl), Buffer.concat([a, small, c]));
  });

  it("a key stores files up to its quota, then gets 413 quota_exceeded with nothing stored; an expired file gives its bytes back; other keys are unaffected", async () => {
    const caller = await newKey();
    // 700,000 that expires in 2 s, 700,000 kept, 600,000 kept: 2,000,000 of 2,097,152.
    const expiring = await signedPut(caller, randomBytes(700_000), { lifecycle: 2 });
    assert.equal(expiring.status, 200, JSON.stringify(expiring.body));
    assert.equal((await tokenPost(caller, randomBytes(700_000))).status, 200);
    assert.equal((await signedPut(caller, randomBytes(600_000))).status, 200);

    const before = storedObjects();
    const refused = await tokenPost(caller, randomBytes(700_000));
    assertRefused(refused, "ERR_STORAGE_QUOTA", /2097152 bytes.*holds 2000000/);
    const signed = await signedPut(caller, randomBytes(700_000));
    assertRefused(signed, "ERR_STORAGE_QUOTA", /2097152/);
    assert.equal((await fetch(signed.fileUrl)).status, 404);
    // A body of unknown length is cut off where the quota ends.
    const streamed = await signedPut(caller, randomBytes(700_000), { chunked: true });
    assertRefused(streamed, "ERR_STORAGE_QUOTA", /2097152/);
    assert.equal((await fetch(streamed.fileUrl)).status, 404);
    assert.deepEqual(storedObjects(), before, "a refused upload stores nothing");

    // Another key has a quota of its own.
    const other = await newKey();
    assert.equal((await tokenPost(other, randomBytes(700_000))).status, 200);
    assert.equal((await signedPut(other, randomBytes(700_000), { chunked: true })).status, 200);

    // Once the first file has expired, its 700,000 bytes are free again.
    await eventually(async () => (await fetch(expiring.fileUrl)).status === 404, 10_000, 100);
    assert.equal((await tokenPost(caller, randomBytes(700_000))).status, 200);
    assertRefused(await tokenPost(caller, randomBytes(100_000)), "ERR_STORAGE_QUOTA");
  });

  it("staged multipart parts count against the quota until their upload completes, then the file counts instead", async () => {
    const caller = await newKey();
    assert.equal((await signedPut(caller, randomBytes(700_000))).status, 200);
    const first = await signedMultipart(caller);
    const e1 = etagOf(await first.part(1, randomBytes(500_000)));
    const e2 = etagOf(await first.part(2, randomBytes(500_000)));
    // 1,700,000 held: a part of 450,000 of another upload does not fit, one of 300,000 does.
    const second = await tokenMultipart(caller);
    assertRefused(await second.part(1, randomBytes(450_000)), "ERR_STORAGE_QUOTA", /holds 1700000/);
    etagOf(await second.part(1, randomBytes(300_000)));
    assertRefused(await tokenPost(caller, randomBytes(200_000)), "ERR_STORAGE_QUOTA", /holds 2000000/);

    const done = await first.complete([
      { partNumber: 1, etag: e1 },
      { partNumber: 2, etag: e2 },
    ]);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    // Still 2,000,000 held: the completed file replaced its parts, it did not double them.
    assert.equal((await tokenPost(caller, randomBytes(90_000))).status, 200);
    assertRefused(await tokenPost(caller, randomBytes(10_000)), "ERR_STORAGE_QUOTA", /holds 2090000/);
  });
});

describe("output files that remote runners upload count against the requesting key's quota", { timeout: 60_000 }, () => {
  const APP = "darkroom/echo";
  let p: TestPlatform;

  before(async () => {
    // No local runners: the test plays the remote runner over /runner/v1.
    p = await startTestPlatform({ env: { DARKROOM_LOCAL_RUNNERS: "false", DARKROOM_STORAGE_QUOTA_BYTES: "1000000" } });
  });

  after(async () => {
    await p?.close();
  });

  it("a runner's output upload past the key's quota gets 413 quota_exceeded; the outputs count against the key's uploads", async () => {
    const minted = await http(p, "POST", "/v1/runner-tokens", { apps: [APP] });
    assert.equal(minted.status, 201, JSON.stringify(minted.body));
    const runner = { authorization: `Bearer ${minted.body.token as string}` };
    const created = await http(p, "POST", "/v1/keys", { name: "outputs", scope: "api" });
    const caller = { url: p.url, auth: { authorization: `Key ${created.body.key as string}` } };

    const submitted = await http(caller, "POST", `/queue/${APP}`, { message: "hello" });
    assert.equal(submitted.status, 200, JSON.stringify(submitted.body));
    const lease = await fetch(`${p.url}/runner/v1/lease`, {
      method: "POST",
      headers: { ...runner, "content-type": "application/json" },
      body: JSON.stringify({ runner_id: "rr-quotarunner01", app_id: APP, slots: 1, wait_ms: 5000 }),
    });
    assert.equal(lease.status, 200);
    const [run] = ((await lease.json()) as { runs: { request_id: string; attempt: number }[] }).runs;
    assert.ok(run, "the runner got the request");
    const put = async (name: string, bytes: Buffer<ArrayBuffer>): Promise<Answer> =>
      answer(
        await fetch(`${p.url}/runner/v1/files/outputs/${run.request_id}/${randomBytes(9).toString("base64url")}/${name}`, {
          method: "PUT",
          headers: { ...runner, "x-darkroom-runner-id": "rr-quotarunner01", "x-darkroom-attempt": String(run.attempt), "x-darkroom-content-type": "application/octet-stream" },
          body: bytes,
        }),
      );

    assert.equal((await put("first.bin", randomBytes(600_000))).status, 200);
    const refused = await put("second.bin", randomBytes(600_000));
    assert.equal(refused.status, 413, JSON.stringify(refused.body));
    assert.equal(refused.errorType, "quota_exceeded");
    // The key's own upload sees the output's bytes.
    const upload = await answer(
      await fetch(`${p.url}/files/upload`, { method: "POST", headers: { ...caller.auth, "content-type": "application/octet-stream" }, body: randomBytes(500_000) }),
    );
    assert.equal(upload.status, 413);
    assert.match(String(upload.body["detail"]), /holds 600000/);
    // The runner's own token is not who pays: the admin key's uploads are unaffected.
    const admin = await answer(await fetch(`${p.url}/files/upload`, { method: "POST", headers: { ...p.auth, "content-type": "application/octet-stream" }, body: randomBytes(500_000) }));
    assert.equal(admin.status, 200);
  });
});
