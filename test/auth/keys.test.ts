import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { ADMIN_KEY_FILE, KeyService, parseAuthorization } from "../../src/auth/keys.js";
import { hashSecret, SecretVerifier, verifySecret } from "../../src/auth/secrets.js";
import { appAlias, TOKEN_SECRET_FILE, TokenService } from "../../src/auth/tokens.js";
import type { Store } from "../../src/store/store.js";
import { memoryStore } from "../helpers/memory-store.js";

let dir: string;
let store: Store;

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "darkroom-auth-"));
});

after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  store = await memoryStore();
});

afterEach(async () => {
  await store.close();
});

async function freshDir(): Promise<string> {
  return fs.mkdtemp(path.join(dir, "case-"));
}

async function fileMode(file: string): Promise<number> {
  return (await fs.stat(file)).mode & 0o777;
}

describe("secret hashing", () => {
  it("hashes with scrypt in the documented encoding and verifies", async () => {
    const encoded = await hashSecret("s3cret");
    assert.match(encoded, /^scrypt\$16384\$8\$1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
    assert.equal(await verifySecret("s3cret", encoded), true);
    assert.equal(await verifySecret("s3cret!", encoded), false);
    assert.equal(await verifySecret("", encoded), false);
  });

  it("salts: two hashes of one secret differ and both verify", async () => {
    const [a, b] = await Promise.all([hashSecret("same"), hashSecret("same")]);
    assert.notEqual(a, b);
    assert.equal(await verifySecret("same", a), true);
    assert.equal(await verifySecret("same", b), true);
  });

  it("rejects malformed and out-of-bounds encodings without throwing", async () => {
    const good = await hashSecret("x");
    const parts = good.split("$");
    for (const bad of ["", "bcrypt$1$2$3$4$5", "scrypt$16384$8$1$salt", `scrypt$1000$8$1$${parts[4]}$${parts[5]}`, `scrypt$${2 ** 30}$8$1$${parts[4]}$${parts[5]}`]) {
      assert.equal(await verifySecret("x", bad), false, bad);
    }
  });

  it("caches successes only, per stored hash, for a limited time", async () => {
    let clock = 0;
    const verifier = new SecretVerifier({ ttlMs: 1000, now: () => clock });
    const encoded = await hashSecret("pw");
    assert.equal(await verifier.verify("k1", "wrong", encoded), false);
    assert.equal(verifier.size, 0, "failures are not cached");
    assert.equal(await verifier.verify("k1", "pw", encoded), true);
    assert.equal(verifier.size, 1);
    assert.equal(await verifier.verify("k1", "pw", encoded), true);
    // A replaced hash makes the old secret miss, even while cached.
    const replaced = await hashSecret("new-pw");
    assert.equal(await verifier.verify("k1", "pw", replaced), false);
    assert.equal(await verifier.verify("k1", "new-pw", replaced), true);
    clock += 2000;
    assert.equal(await verifier.verify("k1", "new-pw", replaced), true, "an expired entry is re-verified, not refused");
    verifier.forget("k1");
    assert.equal(verifier.size, 0);
  });

  it("keeps remembering a secret while it is used, and forgets it a TTL after its last use", async () => {
    let clock = 0;
    const verifier = new SecretVerifier({ ttlMs: 1000, now: () => clock });
    const encoded = await hashSecret("pw");
    assert.equal(await verifier.verify("k1", "pw", encoded), true);
    for (let i = 0; i < 5; i++) {
      clock += 800;
      assert.equal(verifier.remembers("k1", "pw", encoded), true, `use ${i} at ${clock} ms`);
    }
    assert.equal(verifier.remembers("k1", "pw", await hashSecret("other")), false, "a replaced hash still misses");
    clock += 1001;
    assert.equal(verifier.remembers("k1", "pw", encoded), false);
  });

  it("evicts the least recently used entry", async () => {
    const verifier = new SecretVerifier({ maxEntries: 2 });
    const encoded = await hashSecret("pw");
    await verifier.verify("a", "pw", encoded);
    await verifier.verify("b", "pw", encoded);
    await verifier.verify("a", "pw", encoded);
    await verifier.verify("c", "pw", encoded);
    assert.equal(verifier.size, 2);
    verifier.forget("b");
    assert.equal(verifier.size, 2, "b was the one evicted");
  });
});

describe("authorization header parsing", () => {
  it("accepts Key and Bearer with id:secret, and Bearer with a JWT", () => {
    assert.deepEqual(parseAuthorization("Key dk_1:abc"), { kind: "key", id: "dk_1", secret: "abc" });
    assert.deepEqual(parseAuthorization("bearer dk_1:a:b"), { kind: "key", id: "dk_1", secret: "a:b" });
    assert.deepEqual(parseAuthorization("Bearer aa.bb.cc"), { kind: "token", token: "aa.bb.cc" });
    for (const bad of [undefined, "", "Key", "Basic dk_1:abc", "Key :abc", "Key dk_1:", "Key aa.bb.cc", "Bearer nocolon", "Key a b:c"]) {
      assert.equal(parseAuthorization(bad), null, String(bad));
    }
  });
});

describe("KeyService", () => {
  it("creates keys whose secret verifies under the Key and Bearer schemes", async () => {
    const keys = new KeyService({ store });
    const { id, secret, record } = await keys.create({ name: "ci", scope: "api" });
    assert.match(id, /^dk_[0-9a-f]{24}$/);
    assert.equal(Buffer.from(secret, "base64url").length, 32);
    assert.equal(record.scope, "api");
    assert.notEqual(record.secretHash, secret);
    assert.equal(await verifySecret(secret, record.secretHash), true);

    const viaKey = await keys.verify(`Key ${id}:${secret}`);
    assert.equal(viaKey?.id, id);
    assert.equal(viaKey?.name, "ci");
    assert.equal(viaKey?.via, "key");
    assert.equal((await keys.verify(`Bearer ${id}:${secret}`))?.id, id);
    assert.equal((await keys.verify(`key ${id}:${secret}`))?.id, id);
  });

  it("rejects wrong secrets, unknown ids and missing headers", async () => {
    const keys = new KeyService({ store });
    const { id, secret } = await keys.create({ name: "ci", scope: "api" });
    assert.equal(await keys.verify(`Key ${id}:${secret}x`), null);
    assert.equal(await keys.verify(`Key dk_000000000000000000000000:${secret}`), null);
    assert.equal(await keys.verify(undefined), null);
    assert.equal(await keys.verify(`Basic ${id}:${secret}`), null);
  });

  it("rejects a revoked key, even right after a cached success", async () => {
    const keys = new KeyService({ store });
    const { id, secret } = await keys.create({ name: "temp", scope: "api" });
    assert.ok(await keys.verify(`Key ${id}:${secret}`));
    assert.equal(await keys.revoke(id), true);
    assert.equal(await keys.verify(`Key ${id}:${secret}`), null);
    assert.equal(await keys.revoke("dk_missing"), false);
    const listed = await keys.list();
    assert.equal(listed.length, 1);
    assert.ok(listed[0]!.revokedAt !== null);
  });

  it("records last use", async () => {
    let clock = 1_000_000;
    const keys = new KeyService({ store, now: () => clock });
    const { id, secret } = await keys.create({ name: "ci", scope: "api" });
    clock += 5000;
    await keys.verify(`Key ${id}:${secret}`);
    const touched = await waitFor(async () => ((await store.getKey(id))?.lastUsedAt === clock ? true : null));
    assert.ok(touched);
  });

  it("writes last use at most once per interval, also while the key record is cached", async () => {
    let clock = 2_000_000;
    let touches = 0;
    const counting: Store = Object.create(store) as Store;
    counting.touchKey = (id, now) => {
      touches += 1;
      return store.touchKey(id, now);
    };
    const keys = new KeyService({ store: counting, now: () => clock, touchIntervalMs: 60_000 });
    const { id, secret } = await keys.create({ name: "busy", scope: "api" });
    for (let i = 0; i < 20; i++) {
      clock += 10; // 20 calls within the 1 s record cache
      assert.ok(await keys.verify(`Key ${id}:${secret}`));
    }
    assert.equal(touches, 1, "one write for twenty calls");
    clock += 61_000;
    assert.ok(await keys.verify(`Key ${id}:${secret}`));
    assert.equal(touches, 2, "written again once the interval has passed");
  });

  it("generates the admin key once, saves it 0600, and reports it only the first time", async () => {
    const dataDir = await freshDir();
    const keys = new KeyService({ store });
    const first = await keys.ensureAdminKey({ dataDir, adminKeyEnv: null });
    assert.equal(first.source, "generated");
    assert.ok(first.credentials, "credentials returned for printing");
    const file = path.join(dataDir, ADMIN_KEY_FILE);
    assert.equal(first.file, file);
    assert.equal(await fs.readFile(file, "utf8"), `${first.credentials}\n`);
    assert.equal(await fileMode(file), 0o600);

    const admin = await keys.verify(`Key ${first.credentials}`);
    assert.equal(admin?.scope, "admin");
    assert.equal(admin?.id, first.id);

    const second = await keys.ensureAdminKey({ dataDir, adminKeyEnv: undefined });
    assert.deepEqual(second, { id: first.id, source: "existing", credentials: null, file: null });
    assert.equal((await keys.list()).length, 1, "no second admin key");
    assert.equal(await fs.readFile(file, "utf8"), `${first.credentials}\n`);
  });

  it("makes a new admin key when the only one was revoked", async () => {
    const dataDir = await freshDir();
    const keys = new KeyService({ store });
    const first = await keys.ensureAdminKey({ dataDir });
    await keys.revoke(first.id);
    const second = await keys.ensureAdminKey({ dataDir });
    assert.equal(second.source, "generated");
    assert.notEqual(second.id, first.id);
    assert.equal(await fs.readFile(path.join(dataDir, ADMIN_KEY_FILE), "utf8"), `${second.credentials}\n`);
  });

  it("provisions DARKROOM_ADMIN_KEY idempotently, without a file or printing", async () => {
    const dataDir = await freshDir();
    const keys = new KeyService({ store });
    const env = "ops-admin:correct-horse-battery-staple";
    const first = await keys.ensureAdminKey({ dataDir, adminKeyEnv: env });
    assert.deepEqual(first, { id: "ops-admin", source: "env", credentials: null, file: null });
    await assert.rejects(fs.stat(path.join(dataDir, ADMIN_KEY_FILE)), { code: "ENOENT" });
    const admin = await keys.verify(`Key ${env}`);
    assert.equal(admin?.id, "ops-admin");
    assert.equal(admin?.scope, "admin");

    const hashBefore = (await store.getKey("ops-admin"))!.secretHash;
    assert.deepEqual(await keys.ensureAdminKey({ dataDir, adminKeyEnv: env }), first);
    assert.equal((await store.getKey("ops-admin"))!.secretHash, hashBefore, "same secret: hash untouched");
    assert.equal((await keys.list()).length, 1);

    // With the env key present, no key is generated either.
    assert.equal((await keys.ensureAdminKey({ dataDir })).source, "existing");
  });

  it("two servers provisioning the same DARKROOM_ADMIN_KEY at once both start (a fleet on one database)", async () => {
    const dataDir = await freshDir();
    const env = "fleet-admin:shared-secret-for-every-gateway";
    // Each reads "no such key" before either writes: the second create hits the first one's row.
    let reads = 0;
    let release!: () => void;
    const bothRead = new Promise<void>((resolve) => (release = resolve));
    const racing: Store = Object.create(store) as Store;
    racing.getKey = async (id) => {
      const record = await store.getKey(id);
      if (record === null && ++reads <= 2) {
        if (reads === 2) release();
        await bothRead;
      }
      return record;
    };
    const results = await Promise.all([new KeyService({ store: racing }).ensureAdminKey({ dataDir, adminKeyEnv: env }), new KeyService({ store: racing }).ensureAdminKey({ dataDir, adminKeyEnv: env })]);
    assert.deepEqual(results.map((r) => r.source), ["env", "env"]);
    const keys = new KeyService({ store });
    assert.equal((await keys.verify(`Key ${env}`))?.scope, "admin");
    assert.equal((await keys.list()).filter((k) => k.id === "fleet-admin").length, 1);
  });

  it("brings an existing DARKROOM_ADMIN_KEY in line when its secret changed", async () => {
    const dataDir = await freshDir();
    const keys = new KeyService({ store });
    await keys.ensureAdminKey({ dataDir, adminKeyEnv: "ops:first-secret-value" });
    assert.ok(await keys.verify("Key ops:first-secret-value"));
    const changed = keys.ensureAdminKey({ dataDir, adminKeyEnv: "ops:second-secret-value" });
    await changed;
    assert.equal(await keys.verify("Key ops:first-secret-value"), null);
    assert.equal((await keys.verify("Key ops:second-secret-value"))?.scope, "admin");
  });

  it("refuses a malformed DARKROOM_ADMIN_KEY", async () => {
    const keys = new KeyService({ store });
    for (const bad of ["nocolon", ":secret", "id:", "bad id:secret"]) {
      await assert.rejects(keys.ensureAdminKey({ dataDir: dir, adminKeyEnv: bad }), /DARKROOM_ADMIN_KEY/, bad);
    }
  });
});

describe("tokens", () => {
  let tokenDir: string;
  before(async () => {
    tokenDir = await fs.mkdtemp(path.join(os.tmpdir(), "darkroom-tokens-"));
  });
  after(async () => {
    await fs.rm(tokenDir, { recursive: true, force: true });
  });

  it("persist their secret in a 0600 file across restarts", async () => {
    const a = await TokenService.open(tokenDir);
    const file = path.join(tokenDir, TOKEN_SECRET_FILE);
    assert.equal(await fileMode(file), 0o600);
    const { token } = a.issue({ keyId: "dk_1", scope: "api", allowedApps: ["flux"] });
    const b = await TokenService.open(tokenDir);
    assert.equal(b.verify(token)?.sub, "dk_1");
    const otherDir = await fs.mkdtemp(path.join(tokenDir, "other-"));
    assert.equal((await TokenService.open(otherDir)).verify(token), null, "another secret rejects it");
  });

  it("issues a compact HS256 JWT with the documented claims", async () => {
    const clock = 1_750_000_000_000;
    const tokens = await TokenService.open(tokenDir, { now: () => clock });
    const { token, claims } = tokens.issue({ keyId: "dk_1", scope: "api", allowedApps: ["flux"], ttlSec: 300 });
    const [header, payload, signature] = token.split(".");
    assert.deepEqual(JSON.parse(Buffer.from(header!, "base64url").toString()), { alg: "HS256", typ: "JWT" });
    assert.deepEqual(JSON.parse(Buffer.from(payload!, "base64url").toString()), claims);
    assert.equal(Buffer.from(signature!, "base64url").length, 32);
    assert.equal(claims.sub, "dk_1");
    assert.equal(claims.scope, "api");
    assert.deepEqual(claims.allowed_apps, ["flux"]);
    assert.equal(claims.iat, 1_750_000_000);
    assert.equal(claims.exp, 1_750_000_300);
    assert.match(claims.jti, /^[A-Za-z0-9_-]{22}$/);
    assert.deepEqual(tokens.verify(token, { app: "flux" }), claims);
    assert.notEqual(tokens.issue({ keyId: "dk_1", scope: "api", allowedApps: [] }).claims.jti, claims.jti);
  });

  it("clamps the lifetime to 10 s … 1 h, 120 s by default", async () => {
    const tokens = await TokenService.open(tokenDir);
    const ttl = (ttlSec?: number): number => {
      const { claims } = tokens.issue({ keyId: "k", scope: "api", allowedApps: [], ...(ttlSec === undefined ? {} : { ttlSec }) });
      return claims.exp - claims.iat;
    };
    assert.equal(ttl(), 120);
    assert.equal(ttl(1), 10);
    assert.equal(ttl(-5), 10);
    assert.equal(ttl(99_999), 3600);
    assert.equal(ttl(Number.NaN), 120);
    assert.equal(ttl(60.9), 60);
  });

  it("expire", async () => {
    let clock = 1_750_000_000_000;
    const tokens = await TokenService.open(tokenDir, { now: () => clock });
    const { token } = tokens.issue({ keyId: "k", scope: "api", allowedApps: ["flux"], ttlSec: 30 });
    clock += 29_000;
    assert.ok(tokens.verify(token));
    clock += 1_000;
    assert.equal(tokens.verify(token), null);
  });

  it("reject tampering: payload, signature, header and shape", async () => {
    const tokens = await TokenService.open(tokenDir);
    const { token, claims } = tokens.issue({ keyId: "k", scope: "api", allowedApps: ["flux"] });
    const [header, payload, signature] = token.split(".") as [string, string, string];

    const elevated = Buffer.from(JSON.stringify({ ...claims, scope: "admin" })).toString("base64url");
    assert.equal(tokens.verify(`${header}.${elevated}.${signature}`), null);
    const widened = Buffer.from(JSON.stringify({ ...claims, allowed_apps: ["flux", "sdxl"] })).toString("base64url");
    assert.equal(tokens.verify(`${header}.${widened}.${signature}`), null);

    const lastChar = signature.at(-1)!;
    const flipped = signature.slice(0, -1) + (lastChar === "A" ? "B" : "A");
    assert.equal(tokens.verify(`${header}.${payload}.${flipped}`), null);
    assert.equal(tokens.verify(`${header}.${payload}.`), null);

    const none = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
    assert.equal(tokens.verify(`${none}.${payload}.`), null);
    assert.equal(tokens.verify(`${none}.${payload}.${signature}`), null);
    assert.equal(tokens.verify("garbage"), null);
    assert.equal(tokens.verify(`${token}.extra`), null);
  });

  it("are bound to their apps", async () => {
    const tokens = await TokenService.open(tokenDir);
    const { token } = tokens.issue({ keyId: "k", scope: "api", allowedApps: ["flux"] });
    assert.ok(tokens.verify(token, { app: "flux" }));
    assert.ok(tokens.verify(token, { app: "fal-ai/flux/dev" }), "a full app id matches by alias");
    assert.equal(tokens.verify(token, { app: "sdxl" }), null);
    assert.equal(tokens.verify(token, { app: "fal-ai/sdxl" }), null);
    const { token: none } = tokens.issue({ keyId: "k", scope: "api", allowedApps: [] });
    assert.equal(tokens.verify(none, { app: "flux" }), null);
    assert.equal(appAlias("workflows/me/pipeline/run"), "pipeline");
    assert.equal(appAlias("darkroom/echo"), "echo");
    assert.equal(appAlias("echo"), "echo");
  });

  it("authenticate through KeyService as Bearer, tied to the live key", async () => {
    let clock = 1_750_000_000_000;
    const tokens = await TokenService.open(tokenDir, { now: () => clock });
    const keys = new KeyService({ store, tokens, now: () => clock });
    const { id } = await keys.create({ name: "browser", scope: "api" });
    const { token } = tokens.issue({ keyId: id, scope: "admin", allowedApps: ["flux"] });

    const viaToken = await keys.verify(`Bearer ${token}`, { app: "fal-ai/flux/dev" });
    assert.equal(viaToken?.id, id);
    assert.equal(viaToken?.via, "token");
    assert.equal(viaToken?.scope, "api", "a token never exceeds its key's scope");
    assert.deepEqual(viaToken?.token?.allowed_apps, ["flux"]);
    assert.equal(await keys.verify(`Bearer ${token}`, { app: "sdxl" }), null);
    assert.equal(await keys.verify(`Key ${token}`), null, "tokens are Bearer only");

    clock += 121_000;
    assert.equal(await keys.verify(`Bearer ${token}`), null, "expired");
    clock -= 121_000;
    await keys.revoke(id);
    assert.equal(await keys.verify(`Bearer ${token}`), null, "revoking the key kills its tokens");
    assert.equal(await new KeyService({ store }).verify(`Bearer ${token}`), null, "no token service: refused");
  });
});

async function waitFor<T>(probe: () => Promise<T | null>, timeoutMs = 2000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
}
