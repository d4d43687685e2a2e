/**
 * The conformance suite every StorageDriver passes. A driver's test file calls
 * `runStorageConformance(name, create)`; `create` returns a fresh, empty store each time. The tests
 * of a capability (multipart uploads) run for the drivers that have it and are skipped for the rest.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import { before, describe, it, type TestContext } from "node:test";
import { hasMultipart, type MultipartUploads, type ObjectMeta, type StorageDriver } from "../../src/storage/storage.js";

/** A real PNG from the test media, found relative to this file so no machine path is baked in. */
export const FIXTURE = new URL("../fixtures/media/astronaut.png", import.meta.url);

export const TRAVERSAL_KEYS = ["../x", "a/../../b", "/etc/passwd", "a\\b", "%2e%2e", "", ".", "a/./b", "a//b", "a/", "..", "a/..", "~x", "a~meta.json"];

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A stream that yields `data` in small pieces, the way a network upload arrives. */
export function trickle(data: Buffer, pieceSize = 4096): Readable {
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; i += pieceSize) pieces.push(data.subarray(i, i + pieceSize));
  return Readable.from(pieces, { objectMode: false });
}

/** Asserts that `promise` rejects with a PlatformError of `code`. */
export async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp, context = ""): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.equal((err as { code?: string }).code, code, `${context}expected ${code}, got ${String(err)}`);
    if (message) assert.match((err as Error).message, message);
    return true;
  });
}

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

export function runStorageConformance(name: string, create: () => Promise<StorageDriver>): void {
  describe(`StorageDriver conformance: ${name}`, () => {
    /** A fresh store that takes multipart uploads, or null (and the test skipped) for a driver without them. */
    async function multipartStore(t: TestContext): Promise<(StorageDriver & MultipartUploads) | null> {
      const store = await create();
      if (hasMultipart(store)) return store;
      t.skip(`${name} has no multipart uploads`);
      return null;
    }

    let png: Buffer;
    before(async () => {
      png = await readFile(FIXTURE);
      assert.ok(png.length > 10_000, "fixture should be a real image");
    });

    it("round-trips a buffer byte for byte", async () => {
      const store = await create();
      const meta = await store.put("images/astronaut.png", png, { contentType: "image/png", fileName: "astronaut.png" });
      assert.equal(meta.key, "images/astronaut.png");
      assert.equal(meta.size, png.length);
      const got = await store.get("images/astronaut.png");
      assert.ok(got);
      assert.deepEqual(await readAll(got.body), png);
      assert.equal(got.meta.size, png.length);
      assert.equal(got.meta.contentType, "image/png");
    });

    it("stores from a stream without needing its length", async () => {
      const store = await create();
      const meta = await store.put("streamed/a.png", createReadStream(FIXTURE), { contentType: "image/png", fileName: "a.png" });
      assert.equal(meta.size, png.length);
      const got = await store.get("streamed/a.png");
      assert.ok(got);
      assert.equal(sha256(await readAll(got.body)), sha256(png));
    });

    it("reports metadata through head", async () => {
      const store = await create();
      const before = Date.now();
      await store.put("doc/readme.txt", Buffer.from("hello, darkroom\n"), { contentType: "text/plain; charset=utf-8", fileName: "readme.txt" });
      const meta = await store.head("doc/readme.txt");
      assert.ok(meta);
      const expected: Omit<ObjectMeta, "createdAt"> = {
        key: "doc/readme.txt",
        size: 16,
        contentType: "text/plain; charset=utf-8",
        fileName: "readme.txt",
        expiresAt: null,
      };
      const { createdAt, ...rest } = meta;
      assert.deepEqual(rest, expected);
      assert.ok(createdAt >= before - 1000 && createdAt <= Date.now() + 1000, `createdAt ${createdAt} should be about now`);
      assert.equal(await store.head("doc/missing.txt"), null);
      assert.equal(await store.get("doc/missing.txt"), null);
    });

    it("replaces an object on a second put", async () => {
      const store = await create();
      await store.put("k", Buffer.from("first version"), { contentType: "text/plain", fileName: "one.txt" });
      await store.put("k", Buffer.from("second"), { contentType: "application/octet-stream", fileName: "two.bin" });
      const got = await store.get("k");
      assert.ok(got);
      assert.equal((await readAll(got.body)).toString(), "second");
      assert.equal(got.meta.fileName, "two.bin");
      assert.equal(got.meta.size, 6);
    });

    it("serves inclusive byte ranges", async () => {
      const store = await create();
      await store.put("r.png", png, { contentType: "image/png", fileName: "r.png" });
      const slice = async (start: number, end: number): Promise<Buffer> => {
        const got = await store.get("r.png", { start, end });
        assert.ok(got);
        assert.equal(got.meta.size, png.length, "meta describes the whole object");
        return readAll(got.body);
      };
      assert.deepEqual(await slice(0, 0), png.subarray(0, 1));
      assert.deepEqual(await slice(0, 7), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), "PNG signature");
      assert.deepEqual(await slice(1000, 1999), png.subarray(1000, 2000));
      assert.deepEqual(await slice(png.length - 1, png.length - 1), png.subarray(png.length - 1));
      assert.deepEqual(await slice(0, png.length - 1), png);
      assert.deepEqual(await slice(png.length - 10, png.length + 100), png.subarray(png.length - 10), "end past the object is cut");
      await rejectsWith(store.get("r.png", { start: png.length, end: png.length + 5 }), "ERR_RANGE_NOT_SATISFIABLE");
      await rejectsWith(store.get("r.png", { start: 10, end: 5 }), "ERR_RANGE_NOT_SATISFIABLE");
    });

    it("deletes objects, and deleting a missing one is a no-op", async () => {
      const store = await create();
      await store.put("gone/soon.bin", Buffer.from([1, 2, 3]), { contentType: "application/octet-stream", fileName: "soon.bin" });
      await store.delete("gone/soon.bin");
      assert.equal(await store.head("gone/soon.bin"), null);
      assert.equal(await store.get("gone/soon.bin"), null);
      await store.delete("gone/soon.bin");
      await store.delete("never/was.bin");
    });

    it("expires objects and sweeps them", async () => {
      const store = await create();
      const start = Date.now();
      const meta = await store.put("tmp/short.bin", Buffer.from("short-lived"), { contentType: "application/octet-stream", fileName: "short.bin", expiresInSeconds: 5 });
      await store.put("tmp/forever.bin", Buffer.from("long-lived"), { contentType: "application/octet-stream", fileName: "forever.bin" });
      assert.ok(meta.expiresAt !== null && meta.expiresAt >= start + 5000 && meta.expiresAt <= Date.now() + 5000);
      assert.equal((await store.head("tmp/short.bin"))?.expiresAt, meta.expiresAt);

      assert.equal(await store.sweepExpired(Date.now()), 0, "nothing is due yet");
      assert.ok(await store.head("tmp/short.bin"));
      assert.equal(await store.sweepExpired(start + 60_000), 1);
      assert.equal(await store.head("tmp/short.bin"), null);
      assert.equal(await store.get("tmp/short.bin"), null);
      const kept = await store.get("tmp/forever.bin");
      assert.ok(kept);
      assert.equal((await readAll(kept.body)).toString(), "long-lived");
      assert.equal(await store.sweepExpired(start + 120_000), 0);
    });

    it("treats an already expired object as missing before any sweep", async () => {
      const store = await create();
      await store.put("tmp/zero.bin", Buffer.from("x"), { contentType: "application/octet-stream", fileName: "zero.bin", expiresInSeconds: 0 });
      assert.equal(await store.head("tmp/zero.bin"), null);
      assert.equal(await store.get("tmp/zero.bin"), null);
    });

    it("refuses a stream over maxBytes and leaves no object", async () => {
      const store = await create();
      await rejectsWith(
        store.put("big/file.png", trickle(png, 1024), { contentType: "image/png", fileName: "file.png", maxBytes: 5000 }),
        "ERR_FILE_TOO_LARGE",
      );
      assert.equal(await store.head("big/file.png"), null);
      await rejectsWith(store.put("big/file.png", png, { contentType: "image/png", fileName: "file.png", maxBytes: 5000 }), "ERR_FILE_TOO_LARGE");
      assert.equal(await store.head("big/file.png"), null);
      // Exactly at the limit is fine.
      const exact = await store.put("big/exact.bin", trickle(png.subarray(0, 5000), 999), { contentType: "image/png", fileName: "x", maxBytes: 5000 });
      assert.equal(exact.size, 5000);
    });

    it("keeps the previous version when a replacement is refused", async () => {
      const store = await create();
      await store.put("keep.bin", Buffer.from("original"), { contentType: "text/plain", fileName: "keep.bin" });
      await rejectsWith(store.put("keep.bin", trickle(png, 512), { contentType: "image/png", fileName: "x", maxBytes: 100 }), "ERR_FILE_TOO_LARGE");
      const got = await store.get("keep.bin");
      assert.ok(got);
      assert.equal((await readAll(got.body)).toString(), "original");
    });

    it("assembles a multipart upload in part order, whatever order parts arrive in", async (t) => {
      const store = await multipartStore(t);
      if (!store) return;
      const third = Math.ceil(png.length / 3);
      const pieces = [png.subarray(0, third), png.subarray(third, 2 * third), png.subarray(2 * third)];
      const upload = "upload-1";
      const etags = new Map<number, string>();
      for (const n of [3, 1, 2]) {
        const piece = pieces[n - 1] as Buffer;
        const part = await store.putPart("multi/astronaut.png", upload, n, n === 2 ? trickle(piece) : piece);
        assert.equal(part.size, piece.length);
        assert.equal(part.etag, sha256(piece), "etag is the part's sha256");
        etags.set(n, part.etag);
      }
      const meta = await store.completeMultipart(
        "multi/astronaut.png",
        upload,
        [2, 3, 1].map((n) => ({ partNumber: n, etag: etags.get(n) as string })),
        { contentType: "image/png", fileName: "astronaut.png" },
      );
      assert.equal(meta.size, png.length);
      const got = await store.get("multi/astronaut.png");
      assert.ok(got);
      assert.deepEqual(await readAll(got.body), png);
    });

    it("refuses a multipart completion with a wrong etag, and the upload stays completable", async (t) => {
      const store = await multipartStore(t);
      if (!store) return;
      const a = await store.putPart("m/x.bin", "up-2", 1, Buffer.from("hello "));
      const b = await store.putPart("m/x.bin", "up-2", 2, Buffer.from("world"));
      const wrong = b.etag.replace(/^./, (c) => (c === "0" ? "1" : "0"));
      await rejectsWith(
        store.completeMultipart("m/x.bin", "up-2", [{ partNumber: 1, etag: a.etag }, { partNumber: 2, etag: wrong }], { contentType: "text/plain", fileName: "x.bin" }),
        "ERR_BAD_REQUEST",
        /etag/,
      );
      assert.equal(await store.head("m/x.bin"), null);
      await rejectsWith(
        store.completeMultipart("m/x.bin", "up-2", [{ partNumber: 1, etag: a.etag }, { partNumber: 3, etag: b.etag }], { contentType: "text/plain", fileName: "x.bin" }),
        "ERR_BAD_REQUEST",
      );
      await store.completeMultipart("m/x.bin", "up-2", [{ partNumber: 1, etag: `"${a.etag}"` }, { partNumber: 2, etag: b.etag }], { contentType: "text/plain", fileName: "x.bin" });
      const got = await store.get("m/x.bin");
      assert.ok(got);
      assert.equal((await readAll(got.body)).toString(), "hello world");
    });

    it("refuses multipart parts over maxBytes and completion over the object's maxBytes", async (t) => {
      const store = await multipartStore(t);
      if (!store) return;
      await rejectsWith(store.putPart("m/y.bin", "up-3", 1, trickle(png, 1000), 2000), "ERR_FILE_TOO_LARGE");
      const p1 = await store.putPart("m/y.bin", "up-3", 1, Buffer.alloc(3000, 1));
      const p2 = await store.putPart("m/y.bin", "up-3", 2, Buffer.alloc(3000, 2));
      await rejectsWith(
        store.completeMultipart("m/y.bin", "up-3", [{ partNumber: 1, etag: p1.etag }, { partNumber: 2, etag: p2.etag }], { contentType: "x/y", fileName: "y", maxBytes: 5000 }),
        "ERR_FILE_TOO_LARGE",
      );
      assert.equal(await store.head("m/y.bin"), null);
    });

    it("counts a multipart upload's staged parts against maxBytes: the part that passes it is refused and not kept", async (t) => {
      const store = await multipartStore(t);
      if (!store) return;
      const cap = 10_000;
      const opts = { contentType: "application/octet-stream", fileName: "cap.bin", maxBytes: cap };
      const p1 = await store.putPart("m/cap.bin", "cap-1", 1, Buffer.alloc(4000, 1), cap);
      await store.putPart("m/cap.bin", "cap-1", 2, trickle(Buffer.alloc(4000, 2), 1000), cap);
      // 8,000 staged: a 3,000-byte part passes 10,000, streamed or whole.
      await rejectsWith(store.putPart("m/cap.bin", "cap-1", 3, trickle(Buffer.alloc(3000, 3), 500), cap), "ERR_FILE_TOO_LARGE", /10000 bytes.*8000 bytes/);
      await rejectsWith(store.putPart("m/cap.bin", "cap-1", 3, Buffer.alloc(3000, 3), cap), "ERR_FILE_TOO_LARGE");
      await rejectsWith(store.completeMultipart("m/cap.bin", "cap-1", [{ partNumber: 3, etag: "00" }], opts), "ERR_BAD_REQUEST", /not uploaded/);
      // Up to the cap exactly is fine.
      const p3 = await store.putPart("m/cap.bin", "cap-1", 3, Buffer.alloc(2000, 3), cap);
      await rejectsWith(store.putPart("m/cap.bin", "cap-1", 4, Buffer.alloc(1, 4), cap), "ERR_FILE_TOO_LARGE");
      // A part uploaded again replaces its earlier bytes: they do not count against it.
      const p2 = await store.putPart("m/cap.bin", "cap-1", 2, trickle(Buffer.alloc(1000, 2), 300), cap);
      const p4 = await store.putPart("m/cap.bin", "cap-1", 4, Buffer.alloc(3000, 4), cap);
      const parts = [p1, p2, p3, p4].map((p, i) => ({ partNumber: i + 1, etag: p.etag }));
      const meta = await store.completeMultipart("m/cap.bin", "cap-1", parts, opts);
      assert.equal(meta.size, cap);
      const got = await store.get("m/cap.bin");
      assert.ok(got);
      const bytes = await readAll(got.body);
      assert.deepEqual(bytes, Buffer.concat([Buffer.alloc(4000, 1), Buffer.alloc(1000, 2), Buffer.alloc(2000, 3), Buffer.alloc(3000, 4)]));
    });

    it("never lets parallel parts pass the upload's cap together", async (t) => {
      const store = await multipartStore(t);
      if (!store) return;
      const cap = 10_000;
      const settled = await Promise.allSettled(
        [1, 2, 3, 4, 5].map((n) => store.putPart("m/par.bin", "par-1", n, trickle(Buffer.alloc(3000, n), 500), cap).then((p) => ({ ...p, partNumber: n }))),
      );
      const accepted = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      for (const r of settled) if (r.status === "rejected") assert.equal((r.reason as { code?: string }).code, "ERR_FILE_TOO_LARGE");
      assert.ok(accepted.length <= 3, `${accepted.length} parts of 3,000 bytes accepted under a 10,000-byte cap`);
      if (accepted.length > 0) {
        const meta = await store.completeMultipart("m/par.bin", "par-1", accepted.map((p) => ({ partNumber: p.partNumber, etag: p.etag })), {
          contentType: "x/y",
          fileName: "par.bin",
          maxBytes: cap,
        });
        assert.equal(meta.size, accepted.length * 3000);
      }
    });

    it("does not destroy a caller's stream when refusing it", async () => {
      const store = await create();
      const source = trickle(Buffer.alloc(50_000, 7), 1000);
      await rejectsWith(store.put("s.bin", source, { contentType: "x/y", fileName: "s", maxBytes: 10_000 }), "ERR_FILE_TOO_LARGE");
      assert.equal(source.destroyed, false);
      assert.equal(source.isPaused(), true);
    });

    it("refuses a stream that fails midway and keeps no object, nor replaces an old one", async () => {
      const store = await create();
      await store.put("broken.bin", Buffer.from("before"), { contentType: "x/y", fileName: "b" });
      const source = new Readable({ read() {} });
      const pending = store.put("broken.bin", source, { contentType: "x/y", fileName: "b" });
      source.push(Buffer.alloc(1000));
      setImmediate(() => source.destroy(new Error("client went away")));
      await rejectsWith(pending, "ERR_BAD_REQUEST", /client went away/);
      const got = await store.get("broken.bin");
      assert.ok(got);
      assert.equal((await readAll(got.body)).toString(), "before");

      const fresh = new Readable({ read() {} });
      const failing = store.put("broken-new.bin", fresh, { contentType: "x/y", fileName: "b" });
      fresh.push(Buffer.alloc(1000));
      setImmediate(() => fresh.destroy(new Error("client went away")));
      await rejectsWith(failing, "ERR_BAD_REQUEST", /client went away/);
      assert.equal(await store.head("broken-new.bin"), null);
    });

    it("refuses a part stream that fails before the driver has prepared the upload", async (t) => {
      const store = await multipartStore(t);
      if (!store) return;
      const source = new Readable({ read() {} });
      const pending = store.putPart("p.bin", "early", 1, source);
      source.destroy(new Error("reset by peer"));
      await rejectsWith(pending, "ERR_BAD_REQUEST", /reset by peer/);
    });

    it("refuses keys that could escape the store", async () => {
      const store = await create();
      const opts = { contentType: "text/plain", fileName: "evil.txt" };
      for (const key of TRAVERSAL_KEYS) {
        const at = `key ${JSON.stringify(key)}: `;
        await rejectsWith(store.put(key, Buffer.from("evil"), opts), "ERR_BAD_REQUEST", undefined, at);
        await rejectsWith(store.put(key, trickle(Buffer.from("evil")), opts), "ERR_BAD_REQUEST", undefined, at);
        await rejectsWith(store.head(key), "ERR_BAD_REQUEST", undefined, at);
        await rejectsWith(store.get(key), "ERR_BAD_REQUEST", undefined, at);
        await rejectsWith(store.delete(key), "ERR_BAD_REQUEST", undefined, at);
      }
      await rejectsWith(store.put("a/".repeat(600) + "b", Buffer.from("x"), opts), "ERR_BAD_REQUEST");
    });

    it("refuses multipart keys, upload ids and part numbers that could escape the store", async (t) => {
      const store = await multipartStore(t);
      if (!store) return;
      const opts = { contentType: "text/plain", fileName: "evil.txt" };
      for (const key of TRAVERSAL_KEYS) {
        const at = `key ${JSON.stringify(key)}: `;
        await rejectsWith(store.putPart(key, "up-4", 1, Buffer.from("evil")), "ERR_BAD_REQUEST", undefined, at);
        await rejectsWith(store.completeMultipart(key, "up-4", [{ partNumber: 1, etag: "00" }], opts), "ERR_BAD_REQUEST", undefined, at);
      }
      for (const uploadId of ["../x", "..", ".", "a/b", "a\\b", "", "x".repeat(200)]) {
        await rejectsWith(store.putPart("ok.bin", uploadId, 1, Buffer.from("evil")), "ERR_BAD_REQUEST");
      }
      for (const partNumber of [0, -1, 1.5, 10_001, Number.NaN]) {
        await rejectsWith(store.putPart("ok.bin", "up-5", partNumber, Buffer.from("evil")), "ERR_BAD_REQUEST");
      }
      for (const uploadId of ["../x", "a/b", ""]) {
        await rejectsWith(store.completeMultipart("ok.bin", uploadId, [{ partNumber: 1, etag: "00" }], opts), "ERR_BAD_REQUEST");
      }
    });

    it("refuses invalid put options before storing anything", async () => {
      const store = await create();
      const bad = [
        { contentType: 1 as unknown as string, fileName: "x" },
        { contentType: "x/y", fileName: "x", expiresInSeconds: -1 },
        { contentType: "x/y", fileName: "x", expiresInSeconds: Number.NaN },
        { contentType: "x/y", fileName: "x", maxBytes: -1 },
      ];
      for (const opts of bad) await rejectsWith(store.put("opts.bin", Buffer.from("x"), opts), "ERR_BAD_REQUEST", undefined, JSON.stringify(opts));
      assert.equal(await store.head("opts.bin"), null);
    });

    it("binds a multipart upload to the key of its first part", async (t) => {
      const store = await multipartStore(t);
      if (!store) return;
      const opts = { contentType: "x/y", fileName: "o" };
      const part = await store.putPart("mp/one.bin", "bound", 1, Buffer.from("abc"));
      await rejectsWith(store.putPart("mp/other.bin", "bound", 2, Buffer.from("def")), "ERR_BAD_REQUEST", /different key/);
      await rejectsWith(store.completeMultipart("mp/other.bin", "bound", [{ partNumber: 1, etag: part.etag }], opts), "ERR_BAD_REQUEST", /different key/);
      await rejectsWith(store.completeMultipart("mp/one.bin", "nosuchupload", [{ partNumber: 1, etag: part.etag }], opts), "ERR_BAD_REQUEST", /unknown/);
      assert.equal(await store.head("mp/other.bin"), null);
      await store.completeMultipart("mp/one.bin", "bound", [{ partNumber: 1, etag: part.etag }], opts);
      assert.equal((await readAll((await store.get("mp/one.bin"))!.body)).toString(), "abc");
    });

    it("refuses bad completion part lists and bad put options without spending the upload", async (t) => {
      const store = await multipartStore(t);
      if (!store) return;
      const opts = { contentType: "x/y", fileName: "l" };
      const part = await store.putPart("mp/list.bin", "list", 1, Buffer.from("abc"));
      await rejectsWith(store.putPart("mp/list.bin", "list", 2, Buffer.from("def"), -1), "ERR_BAD_REQUEST", /maxBytes/);
      await rejectsWith(store.completeMultipart("mp/list.bin", "list", [], opts), "ERR_BAD_REQUEST", /at least one part/);
      const twice = [{ partNumber: 1, etag: part.etag }, { partNumber: 1, etag: part.etag }];
      await rejectsWith(store.completeMultipart("mp/list.bin", "list", twice, opts), "ERR_BAD_REQUEST", /listed twice/);
      await rejectsWith(store.completeMultipart("mp/list.bin", "list", [{ partNumber: 1, etag: 1 as unknown as string }], opts), "ERR_BAD_REQUEST", /no etag/);
      await rejectsWith(store.completeMultipart("mp/list.bin", "list", [{ partNumber: 1, etag: part.etag }], { ...opts, expiresInSeconds: -5 }), "ERR_BAD_REQUEST");
      // Etags compare without quotes and case.
      await store.completeMultipart("mp/list.bin", "list", [{ partNumber: 1, etag: `"${part.etag.toUpperCase()}"` }], opts);
      assert.equal((await store.head("mp/list.bin"))?.size, 3);
    });

    it("removes a completed upload: it cannot be completed twice", async (t) => {
      const store = await multipartStore(t);
      if (!store) return;
      const opts = { contentType: "x/y", fileName: "d", expiresInSeconds: 600 };
      const part = await store.putPart("mp/done.bin", "done", 1, Buffer.from("abc"));
      const meta = await store.completeMultipart("mp/done.bin", "done", [{ partNumber: 1, etag: part.etag }], opts);
      assert.equal(meta.expiresAt, meta.createdAt + 600_000);
      assert.deepEqual(await store.head("mp/done.bin"), meta);
      await rejectsWith(store.completeMultipart("mp/done.bin", "done", [{ partNumber: 1, etag: part.etag }], opts), "ERR_BAD_REQUEST", /unknown/);
    });

    it("sweeps multipart uploads idle for a day, not those idle for an hour", async (t) => {
      const store = await multipartStore(t);
      if (!store) return;
      const opts = { contentType: "x/y", fileName: "s" };
      const kept = await store.putPart("mp/kept.bin", "kept", 1, Buffer.from("abc"));
      assert.equal(await store.sweepExpired(Date.now() + 3600_000), 0);
      await store.completeMultipart("mp/kept.bin", "kept", [{ partNumber: 1, etag: kept.etag }], opts);
      const left = await store.putPart("mp/left.bin", "abandoned", 1, Buffer.from("abc"));
      assert.equal(await store.sweepExpired(Date.now() + 25 * 3600_000), 0, "uploads are not counted as objects");
      await rejectsWith(store.completeMultipart("mp/left.bin", "abandoned", [{ partNumber: 1, etag: left.etag }], opts), "ERR_BAD_REQUEST", /unknown/);
      assert.ok(await store.head("mp/kept.bin"), "objects without expiry outlive the sweep");
    });
  });
}
