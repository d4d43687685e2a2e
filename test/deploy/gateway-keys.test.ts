// deploy/gateway-keys.ts: the shared secrets of the gateway replicas, in the formats a gateway reads.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { URL_SECRET_FILE, createGatewayKeys } from "../../deploy/gateway-keys.js";
import { TokenService } from "../../src/auth/tokens.js";
import { SigningKeys } from "../../src/webhooks/signing-keys.js";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const freshDir = (): string => {
  const d = mkdtempSync(path.join(tmpdir(), "darkroom-keys-"));
  dirs.push(d);
  return d;
};

describe("deploy/gateway-keys.ts", () => {
  it("writes keys that every gateway mounting them reads the same way", async () => {
    const dir = freshDir();
    const files = await createGatewayKeys(dir);
    assert.deepEqual(files.sort(), ["token-secret", "url-secret", "webhook-keys.json"]);
    // Two replicas with the same files: one's token is valid at the other, and the JWKS match.
    const [a, b] = [await TokenService.open(dir), await TokenService.open(dir)];
    const issued = a.issue({ keyId: "k1", scope: "api", allowedApps: [] });
    assert.equal(b.verify(issued.token)?.sub, "k1");
    assert.deepEqual((await SigningKeys.open(dir)).jwks(), (await SigningKeys.open(dir)).jwks());
    assert.equal(readFileSync(path.join(dir, URL_SECRET_FILE)).length, 32);
  });

  it("refuses a folder that already holds something", async () => {
    const dir = freshDir();
    writeFileSync(path.join(dir, "token-secret"), "keep me");
    await assert.rejects(createGatewayKeys(dir), /not empty/);
    assert.equal(readFileSync(path.join(dir, "token-secret"), "utf8"), "keep me");
  });
});
