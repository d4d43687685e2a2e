import assert from "node:assert/strict";
import { createHash, createPublicKey, verify as cryptoVerify } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { signWebhook, verifyWebhook, webhookMessage } from "../../src/webhooks/signature.js";
import { SIGNING_KEYS_FILE, SigningKeys } from "../../src/webhooks/signing-keys.js";

const BODY = JSON.stringify({ request_id: "req-1", gateway_request_id: "req-1", status: "OK", payload: { n: 1 } });
const NOW_SEC = 1_750_000_000;

let dir: string;
let keys: SigningKeys;

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "darkroom-signing-"));
  keys = await SigningKeys.open(dir);
});

after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function sign(overrides: { body?: string; timestampSec?: number; keys?: SigningKeys } = {}) {
  return signWebhook({
    requestId: "req-1",
    userId: "darkroom",
    timestampSec: overrides.timestampSec ?? NOW_SEC,
    body: overrides.body ?? BODY,
    privateKey: (overrides.keys ?? keys).current().privateKey,
  });
}

describe("webhook signature", () => {
  it("produces the four fal headers, hex-encoded", () => {
    const headers = sign();
    assert.equal(headers["X-Fal-Webhook-Request-Id"], "req-1");
    assert.equal(headers["X-Fal-Webhook-User-Id"], "darkroom");
    assert.equal(headers["X-Fal-Webhook-Timestamp"], String(NOW_SEC));
    assert.match(headers["X-Fal-Webhook-Signature"], /^[0-9a-f]{128}$/);
  });

  it("verifies against the published JWKS", () => {
    const jwks = JSON.parse(JSON.stringify(keys.jwks())) as unknown as { keys: unknown[] };
    assert.equal(verifyWebhook({ headers: sign(), body: BODY, jwks, nowSec: NOW_SEC }), true);
    // Buffers, lower-case header names (as Node's http server delivers them) and a fetch Headers work too.
    const lower = Object.fromEntries(Object.entries(sign()).map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(verifyWebhook({ headers: lower, body: Buffer.from(BODY), jwks, nowSec: NOW_SEC }), true);
    assert.equal(verifyWebhook({ headers: new Headers(sign()), body: BODY, jwks, nowSec: NOW_SEC + 10 }), true);
  });

  it("publishes an RFC 8037 JWKS entry", () => {
    const { keys: published } = keys.jwks();
    assert.equal(published.length, 1);
    const jwk = published[0]!;
    assert.deepEqual(Object.keys(jwk).sort(), ["alg", "crv", "kid", "kty", "use", "x"]);
    assert.equal(jwk.kty, "OKP");
    assert.equal(jwk.crv, "Ed25519");
    assert.equal(jwk.use, "sig");
    assert.equal(jwk.alg, "EdDSA");
    assert.equal(Buffer.from(jwk.x, "base64url").length, 32);
    assert.equal(jwk.kid, keys.current().kid);
    assert.ok(!("d" in jwk), "no private member is published");
  });

  it("rejects a changed body", () => {
    assert.equal(verifyWebhook({ headers: sign(), body: `${BODY} `, jwks: keys.jwks(), nowSec: NOW_SEC }), false);
    assert.equal(verifyWebhook({ headers: sign(), body: BODY.replace('"n":1', '"n":2'), jwks: keys.jwks(), nowSec: NOW_SEC }), false);
  });

  it("rejects a changed timestamp or request id", () => {
    const headers = { ...sign(), "X-Fal-Webhook-Timestamp": String(NOW_SEC + 1) };
    assert.equal(verifyWebhook({ headers, body: BODY, jwks: keys.jwks(), nowSec: NOW_SEC }), false);
    const otherId = { ...sign(), "X-Fal-Webhook-Request-Id": "req-2" };
    assert.equal(verifyWebhook({ headers: otherId, body: BODY, jwks: keys.jwks(), nowSec: NOW_SEC }), false);
  });

  it("rejects a signature by a key that is not in the JWKS", async () => {
    const otherDir = await fs.mkdtemp(path.join(os.tmpdir(), "darkroom-signing-other-"));
    try {
      const other = await SigningKeys.open(otherDir);
      assert.notEqual(other.current().kid, keys.current().kid);
      assert.equal(verifyWebhook({ headers: sign({ keys: other }), body: BODY, jwks: keys.jwks(), nowSec: NOW_SEC }), false);
      assert.equal(verifyWebhook({ headers: sign({ keys: other }), body: BODY, jwks: other.jwks(), nowSec: NOW_SEC }), true);
    } finally {
      await fs.rm(otherDir, { recursive: true, force: true });
    }
  });

  it("enforces the 300 s window both ways", () => {
    const jwks = keys.jwks();
    assert.equal(verifyWebhook({ headers: sign({ timestampSec: NOW_SEC - 300 }), body: BODY, jwks, nowSec: NOW_SEC }), true);
    assert.equal(verifyWebhook({ headers: sign({ timestampSec: NOW_SEC - 301 }), body: BODY, jwks, nowSec: NOW_SEC }), false);
    assert.equal(verifyWebhook({ headers: sign({ timestampSec: NOW_SEC + 301 }), body: BODY, jwks, nowSec: NOW_SEC }), false);
    assert.equal(verifyWebhook({ headers: sign({ timestampSec: NOW_SEC - 301 }), body: BODY, jwks, nowSec: NOW_SEC, toleranceSec: 600 }), true);
  });

  it("rejects missing headers, malformed signatures and unusable JWKS entries", () => {
    const jwks = keys.jwks();
    const { "X-Fal-Webhook-Signature": signature, ...noSignature } = sign();
    assert.equal(verifyWebhook({ headers: noSignature, body: BODY, jwks, nowSec: NOW_SEC }), false);
    assert.equal(verifyWebhook({ headers: { ...sign(), "X-Fal-Webhook-Signature": signature.slice(2) }, body: BODY, jwks, nowSec: NOW_SEC }), false);
    assert.equal(verifyWebhook({ headers: { ...sign(), "X-Fal-Webhook-Timestamp": `${NOW_SEC}.0` }, body: BODY, jwks, nowSec: NOW_SEC }), false);
    const junk = { keys: [null, { kty: "RSA" }, { kty: "OKP", crv: "Ed25519", x: "not-a-key" }] };
    assert.equal(verifyWebhook({ headers: sign(), body: BODY, jwks: junk, nowSec: NOW_SEC }), false);
    // ...but a usable key after the junk is still found.
    assert.equal(verifyWebhook({ headers: sign(), body: BODY, jwks: { keys: [...junk.keys, ...jwks.keys] }, nowSec: NOW_SEC }), true);
  });

  it("matches an independent Ed25519 computation over the documented message", () => {
    const headers = sign();
    const bodyHash = createHash("sha256").update(BODY, "utf8").digest("hex");
    const message = Buffer.from(`req-1\ndarkroom\n${NOW_SEC}\n${bodyHash}`, "utf8");
    assert.deepEqual(webhookMessage("req-1", "darkroom", NOW_SEC, BODY), message);
    const jwk = keys.jwks().keys[0]!;
    const publicKey = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: "jwk" });
    assert.equal(cryptoVerify(null, message, publicKey, Buffer.from(headers["X-Fal-Webhook-Signature"], "hex")), true);
    assert.equal(cryptoVerify(null, Buffer.from(`${message.toString()}x`), publicKey, Buffer.from(headers["X-Fal-Webhook-Signature"], "hex")), false);
  });
});

describe("signing keys", () => {
  it("persist across a reload, in a 0600 file", async () => {
    const file = path.join(dir, SIGNING_KEYS_FILE);
    const stat = await fs.stat(file);
    assert.equal(stat.mode & 0o777, 0o600);
    const reloaded = await SigningKeys.open(dir);
    assert.equal(reloaded.current().kid, keys.current().kid);
    assert.deepEqual(reloaded.jwks(), keys.jwks());
    // A signature by the reloaded key verifies against the JWKS published before the reload.
    assert.equal(verifyWebhook({ headers: sign({ keys: reloaded }), body: BODY, jwks: keys.jwks(), nowSec: NOW_SEC }), true);
    const stored = JSON.parse(await fs.readFile(file, "utf8")) as { keys: { privateJwk: { d: string } }[] };
    assert.equal(stored.keys.length, 1);
    assert.equal(Buffer.from(stored.keys[0]!.privateJwk.d, "base64url").length, 32);
  });

  it("tightens a file found with a wider mode", async () => {
    const file = path.join(dir, SIGNING_KEYS_FILE);
    await fs.chmod(file, 0o644);
    await SigningKeys.open(dir);
    assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
  });

  it("rotate: the newest key signs, all stay published, and retire removes one", async () => {
    const rotDir = await fs.mkdtemp(path.join(os.tmpdir(), "darkroom-rotate-"));
    try {
      const ring = await SigningKeys.open(rotDir);
      const oldKid = ring.current().kid;
      const oldHeaders = sign({ keys: ring });
      const fresh = await ring.rotate();
      assert.notEqual(fresh.kid, oldKid);
      assert.equal(ring.current().kid, fresh.kid);
      assert.deepEqual(ring.jwks().keys.map((k) => k.kid), [fresh.kid, oldKid]);
      // Deliveries signed before the rotation still verify.
      assert.equal(verifyWebhook({ headers: oldHeaders, body: BODY, jwks: ring.jwks(), nowSec: NOW_SEC }), true);

      const reloaded = await SigningKeys.open(rotDir);
      assert.equal(reloaded.current().kid, fresh.kid);
      assert.equal(reloaded.list().length, 2);
      assert.equal((await fs.stat(path.join(rotDir, SIGNING_KEYS_FILE))).mode & 0o777, 0o600);

      assert.equal(await reloaded.retire(oldKid), true);
      assert.equal(await reloaded.retire(oldKid), false);
      assert.deepEqual(reloaded.jwks().keys.map((k) => k.kid), [fresh.kid]);
      assert.equal(verifyWebhook({ headers: oldHeaders, body: BODY, jwks: reloaded.jwks(), nowSec: NOW_SEC }), false);
      await assert.rejects(reloaded.retire(fresh.kid), /only webhook signing key/);
    } finally {
      await fs.rm(rotDir, { recursive: true, force: true });
    }
  });

  it("refuses to overwrite a damaged key file", async () => {
    const badDir = await fs.mkdtemp(path.join(os.tmpdir(), "darkroom-badkeys-"));
    try {
      await fs.writeFile(path.join(badDir, SIGNING_KEYS_FILE), "{not json", { mode: 0o600 });
      await assert.rejects(SigningKeys.open(badDir), /not valid JSON/);
      assert.equal(await fs.readFile(path.join(badDir, SIGNING_KEYS_FILE), "utf8"), "{not json");
    } finally {
      await fs.rm(badDir, { recursive: true, force: true });
    }
  });

  it("two concurrent first starts agree on one key", async () => {
    const raceDir = await fs.mkdtemp(path.join(os.tmpdir(), "darkroom-race-"));
    try {
      const [a, b] = await Promise.all([SigningKeys.open(raceDir), SigningKeys.open(raceDir)]);
      assert.equal(a.current().kid, b.current().kid);
    } finally {
      await fs.rm(raceDir, { recursive: true, force: true });
    }
  });
});
