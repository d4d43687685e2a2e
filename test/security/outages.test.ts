/**
 * Outages of what the gateway stands on answer as outages: a full disk is 507 with a retryable hint
 * and takes the gateway out of /ready; a PostgreSQL that went away is 503 retryable with
 * `Retry-After`; neither is a 500 that tells clients not to retry, and both recover on their own.
 * The disk is a small tmpfs (mounting one needs root, which CI has); the database outage is a TCP
 * proxy in front of the machine's PostgreSQL that the test cuts and restores.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, statfsSync, writeSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { MIN_FREE_BYTES } from "../../src/gateway/routes/ops.js";
import { http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { createTestDatabase, type TestDatabase } from "../store/pg-database.js";

const isRoot = process.getuid?.() === 0;

describe("a full disk", { timeout: 90_000, skip: isRoot ? false : "mounting a small tmpfs needs root (CI runs as root)" }, () => {
  let mountPoint: string;
  let p: TestPlatform;

  before(async () => {
    mountPoint = mkdtempSync(path.join(tmpdir(), "darkroom-full-disk-"));
    const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${MIN_FREE_BYTES + 16 * 1024 * 1024}`, "tmpfs", mountPoint], { encoding: "utf8" });
    assert.equal(mounted.status, 0, `mount tmpfs: ${mounted.stderr}`);
    mkdirSync(path.join(mountPoint, "data"));
    p = await startTestPlatform({ dataDir: path.join(mountPoint, "data") });
  });

  after(async () => {
    await p?.close();
    spawnSync("umount", [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  it("answers uploads with 507 retryable, says not ready, and recovers once space is freed", async () => {
    assert.equal((await fetch(`${p.url}/ready`)).status, 200);
    // Fill the disk to the last block.
    const filler = path.join(mountPoint, "filler");
    const fd = openSync(filler, "w");
    for (const size of [1024 * 1024, 4096, 1]) {
      try {
        for (;;) writeSync(fd, Buffer.alloc(size));
      } catch (error) {
        assert.equal((error as NodeJS.ErrnoException).code, "ENOSPC");
      }
    }
    closeSync(fd);
    assert.equal(statfsSync(mountPoint).bavail, 0);

    const ready = await fetch(`${p.url}/ready`);
    assert.equal(ready.status, 503);
    assert.match(((await ready.json()) as { detail: string }).detail, /bytes free/);

    const upload = await fetch(`${p.url}/files/upload`, { method: "POST", headers: { ...p.auth, "content-type": "application/octet-stream" }, body: new Blob([Buffer.alloc(512 * 1024, 1)]) });
    assert.equal(upload.status, 507);
    assert.equal(upload.headers.get("x-fal-retryable"), "true");
    assert.equal(upload.headers.get("retry-after"), "30");
    assert.equal(((await upload.json()) as { error_type: string }).error_type, "insufficient_storage");
    // Queue writes go to SQLite on the same disk: they either still fit in its pages or are a 507.
    const submit = await http(p, "POST", "/queue/darkroom/echo", { message: "on a full disk" });
    assert.ok(submit.status === 200 || submit.status === 507, `submit answered ${submit.status}: ${JSON.stringify(submit.body)}`);

    rmSync(filler);
    assert.equal((await fetch(`${p.url}/ready`)).status, 200);
    const retried = await fetch(`${p.url}/files/upload`, { method: "POST", headers: { ...p.auth, "content-type": "application/octet-stream" }, body: new Blob([Buffer.alloc(512 * 1024, 1)]) });
    assert.equal(retried.status, 200);
  });
});

/** A TCP proxy to PostgreSQL whose connections the test can cut. */
class CuttableProxy {
  readonly server: Server;
  readonly #sockets = new Set<Socket>();
  up = true;

  constructor(target: { host: string; port: number }) {
    this.server = createServer((client) => {
      if (!this.up) return void client.destroy();
      const upstream = connect(target.port, target.host);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on("close", () => this.#sockets.delete(s));
        s.on("error", () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return (this.server.address() as { port: number }).port;
  }

  cut(): void {
    this.up = false;
    for (const s of this.#sockets) s.destroy();
  }
}

describe("PostgreSQL going away", { timeout: 90_000 }, () => {
  let db: TestDatabase;
  let proxy: CuttableProxy;
  let p: TestPlatform;

  before(async () => {
    db = await createTestDatabase();
    const target = new URL(db.url);
    proxy = new CuttableProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const port = await proxy.listen();
    const viaProxy = new URL(db.url);
    viaProxy.port = String(port);
    // A short lease: the outage below outlasts it, as a real one outlasts 30 s.
    p = await startTestPlatform({ env: { DARKROOM_DATABASE_URL: viaProxy.toString(), DARKROOM_LEASE_MS: "2000" } });
  });

  after(async () => {
    await p?.close();
    proxy?.cut();
    await new Promise((resolve) => proxy?.server.close(resolve));
    await db?.drop();
  });

  it("answers 503 retryable with Retry-After while it is down, and works again when it is back", async () => {
    assert.equal((await http(p, "POST", "/queue/darkroom/echo", { message: "before" })).status, 200);
    proxy.cut();
    const during = await http(p, "POST", "/queue/darkroom/echo", { message: "during" });
    assert.equal(during.status, 503, JSON.stringify(during.body));
    assert.equal(during.headers.get("x-fal-retryable"), "true");
    assert.equal(during.headers.get("retry-after"), "5");
    assert.equal(during.body.error_type, "service_unavailable");
    assert.equal((await fetch(`${p.url}/ready`)).status, 503);

    proxy.up = true;
    let after: { status: number } = { status: 0 };
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 250))) {
      after = await http(p, "POST", "/queue/darkroom/echo", { message: "after" });
      if (after.status === 200) break;
      assert.equal(after.status, 503);
    }
    assert.equal(after.status, 200);
  });

  it("keeps the result of a sync run that finished while it was down, and answers it when it is back", async () => {
    // A warm runner, then a run that is running before the cut and finishes during the outage.
    assert.equal((await http(p, "POST", "/run/darkroom/echo", { message: "warm" })).status, 200);
    const pending = http(p, "POST", "/run/darkroom/echo", { message: "finished during the outage", sleep_ms: 1500 });
    for (let running = false; !running; await new Promise((resolve) => setTimeout(resolve, 50))) {
      const listed = await http(p, "GET", "/v1/requests?limit=1");
      running = listed.body.requests?.[0]?.state === "RUNNING";
    }
    proxy.cut();
    // Past the run's end and past its lease: the outcome must still be waiting, not retried or failed.
    await new Promise((resolve) => setTimeout(resolve, 5000));
    proxy.up = true;
    const done = await Promise.race([
      pending,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no answer 20 s after the store came back: the result was lost")), 20_000)),
    ]);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.message, "finished during the outage");
    // Ended once, on its first attempt: not retried from an expired lease.
    const id = done.headers.get("x-fal-request-id");
    assert.ok(id);
    const record = await http(p, "GET", `/v1/requests/${id}`);
    assert.equal(record.status, 200, JSON.stringify(record.body));
    assert.equal(record.body.status, "COMPLETED");
    assert.equal(record.body.attempt, 1);
  });
});
