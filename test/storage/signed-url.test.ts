import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { createUrlSigner, loadOrCreateSecret } from "../../src/storage/signed-url.js";

const NOW_MS = 1_700_000_000_000;
const NOW_SEC = NOW_MS / 1000;
const secret = randomBytes(32);
const signer = createUrlSigner(secret, { now: () => NOW_MS });

function refused(fn: () => void, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.equal((err as { code?: string }).code, "ERR_SIGNATURE_INVALID");
    if (message) assert.match((err as Error).message, message);
    return true;
  });
}

/** Replaces one query parameter in a signed query string. */
function withParam(query: string, name: string, value: string): string {
  const params = new URLSearchParams(query);
  params.set(name, value);
  return params.toString();
}

describe("signed URLs", () => {
  it("verify accepts what sign produced, in every query form", () => {
    const query = signer.sign("GET", "files/a b/astronaut.png", NOW_SEC + 60);
    const params = new URLSearchParams(query);
    assert.equal(params.get("expires"), String(NOW_SEC + 60));
    assert.match(params.get("sig") ?? "", /^[A-Za-z0-9_-]{43}$/, "32-byte base64url HMAC");
    signer.verify("GET", "files/a b/astronaut.png", query);
    signer.verify("GET", "files/a b/astronaut.png", `?${query}`);
    signer.verify("GET", "files/a b/astronaut.png", params);
    signer.verify("GET", "files/a b/astronaut.png", Object.fromEntries(params));
    signer.verify("get", "files/a b/astronaut.png", query);
  });

  it("is deterministic for the same inputs and differs per secret", () => {
    assert.equal(signer.sign("PUT", "k", NOW_SEC + 5), signer.sign("PUT", "k", NOW_SEC + 5));
    const other = createUrlSigner(randomBytes(32), { now: () => NOW_MS });
    assert.notEqual(other.sign("PUT", "k", NOW_SEC + 5), signer.sign("PUT", "k", NOW_SEC + 5));
    refused(() => other.verify("PUT", "k", signer.sign("PUT", "k", NOW_SEC + 5)), /mismatch/);
  });

  it("refuses a tampered signature", () => {
    const query = signer.sign("GET", "k.png", NOW_SEC + 60);
    const sig = new URLSearchParams(query).get("sig") as string;
    const flipped = (sig[0] === "A" ? "B" : "A") + sig.slice(1);
    refused(() => signer.verify("GET", "k.png", withParam(query, "sig", flipped)), /mismatch/);
    refused(() => signer.verify("GET", "k.png", withParam(query, "sig", sig.slice(0, -2))), /malformed/);
    refused(() => signer.verify("GET", "k.png", withParam(query, "sig", `${sig}==`)), /malformed/);
    refused(() => signer.verify("GET", "k.png", withParam(query, "sig", "")), /malformed/);
    refused(() => signer.verify("GET", "k.png", `${query}&sig=${sig}`), /missing/);
    refused(() => signer.verify("GET", "k.png", `expires=${NOW_SEC + 60}`), /missing/);
    refused(() => signer.verify("GET", "k.png", {}), /missing/);
  });

  it("refuses an extended expiry as tampering, not as expired", () => {
    const query = signer.sign("GET", "k.png", NOW_SEC + 60);
    refused(() => signer.verify("GET", "k.png", withParam(query, "expires", String(NOW_SEC + 3600))), /mismatch/);
    refused(() => signer.verify("GET", "k.png", withParam(query, "expires", `${NOW_SEC + 60}.0`)), /malformed expires/);
    refused(() => signer.verify("GET", "k.png", withParam(query, "expires", `-${NOW_SEC}`)), /malformed expires/);
  });

  it("refuses an expired signature, including at the exact second", () => {
    refused(() => signer.verify("GET", "old.png", signer.sign("GET", "old.png", NOW_SEC - 1)), /expired/);
    refused(() => signer.verify("GET", "old.png", signer.sign("GET", "old.png", NOW_SEC)), /expired/);
    signer.verify("GET", "old.png", signer.sign("GET", "old.png", NOW_SEC + 1));
  });

  it("refuses the wrong method", () => {
    const put = signer.sign("PUT", "up/load.bin", NOW_SEC + 60);
    refused(() => signer.verify("GET", "up/load.bin", put), /mismatch/);
    refused(() => signer.verify("DELETE", "up/load.bin", put), /mismatch/);
    signer.verify("PUT", "up/load.bin", put);
  });

  it("refuses a signature moved to another key", () => {
    const query = signer.sign("GET", "users/alice/photo.png", NOW_SEC + 60);
    refused(() => signer.verify("GET", "users/bob/photo.png", query), /mismatch/);
    refused(() => signer.verify("GET", "users/alice/photo.png2", query), /mismatch/);
    refused(() => signer.verify("GET", "users/alice", query), /mismatch/);
  });

  it("refuses to sign nonsense", () => {
    assert.throws(() => signer.sign("DELETE" as "GET", "k", NOW_SEC), { code: "ERR_INTERNAL" });
    assert.throws(() => signer.sign("GET", "k", NOW_SEC + 0.5), { code: "ERR_INTERNAL" });
    assert.throws(() => createUrlSigner(Buffer.alloc(4)), { code: "ERR_INTERNAL" });
  });
});

describe("loadOrCreateSecret", () => {
  const dirs: string[] = [];
  after(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });
  const tempDir = async (): Promise<string> => {
    const dir = await mkdtemp(path.join(tmpdir(), "darkroom-secret-"));
    dirs.push(dir);
    return dir;
  };

  it("creates a 32-byte secret with mode 0600 and returns the same one afterwards", async () => {
    const file = path.join(await tempDir(), "nested", "url-secret");
    const first = loadOrCreateSecret(file);
    assert.equal(first.length, 32);
    assert.deepEqual(await readFile(file), first);
    if (process.platform !== "win32") assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(loadOrCreateSecret(file), first);
    assert.notDeepEqual(loadOrCreateSecret(path.join(path.dirname(file), "other")), first);
  });

  it("refuses a secret file of the wrong size instead of replacing it", async () => {
    const file = path.join(await tempDir(), "url-secret");
    await writeFile(file, "short");
    assert.throws(() => loadOrCreateSecret(file), { code: "ERR_INTERNAL" });
    assert.equal(await readFile(file, "utf8"), "short");
  });

  it("tightens permissions on an existing secret", { skip: process.platform === "win32" }, async () => {
    const file = path.join(await tempDir(), "url-secret");
    const bytes = randomBytes(32);
    await writeFile(file, bytes, { mode: 0o644 });
    assert.deepEqual(loadOrCreateSecret(file), bytes);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  });
});
