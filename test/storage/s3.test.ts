/**
 * The S3 driver against s3rver (an in-process fake S3 on a loopback port): the shared conformance
 * suite, then what only S3 has. s3rver does not check signatures, so presigned URLs are tested for
 * protocol only; signature refusal is covered by the local driver's signed-URL tests.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import S3rver from "s3rver";
import { openStorage, openStorageFromEnv, parseStorageUrl, s3SettingsFromEnv } from "../../src/storage/open-storage.js";
import { createS3Storage, type S3StorageDriver, type S3StorageOptions } from "../../src/storage/s3-storage.js";
import { readAll, rejectsWith, runStorageConformance, trickle } from "./storage.case.js";

const BUCKET = "darkroom-test";
const CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
const MiB = 1024 * 1024;

let server: S3rver | undefined;
let serverDir = "";
let endpoint = "";
let client: S3Client | undefined;
const drivers: S3StorageDriver[] = [];

before(async () => {
  serverDir = await mkdtemp(path.join(tmpdir(), "darkroom-s3rver-"));
  server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: serverDir });
  const address = await server.run();
  endpoint = `http://127.0.0.1:${address.port}`;
  client = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true, credentials: CREDENTIALS });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

after(async () => {
  for (const driver of drivers) driver.close();
  client?.destroy();
  // Keep-alive sockets would hold close() open; the clients are gone, so drop what is left.
  server?.httpServer?.closeAllConnections();
  await server?.close();
  await rm(serverDir, { recursive: true, force: true });
});

function sharedClient(): S3Client {
  assert.ok(client, "s3rver is running");
  return client;
}

/** A driver on its own random prefix, so every test starts from an empty store. */
function s3Store(options: Partial<S3StorageOptions> = {}): S3StorageDriver {
  const driver = createS3Storage({ bucket: BUCKET, prefix: `t-${randomBytes(6).toString("hex")}`, client: sharedClient(), ...options });
  drivers.push(driver);
  return driver;
}

async function listBucket(prefix: string): Promise<string[]> {
  const out = await sharedClient().send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key ?? "").sort();
}

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

runStorageConformance("s3", async () => s3Store());

describe("s3 storage driver", () => {
  it("streams a large body of unknown length as multipart, never holding it whole, byte-exact", async () => {
    const calls: { command: string; bytes?: number; checksum?: string; producedAtSend: number }[] = [];
    let produced = 0;
    const recording = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true, credentials: CREDENTIALS });
    recording.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { Body?: unknown; ChecksumAlgorithm?: string };
        calls.push({
          command: context.commandName ?? "?",
          ...(input.ChecksumAlgorithm ? { checksum: input.ChecksumAlgorithm } : {}),
          ...(Buffer.isBuffer(input.Body) ? { bytes: input.Body.length } : {}),
          producedAtSend: produced,
        });
        return next(args);
      },
      { step: "initialize", name: "recordCalls" },
    );
    const store = s3Store({ client: recording, partSize: 5 * MiB });

    const total = 12 * MiB + 12_345;
    const data = randomBytes(total);
    let offset = 0;
    // A pull stream with no length, like a request body: bytes are made only when asked for.
    const source = new Readable({
      read() {
        if (offset >= total) return void this.push(null);
        const piece = data.subarray(offset, Math.min(offset + 64 * 1024, total));
        offset += piece.length;
        produced = offset;
        this.push(piece);
      },
    });
    const meta = await store.put("big/random.bin", source, { contentType: "application/octet-stream", fileName: "random.bin" });
    assert.equal(meta.size, total);

    const parts = calls.filter((c) => c.command === "UploadPartCommand");
    assert.deepEqual(
      calls.map((c) => c.command).filter((c) => c !== "UploadPartCommand"),
      ["CreateMultipartUploadCommand", "CompleteMultipartUploadCommand"],
    );
    assert.equal(parts.length, 3, "12 MiB in parts of 5 MiB");
    // AWS refuses CRC32 part checksums (the SDK's default) on an upload created without an algorithm.
    assert.equal(calls.find((c) => c.command === "CreateMultipartUploadCommand")?.checksum, "CRC32");
    for (const part of parts) assert.equal(part.checksum, "CRC32");
    for (const part of parts) assert.ok((part.bytes ?? Infinity) <= 5 * MiB + 64 * 1024, `a part holds about one part size, not ${part.bytes}`);
    assert.ok((parts[0]?.producedAtSend ?? Infinity) < 6 * MiB, `the source was read only one part ahead (${parts[0]?.producedAtSend} bytes)`);

    const got = await store.get("big/random.bin");
    assert.ok(got);
    assert.equal(sha256(await readAll(got.body)), sha256(data));
    const slice = await store.get("big/random.bin", { start: 5 * MiB - 10, end: 5 * MiB + 10 });
    assert.ok(slice);
    assert.deepEqual(await readAll(slice.body), data.subarray(5 * MiB - 10, 5 * MiB + 11));
    recording.destroy();
  });

  it("cuts the response to the asked range when a server ignores Range", async () => {
    const ignoring = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true, credentials: CREDENTIALS });
    // HTTP allows a server to answer a Range request with the whole entity (200).
    ignoring.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers?: Record<string, string> };
        if (request.headers) delete request.headers["range"];
        return next(args);
      },
      { step: "finalizeRequest", name: "dropRange" },
    );
    const store = s3Store({ client: ignoring });
    const data = randomBytes(100_000);
    await store.put("r.bin", data, { contentType: "x/y", fileName: "r.bin" });
    for (const [start, end] of [[0, 0], [10, 99], [99_990, 200_000], [50_000, 50_000]] as const) {
      const got = await store.get("r.bin", { start, end });
      assert.ok(got);
      assert.equal(got.meta.size, data.length);
      assert.deepEqual(await readAll(got.body), data.subarray(start, Math.min(end, data.length - 1) + 1), `${start}-${end}`);
    }
    await rejectsWith(store.get("r.bin", { start: 100_000, end: 100_001 }), "ERR_RANGE_NOT_SATISFIABLE");
    ignoring.destroy();
  });

  it("refuses a streamed put that passes maxBytes after several parts, and keeps the old object", async () => {
    const store = s3Store({ partSize: 5 * MiB });
    await store.put("cap.bin", Buffer.from("old"), { contentType: "text/plain", fileName: "cap.bin" });
    const source = trickle(randomBytes(12 * MiB), 256 * 1024);
    await rejectsWith(store.put("cap.bin", source, { contentType: "x/y", fileName: "cap.bin", maxBytes: 11 * MiB }), "ERR_FILE_TOO_LARGE");
    assert.equal(source.destroyed, false, "the caller's stream is left to the caller");
    const got = await store.get("cap.bin");
    assert.ok(got);
    assert.equal((await readAll(got.body)).toString(), "old");
  });

  it("stores file name, content type and times in object metadata", async () => {
    let clock = 1_800_000_000_000;
    const store = s3Store({ now: () => clock });
    const meta = await store.put("meta/file.txt", Buffer.from("x"), {
      contentType: "text/plain; charset=utf-8",
      fileName: "résumé final.txt",
      expiresInSeconds: 30,
    });
    clock += 1000;
    const head = await store.head(meta.key);
    assert.deepEqual(head, { key: meta.key, size: 1, contentType: "text/plain; charset=utf-8", fileName: "résumé final.txt", createdAt: 1_800_000_000_000, expiresAt: 1_800_000_030_000 });
  });

  it("treats expired objects as missing by its clock and sweeps them and their markers", async () => {
    let clock = 1_700_000_000_000;
    const store = s3Store({ now: () => clock });
    await store.put("e/short.txt", Buffer.from("short"), { contentType: "text/plain", fileName: "short.txt", expiresInSeconds: 10 });
    await store.put("e/replaced.txt", Buffer.from("v1"), { contentType: "text/plain", fileName: "r.txt", expiresInSeconds: 10 });
    await store.put("e/replaced.txt", Buffer.from("v2"), { contentType: "text/plain", fileName: "r.txt" });
    await store.put("e/later.txt", Buffer.from("later"), { contentType: "text/plain", fileName: "later.txt", expiresInSeconds: 100 });
    assert.equal((await listBucket(`${store.prefix}~expires/`)).length, 3);

    clock += 10_000;
    assert.equal(await store.head("e/short.txt"), null);
    assert.equal(await store.get("e/short.txt"), null);
    assert.ok(await store.head("e/replaced.txt"), "a later put without expiry is not expired by the first one's marker");
    assert.equal(await store.sweepExpired(), 1);
    assert.deepEqual(await listBucket(`${store.prefix}e/`), [`${store.prefix}e/later.txt`, `${store.prefix}e/replaced.txt`]);
    assert.equal((await listBucket(`${store.prefix}~expires/`)).length, 1, "only the marker not yet due is left");
    assert.equal(await store.sweepExpired(), 0);
    assert.equal(await store.sweepExpired(clock + 200_000), 1);
    assert.deepEqual(await listBucket(`${store.prefix}~expires/`), []);
  });

  it("keeps two drivers with different prefixes on one bucket apart", async () => {
    const a = createS3Storage({ bucket: BUCKET, prefix: "tenant-a/files", client: sharedClient() });
    const b = createS3Storage({ bucket: BUCKET, prefix: "/tenant-b/", client: sharedClient() });
    assert.equal(a.prefix, "tenant-a/files/");
    assert.equal(b.prefix, "tenant-b/");
    await a.put("same/key.txt", Buffer.from("from a"), { contentType: "text/plain", fileName: "a.txt", expiresInSeconds: 1 });
    await b.put("same/key.txt", Buffer.from("from b"), { contentType: "text/plain", fileName: "b.txt", expiresInSeconds: 1 });
    assert.equal((await readAll((await a.get("same/key.txt"))!.body)).toString(), "from a");
    assert.equal((await readAll((await b.get("same/key.txt"))!.body)).toString(), "from b");
    assert.equal(await a.sweepExpired(Date.now() + 60_000), 1);
    assert.equal(await a.head("same/key.txt"), null);
    assert.equal((await b.head("same/key.txt"))?.fileName, "b.txt", "a's sweep left b alone");
    await b.delete("same/key.txt");
    assert.deepEqual(await listBucket("tenant-a/"), []);
    const leftInB = await listBucket("tenant-b/");
    assert.ok(leftInB.every((k) => k.startsWith("tenant-b/~expires/")), `only b's expiry marker may remain: ${leftInB.join(", ")}`);
    assert.throws(() => createS3Storage({ bucket: BUCKET, prefix: "../up", client: sharedClient() }), { code: "ERR_BAD_REQUEST" });
  });

  it("stages multipart parts under the prefix and cleans up", async () => {
    const store = s3Store();
    const one = await store.putPart("mp/file.bin", "upload-x", 1, Buffer.from("abc"));
    const two = await store.putPart("mp/file.bin", "upload-x", 2, trickle(Buffer.from("defgh"), 2));
    assert.ok((await listBucket(`${store.prefix}~multipart/upload-x/`)).length >= 4);
    await store.completeMultipart("mp/file.bin", "upload-x", [{ partNumber: 1, etag: one.etag }, { partNumber: 2, etag: two.etag }], { contentType: "x/y", fileName: "f" });
    assert.equal((await readAll((await store.get("mp/file.bin"))!.body)).toString(), "abcdefgh");
    assert.deepEqual(await listBucket(`${store.prefix}~multipart/`), []);

    await store.putPart("mp/left.bin", "abandoned", 1, Buffer.from("abc"));
    await store.sweepExpired(Date.now() + 3600_000);
    assert.equal((await listBucket(`${store.prefix}~multipart/abandoned/`)).length, 3, "an hour idle is not abandoned yet");
    await store.sweepExpired(Date.now() + 25 * 3600_000);
    assert.deepEqual(await listBucket(`${store.prefix}~multipart/`), []);
  });

  it("assembles large multipart uploads through a streamed S3 multipart upload", async () => {
    const store = s3Store({ partSize: 5 * MiB });
    const data = randomBytes(11 * MiB);
    const pieces = [data.subarray(0, 2 * MiB), data.subarray(2 * MiB, 9 * MiB), data.subarray(9 * MiB)];
    const parts = [];
    for (const [i, piece] of pieces.entries()) parts.push({ partNumber: i + 1, etag: (await store.putPart("mp/big.bin", "big", i + 1, trickle(piece, 256 * 1024))).etag });
    const meta = await store.completeMultipart("mp/big.bin", "big", parts, { contentType: "x/y", fileName: "big.bin", expiresInSeconds: 600 });
    assert.equal(meta.size, data.length);
    const got = await store.get("mp/big.bin");
    assert.ok(got);
    assert.equal(got.meta.expiresAt, meta.expiresAt);
    assert.equal(sha256(await readAll(got.body)), sha256(data));
  });

  it("notices staged part bytes that do not match their record", async () => {
    const store = s3Store();
    const part = await store.putPart("mp/t.bin", "tamper", 1, Buffer.from("genuine"));
    await sharedClient().send(new PutObjectCommand({ Bucket: BUCKET, Key: `${store.prefix}~multipart/tamper/1`, Body: Buffer.from("forged!") }));
    await rejectsWith(store.completeMultipart("mp/t.bin", "tamper", [{ partNumber: 1, etag: part.etag }], { contentType: "x/y", fileName: "t" }), "ERR_BAD_REQUEST", /etag/);
    assert.equal(await store.head("mp/t.bin"), null);
  });

  it("presigns GET and PUT URLs that work with plain fetch", async () => {
    const store = s3Store();
    const putUrl = await store.presign("up/hello.txt", { method: "PUT", expiresInSeconds: 60, contentType: "text/plain" });
    assert.equal(new URL(putUrl).searchParams.get("X-Amz-Expires"), "60");
    const put = await fetch(putUrl, { method: "PUT", body: "hello through a presigned URL", headers: { "content-type": "text/plain" } });
    assert.equal(put.status, 200, await put.text());
    const head = await store.head("up/hello.txt");
    assert.ok(head);
    assert.equal(head.contentType, "text/plain");
    assert.equal(head.fileName, "hello.txt", "no file name of its own: the key's last segment");
    assert.equal(head.expiresAt, null);
    assert.ok(Math.abs(head.createdAt - Date.now()) < 60_000, "createdAt falls back to LastModified");

    const getUrl = await store.presign("up/hello.txt", { method: "GET", expiresInSeconds: 30 * 24 * 3600 });
    assert.equal(new URL(getUrl).searchParams.get("X-Amz-Expires"), String(7 * 24 * 3600), "capped at seven days");
    const got = await fetch(getUrl);
    assert.equal(got.status, 200);
    assert.equal(await got.text(), "hello through a presigned URL");

    await store.put("up/short.txt", Buffer.from("short"), { contentType: "text/plain", fileName: "s", expiresInSeconds: 20 });
    const shortUrl = await store.presign("up/short.txt", { method: "GET", expiresInSeconds: 3600 });
    assert.ok(Number(new URL(shortUrl).searchParams.get("X-Amz-Expires")) <= 20, "a URL never outlives its object");

    await rejectsWith(store.presign("up/missing.txt", { method: "GET", expiresInSeconds: 60 }), "ERR_FILE_NOT_FOUND");
    await rejectsWith(store.presign("../x", { method: "GET", expiresInSeconds: 60 }), "ERR_BAD_REQUEST");
    await rejectsWith(store.presign("up/x", { method: "GET", expiresInSeconds: 0 }), "ERR_BAD_REQUEST");
  });
});

describe("openStorage", () => {
  it("parses storage URLs", () => {
    const dataDir = path.join(tmpdir(), "darkroom-data");
    assert.deepEqual(parseStorageUrl(null, dataDir), { driver: "local", root: path.join(dataDir, "files") });
    assert.deepEqual(parseStorageUrl("", dataDir), { driver: "local", root: path.join(dataDir, "files") });
    assert.deepEqual(parseStorageUrl("file:///srv/darkroom/files", dataDir), { driver: "local", root: "/srv/darkroom/files" });
    assert.deepEqual(parseStorageUrl("s3://my-bucket", dataDir), { driver: "s3", bucket: "my-bucket", prefix: "" });
    assert.deepEqual(parseStorageUrl("s3://my-bucket/", dataDir), { driver: "s3", bucket: "my-bucket", prefix: "" });
    assert.deepEqual(parseStorageUrl("s3://my-bucket/darkroom/prod/", dataDir), { driver: "s3", bucket: "my-bucket", prefix: "darkroom/prod/" });
    for (const bad of ["http://example.com/x", "gs://bucket", "/plain/path", "file://host/x", "file:relative", "s3://", "s3:///prefix", "s3://b/../x", "s3://a?x=1", "s3://bucket/a b"]) {
      assert.throws(() => parseStorageUrl(bad, dataDir), { code: "ERR_BAD_REQUEST" }, bad);
    }
    assert.throws(() => parseStorageUrl("gs://bucket", dataDir), /unsupported storage URL.*"gs"/);
  });

  it("reads the S3 settings from the environment", () => {
    assert.deepEqual(s3SettingsFromEnv({}), { region: "us-east-1" });
    assert.deepEqual(s3SettingsFromEnv({ AWS_DEFAULT_REGION: "eu-west-3" }), { region: "eu-west-3" });
    assert.deepEqual(s3SettingsFromEnv({ AWS_REGION: "eu-central-1", AWS_DEFAULT_REGION: "eu-west-3" }), { region: "eu-central-1" });
    assert.deepEqual(s3SettingsFromEnv({ DARKROOM_S3_ENDPOINT: "http://minio:9000" }), { endpoint: "http://minio:9000", region: "us-east-1", forcePathStyle: true });
    assert.deepEqual(s3SettingsFromEnv({ DARKROOM_S3_ENDPOINT: "https://r2.example", DARKROOM_S3_FORCE_PATH_STYLE: "false" }), {
      endpoint: "https://r2.example",
      region: "us-east-1",
      forcePathStyle: false,
    });
    assert.deepEqual(s3SettingsFromEnv({ DARKROOM_S3_FORCE_PATH_STYLE: "true" }), { region: "us-east-1", forcePathStyle: true });
    assert.throws(() => s3SettingsFromEnv({ DARKROOM_S3_FORCE_PATH_STYLE: "maybe" }), { code: "ERR_BAD_REQUEST" });
    assert.throws(() => s3SettingsFromEnv({ DARKROOM_S3_ENDPOINT: "minio:9000" }), { code: "ERR_BAD_REQUEST" });
  });

  it("opens the local driver or a working S3 driver", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), "darkroom-open-"));
    try {
      const local = await openStorage({ storageUrl: null, dataDir, env: {} });
      assert.equal(local.name, "local");
      await local.put("x.txt", Buffer.from("x"), { contentType: "text/plain", fileName: "x.txt" });
      assert.deepEqual(await readdir(path.join(dataDir, "files")), ["objects"]);

      const env = { DARKROOM_S3_ENDPOINT: endpoint, AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey, AWS_REGION: "us-east-1" };
      // The SDK's default credential chain reads process.env; the test sets them for the call only.
      const saved = { ...process.env };
      Object.assign(process.env, env);
      try {
        const s3 = (await openStorage({ storageUrl: `s3://${BUCKET}/opened`, dataDir, env })) as S3StorageDriver;
        drivers.push(s3);
        assert.equal(s3.name, "s3");
        assert.equal(s3.prefix, "opened/");
        await s3.put("y.txt", Buffer.from("via env"), { contentType: "text/plain", fileName: "y.txt" });
        assert.deepEqual(await listBucket("opened/"), ["opened/y.txt"]);

        const runner = (await openStorageFromEnv({ ...env, DARKROOM_STORAGE_URL: `s3://${BUCKET}/opened`, DARKROOM_STORAGE_ROOT: dataDir })) as S3StorageDriver;
        drivers.push(runner);
        assert.equal((await readAll((await runner.get("y.txt"))!.body)).toString(), "via env", "the runner sees the server's objects");
      } finally {
        for (const name of Object.keys(env)) if (!(name in saved)) delete process.env[name];
        Object.assign(process.env, saved);
      }
      assert.equal((await openStorageFromEnv({ DARKROOM_STORAGE_ROOT: dataDir })).name, "local");
      assert.equal((await openStorageFromEnv({ DARKROOM_STORAGE_URL: `file://${dataDir}` })).name, "local");
      await assert.rejects(openStorageFromEnv({}), /DARKROOM_STORAGE_URL/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
