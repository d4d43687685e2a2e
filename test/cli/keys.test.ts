/**
 * `darkroom keys` against a real server: create, use, list, revoke — and clear errors.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ADMIN_KEY, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { cli as runCli, closedPort, scratchDir, type CliResult } from "./helpers.js";

function cli(args: string[], env: Record<string, string>, cwd?: string): Promise<CliResult> {
  return runCli(args, { env, ...(cwd ? { cwd } : {}) });
}

describe("darkroom keys", () => {
  let p: TestPlatform;
  before(async () => {
    p = await startTestPlatform();
  });
  after(async () => {
    await p.close();
  });

  it("creates a key that works, lists it, and revokes it", async () => {
    const env = { DARKROOM_URL: p.url, DARKROOM_KEY: ADMIN_KEY };
    const created = await cli(["keys", "create", "--name", "ci bot", "--json"], env);
    assert.equal(created.code, 0, created.stderr);
    const key = JSON.parse(created.stdout) as { id: string; key: string; scope: string; name: string };
    assert.equal(key.scope, "api");
    assert.equal(key.name, "ci bot");
    assert.ok(key.key.startsWith(`${key.id}:`));

    const asNewKey = { url: p.url, auth: { authorization: `Key ${key.key}` } };
    const ok = await http(asNewKey, "POST", "/run/darkroom/echo", { message: "from the new key" });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.message, "from the new key");

    const listed = await cli(["keys", "list"], env);
    assert.equal(listed.code, 0);
    assert.match(listed.stdout, new RegExp(`${key.id}\\s+api\\s+active\\s+ci bot`));
    assert.ok(!listed.stdout.includes(key.key.split(":")[1] ?? "@@"), "secrets are never listed");

    const revoked = await cli(["keys", "revoke", key.id], env);
    assert.equal(revoked.code, 0);
    assert.match(revoked.stdout, /Revoked/);
    const refused = await http(asNewKey, "POST", "/run/darkroom/echo", { message: "x" });
    assert.equal(refused.status, 401);
    assert.match((await cli(["keys", "list"], env)).stdout, new RegExp(`${key.id}\\s+api\\s+revoked`));
  });

  it("falls back to the admin key in --data-dir when no key is set in the environment", async () => {
    const scratch = scratchDir();
    try {
      const dataDir = path.join(scratch.dir, "data");
      mkdirSync(dataDir);
      writeFileSync(path.join(dataDir, "admin-key"), `${ADMIN_KEY}\n`);
      const listed = await cli(["keys", "list", "--data-dir", dataDir, "--json"], { DARKROOM_URL: p.url });
      assert.equal(listed.code, 0, listed.stderr);
      assert.ok(Array.isArray(JSON.parse(listed.stdout)));
      const none = await cli(["keys", "list"], { DARKROOM_URL: p.url }, scratch.dir);
      assert.equal(none.code, 3);
      assert.match(none.stderr, /refused the request \(no key was sent\)/);
    } finally {
      scratch.remove();
    }
  });

  it("explains an unreachable server, a bad key and bad usage", async () => {
    const port = await closedPort();
    const down = await cli(["keys", "list"], { DARKROOM_URL: `http://127.0.0.1:${port}`, DARKROOM_KEY: ADMIN_KEY });
    assert.equal(down.code, 3);
    assert.match(down.stderr, new RegExp(`cannot reach the server at http://127\\.0\\.0\\.1:${port}`));
    const badKey = await cli(["keys", "list"], { DARKROOM_URL: p.url, DARKROOM_KEY: "nope:nope" });
    assert.equal(badKey.code, 3);
    assert.match(badKey.stderr, /401/);
    const usage = await cli(["keys", "revoke"], { DARKROOM_URL: p.url, DARKROOM_KEY: ADMIN_KEY });
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /usage: darkroom keys revoke <id>/);
  });
});
