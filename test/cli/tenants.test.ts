/**
 * `darkroom keys create --tenant … [limits]` and `darkroom tenants list|show|set` against a real
 * server, with the usage errors that stop a bad flag before anything is sent.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ADMIN_KEY, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { cli as runCli, type CliResult } from "./helpers.js";

describe("darkroom tenants and key limits", () => {
  let p: TestPlatform;
  let env: Record<string, string>;
  const cli = (args: string[]): Promise<CliResult> => runCli(args, { env });
  before(async () => {
    p = await startTestPlatform();
    env = { DARKROOM_URL: p.url, DARKROOM_KEY: ADMIN_KEY };
  });
  after(async () => {
    await p.close();
  });

  it("creates a key in a tenant with every limit, and lists its tenant", async () => {
    const created = await cli([
      "keys", "create", "--name", "acme bot", "--tenant", "acme",
      "--max-concurrency", "2", "--rpm", "30", "--apps", "darkroom/*, other/app", "--max-queued", "10", "--monthly-budget", "12.5", "--json",
    ]);
    assert.equal(created.code, 0, created.stderr);
    const key = JSON.parse(created.stdout) as { id: string; key: string; tenant: string; limits: Record<string, unknown> };
    assert.equal(key.tenant, "acme");
    assert.deepEqual(key.limits, { max_concurrency: 2, requests_per_minute: 30, apps: ["darkroom/*", "other/app"], monthly_budget: 12.5, max_queued: 10 });

    const text = await cli(["keys", "create", "--name", "solo"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /Created api key (dk_\w+) \(solo\) in its own tenant\./);
    const soloId = /Created api key (dk_\w+)/.exec(text.stdout)?.[1] ?? "";

    const listed = await cli(["keys", "list"]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /ID\s+SCOPE\s+STATE\s+NAME\s+TENANT\s+LIMITS\s+LAST USED/);
    assert.match(listed.stdout, new RegExp(`${key.id}\\s+api\\s+active\\s+acme bot\\s+acme\\s+rpm=30 concurrency=2 queued=10 budget=12.5 apps=darkroom/\\*,other/app\\s+never used`));
    assert.match(listed.stdout, new RegExp(`${soloId}\\s+api\\s+active\\s+solo\\s+\\(own\\)\\s+-\\s+never used`));
  });

  it("sets a tenant, shows it and lists it", async () => {
    await cli(["keys", "create", "--name", "globex key", "--tenant", "globex"]);
    const set = await cli(["tenants", "set", "globex", "--weight", "2.5", "--rpm", "600", "--apps", "darkroom/*"]);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, "Set tenant globex: weight 2.5, limits rpm=600 apps=darkroom/*.\n");
    const stored = await http(p, "GET", "/v1/tenants/globex");
    assert.equal(stored.body.weight, 2.5);
    assert.equal(stored.body.limits.requests_per_minute, 600);

    const shown = await cli(["tenants", "show", "globex"]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^Tenant globex\n/);
    assert.match(shown.stdout, /weight\s+2\.5\n/);
    assert.match(shown.stdout, /active keys\s+1\n/);
    assert.match(shown.stdout, /requests\/minute\s+600\n/);
    assert.match(shown.stdout, /apps\s+darkroom\/\*\n/);
    assert.match(shown.stdout, /max concurrency\s+-\n/);

    const listed = await cli(["tenants", "list"]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /NAME\s+WEIGHT\s+KEYS\s+LIMITS/);
    assert.match(listed.stdout, /globex\s+2\.5\s+1\s+rpm=600 apps=darkroom\/\*/);
    const json = JSON.parse((await cli(["tenants", "list", "--json"])).stdout) as { name: string; configured: boolean }[];
    assert.ok(json.some((t) => t.name === "globex" && t.configured));

    // A tenant only a key names is shown with its defaults.
    await cli(["keys", "create", "--tenant", "initech"]);
    const unconfigured = await cli(["tenants", "show", "initech"]);
    assert.equal(unconfigured.code, 0, unconfigured.stderr);
    assert.match(unconfigured.stdout, /^Tenant initech \(not configured: defaults\)\n\s+weight\s+1\n/);

    // `set` replaces: flags left out go back to the defaults.
    assert.equal((await cli(["tenants", "set", "globex", "--max-queued", "5"])).code, 0);
    const replaced = await http(p, "GET", "/v1/tenants/globex");
    assert.equal(replaced.body.weight, 1);
    assert.equal(replaced.body.limits.requests_per_minute, null);
    assert.equal(replaced.body.limits.max_queued, 5);
  });

  it("stops bad flags before sending, and reports what the server refuses", async () => {
    for (const [args, message] of [
      [["keys", "create", "--rpm", "abc"], /--rpm must be a whole number above 0, got 'abc'/],
      [["keys", "create", "--max-concurrency", "0"], /--max-concurrency must be a whole number above 0/],
      [["tenants", "set", "x", "--monthly-budget=-3"], /--monthly-budget must be a number of 0 or more/],
      [["tenants", "set", "x", "--weight", "heavy"], /--weight must be a number, got 'heavy'/],
      [["tenants", "show"], /usage: darkroom tenants show <name>/],
      [["tenants", "frobnicate"], /unknown tenants command 'frobnicate'/],
    ] as const) {
      const res = await cli([...args]);
      assert.equal(res.code, 2, `${args.join(" ")}: ${res.stderr}`);
      assert.match(res.stderr, message);
    }
    const names = ((await http(p, "GET", "/v1/tenants")).body.tenants as { name: string }[]).map((t) => t.name);
    assert.ok(!names.includes("x"), "nothing was sent");

    const weight = await cli(["tenants", "set", "x", "--weight", "0"]);
    assert.equal(weight.code, 1);
    assert.match(weight.stderr, /invalid input \(422\):\n\s+weight: /);
    const badApp = await cli(["keys", "create", "--apps", "Not An App"]);
    assert.equal(badApp.code, 1);
    assert.match(badApp.stderr, /limits\.apps\.0: an app id \(owner\/alias\) or all of an owner's apps/);
    const missing = await cli(["tenants", "show", "nobody-at-all"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /HTTP 404: Tenant 'nobody-at-all' is neither configured nor named by an active key/);

    const help = await cli(["tenants", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /darkroom tenants set <name> \[--weight W\] \[limits\]/);
    assert.match(help.stdout, /--rpm N/);
  });
});
