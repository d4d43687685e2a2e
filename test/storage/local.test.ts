import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { assertValidKey, createLocalStorage } from "../../src/storage/local-storage.js";
import { FIXTURE, TRAVERSAL_KEYS, readAll, rejectsWith, runStorageConformance, trickle } from "./storage.case.js";

const temps: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "darkroom-local-"));
  temps.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(temps.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Every file below `dir`, relative to it, sorted. */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

runStorageConformance("local", async () => createLocalStorage({ root: await tempDir() }));

describe("local storage driver", () => {
  it("creates nothing outside its root, or anywhere at all, for traversal attempts", async () => {
    // The store lives two levels down so that an escape by one or two `..` would land in `outer`.
    const outer = await tempDir();
    const root = path.join(outer, "data", "store");
    const store = createLocalStorage({ root });
    const opts = { contentType: "text/plain", fileName: "evil.txt" };
    for (const key of [...TRAVERSAL_KEYS, "../../escaped", "a/../../../escaped", "../store-sibling/x"]) {
      await rejectsWith(store.put(key, Buffer.from("evil"), opts), "ERR_BAD_REQUEST");
      await rejectsWith(store.put(key, trickle(Buffer.from("evil")), opts), "ERR_BAD_REQUEST");
      await rejectsWith(store.putPart(key, "u1", 1, Buffer.from("evil")), "ERR_BAD_REQUEST");
    }
    for (const uploadId of ["../../escaped", "..", "../multipart"]) {
      await rejectsWith(store.putPart("ok.txt", uploadId, 1, Buffer.from("evil")), "ERR_BAD_REQUEST");
    }
    assert.deepEqual(await listFiles(outer), []);
  });

  it("lays objects out under objects/<key> with a JSON sidecar", async () => {
    const root = await tempDir();
    const store = createLocalStorage({ root });
    const png = await readFile(FIXTURE);
    await store.put("a/b/astronaut.png", png, { contentType: "image/png", fileName: "astronaut.png", expiresInSeconds: 60 });
    const files = await listFiles(root);
    assert.equal(files.length, 2, files.join(", "));
    const metaFile = files.find((f) => f.endsWith("~meta.json"));
    const dataFile = files.find((f) => f.endsWith(".data"));
    assert.equal(metaFile, path.join("objects", "a", "b", "astronaut.png~meta.json"));
    assert.ok(metaFile !== undefined && dataFile !== undefined);
    assert.ok(dataFile.startsWith(path.join("objects", "a", "b", "astronaut.png~")), dataFile);
    assert.deepEqual(await readFile(path.join(root, dataFile)), png);
    const meta = JSON.parse(await readFile(path.join(root, metaFile), "utf8")) as Record<string, unknown>;
    assert.equal(meta["size"], png.length);
    assert.equal(meta["contentType"], "image/png");
    assert.equal(meta["fileName"], "astronaut.png");
    assert.equal(meta["expiresAt"], (meta["createdAt"] as number) + 60_000);
  });

  it("lets `a` and `a/b` exist side by side", async () => {
    const store = createLocalStorage({ root: await tempDir() });
    await store.put("a", Buffer.from("parent"), { contentType: "text/plain", fileName: "a" });
    await store.put("a/b", Buffer.from("child"), { contentType: "text/plain", fileName: "b" });
    const a = await store.get("a");
    const b = await store.get("a/b");
    assert.equal((await readAll(a!.body)).toString(), "parent");
    assert.equal((await readAll(b!.body)).toString(), "child");
  });

  it("leaves no temp files behind after a refused upload or a replaced object", async () => {
    const root = await tempDir();
    const store = createLocalStorage({ root });
    const png = await readFile(FIXTURE);
    await rejectsWith(store.put("x/y.png", trickle(png), { contentType: "image/png", fileName: "y.png", maxBytes: 1000 }), "ERR_FILE_TOO_LARGE");
    assert.deepEqual(await listFiles(root), []);
    await store.put("x/y.png", Buffer.from("one"), { contentType: "text/plain", fileName: "y" });
    await store.put("x/y.png", Buffer.from("two"), { contentType: "text/plain", fileName: "y" });
    const files = await listFiles(root);
    assert.equal(files.length, 2, `old version deleted: ${files.join(", ")}`);
  });

  it("treats expired objects as missing by its clock, and sweeps with an injected time", async () => {
    let clock = 1_700_000_000_000;
    const store = createLocalStorage({ root: await tempDir(), now: () => clock });
    const meta = await store.put("e/1.txt", Buffer.from("x"), { contentType: "text/plain", fileName: "1.txt", expiresInSeconds: 10 });
    assert.equal(meta.createdAt, clock);
    assert.equal(meta.expiresAt, clock + 10_000);
    clock += 9_999;
    assert.ok(await store.head("e/1.txt"));
    clock += 1;
    assert.equal(await store.head("e/1.txt"), null);
    assert.equal(await store.get("e/1.txt"), null);
    assert.equal(await store.sweepExpired(), 1);
    assert.equal(await store.sweepExpired(), 0);
  });

  it("sweeps crash leftovers once they are old, and drops emptied folders", async () => {
    const root = await tempDir();
    const store = createLocalStorage({ root });
    await store.put("keep/me.txt", Buffer.from("kept"), { contentType: "text/plain", fileName: "me.txt" });
    const dir = path.join(root, "objects", "keep");
    const stale = path.join(dir, "me.txt~0123456789abcdef.data.tmp");
    const orphan = path.join(dir, "me.txt~fedcba9876543210.data");
    const fresh = path.join(dir, "me.txt~1111111111111111.data.tmp");
    await writeFile(stale, "half");
    await writeFile(orphan, "old");
    await writeFile(fresh, "in progress");
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    await utimes(stale, twoHoursAgo, twoHoursAgo);
    await utimes(orphan, twoHoursAgo, twoHoursAgo);
    await store.put("gone/x.txt", Buffer.from("x"), { contentType: "text/plain", fileName: "x", expiresInSeconds: 1 });

    assert.equal(await store.sweepExpired(Date.now() + 5_000), 1);
    const files = await listFiles(root);
    assert.ok(files.includes(path.join("objects", "keep", "me.txt~1111111111111111.data.tmp")), "a fresh temp file may be a live upload");
    assert.ok(!files.some((f) => f.includes("0123456789abcdef") || f.includes("fedcba9876543210")), files.join(", "));
    await assert.rejects(stat(path.join(root, "objects", "gone")), { code: "ENOENT" });
    const kept = await store.get("keep/me.txt");
    assert.equal((await readAll(kept!.body)).toString(), "kept");
  });

  it("cleans up a completed multipart upload and drops abandoned ones", async () => {
    const root = await tempDir();
    const store = createLocalStorage({ root });
    const part = await store.putPart("mp/done.bin", "done", 1, Buffer.from("abc"));
    assert.deepEqual(await readFile(path.join(root, "multipart", "done", "1")), Buffer.from("abc"));
    await store.completeMultipart("mp/done.bin", "done", [{ partNumber: 1, etag: part.etag }], { contentType: "x/y", fileName: "d" });
    await assert.rejects(stat(path.join(root, "multipart", "done")), { code: "ENOENT" });

    await store.putPart("mp/left.bin", "abandoned", 1, Buffer.from("abc"));
    await store.sweepExpired(Date.now() + 3600_000);
    assert.ok(await stat(path.join(root, "multipart", "abandoned")), "an hour idle is not abandoned yet");
    await store.sweepExpired(Date.now() + 25 * 3600_000);
    await assert.rejects(stat(path.join(root, "multipart", "abandoned")), { code: "ENOENT" });
  });

  it("assertValidKey accepts ordinary keys and refuses the rest", () => {
    for (const key of ["a", "a/b/c.png", "uploads/2024-01-01/file_name.v2.tar.gz", ".hidden", "a/...", "A-Z_0.9"]) assertValidKey(key);
    for (const key of [...TRAVERSAL_KEYS, "a b", "a?b", "é", "a\0b", "x".repeat(1025), `${"x".repeat(201)}/y`]) {
      assert.throws(() => assertValidKey(key), { code: "ERR_BAD_REQUEST" }, JSON.stringify(key));
    }
  });
});
