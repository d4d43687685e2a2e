/**
 * `darkroom usage` against a real server: the summary table, time buckets, the CSV export, filters,
 * and the usage errors that stop a bad flag before anything is sent. The command is called in this
 * process (its output collected), with usage records dated 2024 so that the numbers are known.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { usageCommand } from "../../src/cli/usage.js";
import type { UsageRecord } from "../../src/store/store.js";
import { usageRecord } from "../helpers/store-requests.js";
import { ADMIN_KEY, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

interface Run {
  code: number | null;
  stdout: string;
  error: { message: string; exitCode: number } | null;
}

describe("darkroom usage", () => {
  let p: TestPlatform;
  const app = `cli-${randomUUID().slice(0, 8)}/svc`;
  const saved: Record<string, string | undefined> = {};

  before(async () => {
    p = await startTestPlatform();
    for (const name of ["DARKROOM_URL", "DARKROOM_KEY", "FAL_KEY"]) saved[name] = process.env[name];
    process.env["DARKROOM_URL"] = p.url;
    process.env["DARKROOM_KEY"] = ADMIN_KEY;
    delete process.env["FAL_KEY"];
    await p.store.addPrices([
      { endpointId: app, unit: "request", unitPrice: 0.5, currency: "USD", effectiveFrom: Date.UTC(2024, 0, 1), source: "api" },
      { endpointId: `${app}/hd`, unit: "megapixel", unitPrice: 0.02, currency: "USD", effectiveFrom: Date.UTC(2024, 0, 1), source: "api" },
    ]);
    const record = (day: number, more: Partial<UsageRecord>): UsageRecord => usageRecord(app, { queueMs: 1, runMs: 2_000, finishedAt: Date.UTC(2024, 0, day, 12), ...more });
    for (const r of [
      record(1, {}),
      record(1, { billableUnits: 3 }),
      record(2, { endpoint: "hd", billableUnits: 1.5, tenant: "globex", keyId: "k-b" }),
      record(2, { state: "FAILED", runMs: 500 }),
    ]) {
      await p.store.recordUsage(r);
    }
  });
  after(async () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await p.close();
  });

  /** Runs the command here, collecting what it writes. */
  async function usage(args: string[]): Promise<Run> {
    let stdout = "";
    const out = new Writable({
      write(chunk: Buffer, _encoding, done) {
        stdout += chunk.toString("utf8");
        done();
      },
    });
    try {
      return { code: await usageCommand(args, out), stdout, error: null };
    } catch (err) {
      const e = err as { message: string; exitCode: number };
      return { code: null, stdout, error: { message: e.message, exitCode: e.exitCode } };
    }
  }

  const period = ["--since", "2024-01-01", "--until", "2024-01-03", "--app", app];

  it("prints a line per endpoint and price with its cost, and the total", async () => {
    const run = await usage(period);
    assert.equal(run.error, null);
    assert.equal(run.code, 0);
    const lines = run.stdout.split("\n");
    assert.equal(lines[0], "Usage from 2024-01-01T00:00:00.000Z to 2024-01-03T00:00:00.000Z");
    assert.match(lines[1] ?? "", /^ENDPOINT\s+UNIT\s+QUANTITY\s+UNIT PRICE\s+COST\s+REQUESTS\s+COMPUTE$/);
    assert.match(lines[2] ?? "", new RegExp(`^${app}\\s+request\\s+4\\s+0\\.5\\s+2 USD\\s+3\\s+4\\.5 s$`));
    assert.match(lines[3] ?? "", new RegExp(`^${app}/hd\\s+megapixel\\s+1\\.5\\s+0\\.02\\s+0\\.03 USD\\s+1\\s+2 s$`));
    assert.equal(lines[4], "Total: 2.03 USD over 4 requests");
  });

  it("filters by tenant and key, and prints buckets with --timeframe", async () => {
    const globex = await usage([...period, "--tenant", "globex"]);
    assert.match(globex.stdout, new RegExp(`${app}/hd\\s+megapixel\\s+1\\.5`));
    assert.doesNotMatch(globex.stdout, new RegExp(`${app}\\s+request`));
    const keyA = await usage([...period, "--key", "k-a"]);
    assert.match(keyA.stdout, /Total: 2 USD over 3 requests/);

    const daily = await usage([...period, "--timeframe", "day"]);
    assert.equal(daily.error, null);
    const rows = daily.stdout.split("\n").filter((l) => l.startsWith("2024-"));
    assert.equal(rows.length, 3);
    assert.match(rows[0] ?? "", new RegExp(`^2024-01-01T00:00:00\\.000Z\\s+${app}\\s+request\\s+4\\s`));
    assert.match(rows[2] ?? "", new RegExp(`^2024-01-02T00:00:00\\.000Z\\s+${app}/hd\\s+megapixel\\s+1\\.5\\s`));
  });

  it("prints the server's CSV export with --csv, and JSON with --json", async () => {
    const csv = await usage([...period, "--csv", "--timeframe", "day"]);
    assert.equal(csv.error, null);
    const rows = csv.stdout.trimEnd().split("\r\n");
    assert.equal(rows[0], "bucket,endpoint_id,key_id,unit,quantity,unit_price,cost,currency,request_count,billed_request_count,compute_seconds");
    assert.deepEqual(rows.slice(1), [
      `2024-01-01T00:00:00.000Z,${app},,request,4,0.5,2,USD,2,2,4`,
      `2024-01-02T00:00:00.000Z,${app},,request,0,0.5,0,USD,1,0,0.5`,
      `2024-01-02T00:00:00.000Z,${app}/hd,,megapixel,1.5,0.02,0.03,USD,1,1,2`,
    ]);

    const json = await usage([...period, "--json"]);
    const answer = JSON.parse(json.stdout);
    assert.deepEqual(answer.summary.map((l: any) => [l.endpoint_id, l.quantity, l.cost]), [
      [app, 4, 2],
      [`${app}/hd`, 1.5, 0.03],
    ]);
  });

  it("refuses bad flags before sending anything", async () => {
    for (const args of [["--since", "yesterday"], ["--timeframe", "year"], ["extra"]]) {
      const run = await usage(args);
      assert.equal(run.error?.exitCode, 2, args.join(" "));
    }
  });
});
