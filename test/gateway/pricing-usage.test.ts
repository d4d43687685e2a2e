/**
 * Pricing and usage over HTTP, in fal's shapes (docs/pricing-and-usage.md): prices from the pricing
 * file, from `PUT /v1/models/pricing` and the default; `X-Fal-Billable-Units` on every outcome; usage
 * costed at the price of its time; time series that add up to the summary; a CSV export that parses
 * back to the same numbers; cost estimates.
 *
 * One server serves the whole file. Tests that run requests read usage from their own start time
 * (`bound_to_timeframe=false`), so they never see each other's; the bucket tests write usage records
 * of apps of their own, dated in 2024.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { UsageRecord } from "../../src/store/store.js";
import { usageRecord } from "../helpers/store-requests.js";
import { ECHO_APP, http, startTestPlatform, TEST_APPS, type TestPlatform } from "../helpers/platform.js";
import { result, submit, waitCompleted } from "../helpers/queue.js";

const ECHO = "darkroom/echo";
const BILLER = "darkroom-test/biller";
const ADMIN_KEY_ID = "dk_testadmin";

/** Equal up to float rounding: sums in another order differ in the last bits. */
function close(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual} is not ${expected}`);
}

/** RFC 4180 CSV (quoted fields, doubled quotes, CRLF rows) into rows of cells. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(cell);
      cell = "";
    } else if (c === "\n") {
      row.push(cell.replace(/\r$/, ""));
      rows.push(row);
      row = [];
      cell = "";
    } else cell += c;
  }
  if (cell !== "" || row.length > 0) rows.push([...row, cell]);
  return rows;
}

describe("pricing and usage", () => {
  let p: TestPlatform;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "darkroom-pricing-"));
    const file = path.join(dir, "prices.json");
    writeFileSync(file, JSON.stringify({ prices: [{ endpoint_id: ECHO, unit_price: 0.001, unit: "request", currency: "USD" }] }));
    p = await startTestPlatform({
      appModules: [ECHO_APP, path.join(TEST_APPS, "biller.ts")],
      env: { DARKROOM_PRICING: file, DARKROOM_DEFAULT_COMPUTE_PRICE: "0.25" },
    });
    // Start the runners once: the tests measure billing, not cold starts.
    assert.equal((await http(p, "POST", `/run/${BILLER}`, {})).status, 200);
  });
  after(async () => {
    await p.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** `GET /v1/models/usage` with `params`, asserting 200. */
  async function usage(params: Record<string, string | string[]>, headers: Record<string, string> = {}): Promise<any> {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) for (const v of ([] as string[]).concat(value)) search.append(name, v);
    const res = await http(p, "GET", `/v1/models/usage?${search}`, undefined, headers);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  }

  /** The summary lines of `endpointId` (its app's endpoints too, for an app id) since `since`. */
  async function summarySince(since: number, endpointId: string): Promise<any[]> {
    const body = await usage({ endpoint_id: endpointId, expand: "summary", start: new Date(since).toISOString(), bound_to_timeframe: "false" });
    return body.summary;
  }

  it("lists the pricing file's prices and the default price of apps without one, a page at a time", async () => {
    const echo = await http(p, "GET", `/v1/models/pricing?endpoint_id=${ECHO}`);
    assert.equal(echo.status, 200);
    assert.equal(echo.body.prices.length, 1);
    const [price] = echo.body.prices;
    assert.deepEqual({ ...price, effective_from: typeof price.effective_from }, {
      endpoint_id: ECHO,
      unit_price: 0.001,
      unit: "request",
      currency: "USD",
      source: "file",
      effective_from: "string",
    });
    assert.equal(echo.body.next_cursor, null);
    assert.equal(echo.body.has_more, false);

    const unpriced = await http(p, "GET", `/v1/models/pricing?endpoint_id=${BILLER},${BILLER}/images`);
    assert.deepEqual(unpriced.body.prices, [
      { endpoint_id: BILLER, unit_price: 0.25, unit: "compute_second", currency: "USD", source: "default", effective_from: null },
      { endpoint_id: `${BILLER}/images`, unit_price: 0.25, unit: "compute_second", currency: "USD", source: "default", effective_from: null },
    ]);

    const all = await http(p, "GET", "/v1/models/pricing");
    const ids = all.body.prices.map((x: any) => x.endpoint_id);
    assert.ok(ids.includes(ECHO) && ids.includes(BILLER), JSON.stringify(ids));
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const page: any = await http(p, "GET", `/v1/models/pricing?limit=1${cursor ? `&cursor=${cursor}` : ""}`);
      assert.equal(page.body.prices.length, 1);
      paged.push(page.body.prices[0].endpoint_id);
      assert.equal(page.body.has_more, page.body.next_cursor !== null);
      cursor = page.body.next_cursor;
    } while (cursor);
    assert.deepEqual(paged, ids);

    const unknown = await http(p, "GET", "/v1/models/pricing?endpoint_id=nobody/nothing");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error_type, "not_found");
    const invalid = await http(p, "GET", "/v1/models/pricing?endpoint_id=not-an-id");
    assert.equal(invalid.status, 422);
    assert.deepEqual(invalid.body.detail[0].loc, ["query", "endpoint_id"]);
  });

  it("costs a priced echo request at units × price, and says its billable units", async () => {
    const since = Date.now();
    const run = await http(p, "POST", `/run/${ECHO}`, { message: "hi" });
    assert.equal(run.status, 200);
    assert.equal(run.headers.get("x-fal-billable-units"), "1", "echo bills 1");
    const [line, ...rest] = await summarySince(since, ECHO);
    assert.deepEqual(rest, []);
    assert.deepEqual(
      { ...line, compute_seconds: typeof line.compute_seconds },
      { endpoint_id: ECHO, unit: "request", quantity: 1, unit_price: 0.001, cost: 0.001, currency: "USD", request_count: 1, billed_request_count: 1, compute_seconds: "number" },
    );
  });

  it("sends X-Fal-Billable-Units with what the app billed on sync and queue results, 0 for failures", async () => {
    const header = async (input: unknown): Promise<[number, string | null]> => {
      const res = await http(p, "POST", `/run/${BILLER}`, input);
      return [res.status, res.headers.get("x-fal-billable-units")];
    };
    assert.deepEqual(await header({ units: 2.5 }), [200, "2.5"]);
    assert.deepEqual(await header({ units: 0 }), [200, "0"]);
    assert.deepEqual(await header({}), [200, "1"], "an app that bills nothing bills one request");
    assert.deepEqual(await header({ units: 7, fail: true }), [500, "0"], "a failure bills nothing, whatever the app billed");

    const queued = await submit(p, BILLER, { units: 4 });
    await waitCompleted(p, BILLER, queued);
    const done = await result(p, BILLER, queued);
    assert.equal(done.status, 200);
    assert.equal(done.headers.get("x-fal-billable-units"), "4");
    const failed = await submit(p, BILLER, { units: 4, fail: true });
    await waitCompleted(p, BILLER, failed);
    assert.equal((await result(p, BILLER, failed)).headers.get("x-fal-billable-units"), "0");
  });

  it("costs usage at the price of its time: a later price leaves earlier usage as it was", async () => {
    const since = Date.now();
    const images = `${BILLER}/images`;
    const set = await http(p, "PUT", "/v1/models/pricing", { prices: [{ endpoint_id: images, unit_price: 0.04, unit: "image", currency: "USD" }] });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.deepEqual({ ...set.body.prices[0], effective_from: undefined }, { endpoint_id: images, unit_price: 0.04, unit: "image", currency: "USD", source: "api", effective_from: undefined });
    assert.equal((await http(p, "POST", `/run/${images}`, { units: 3 })).headers.get("x-fal-billable-units"), "3");
    const [before] = await summarySince(since, images);
    assert.equal(before.quantity, 3);
    close(before.cost, 3 * 0.04, "cost at the first price");

    assert.equal((await http(p, "PUT", "/v1/models/pricing", { prices: [{ endpoint_id: images, unit_price: 0.1, unit: "image" }] })).status, 200);
    assert.equal((await http(p, "POST", `/run/${images}`, { units: 2 })).status, 200);
    const lines = await summarySince(since, images);
    assert.equal(lines.length, 2, JSON.stringify(lines));
    assert.deepEqual(lines[0], before, "the earlier request keeps its price");
    assert.equal(lines[1].unit_price, 0.1);
    assert.equal(lines[1].quantity, 2);
    close(lines[1].cost, 0.2, "cost at the new price");

    const listed = await http(p, "GET", `/v1/models/pricing?endpoint_id=${images}`);
    assert.equal(listed.body.prices[0].unit_price, 0.1);
  });

  it("bills run time at the default compute price for an app without a price", async () => {
    const since = Date.now();
    const run = await http(p, "POST", `/run/${BILLER}`, { sleep_ms: 150 });
    assert.equal(run.status, 200);
    const id = run.headers.get("x-fal-request-id");
    const raw = await http(p, "GET", `/v1/usage?app=${BILLER}&since=${new Date(since).toISOString()}`);
    const record = raw.body.usage.find((u: any) => u.request_id === id);
    assert.ok(record && record.run_ms >= 150, JSON.stringify(raw.body));
    const lines = (await summarySince(since, BILLER)).filter((l) => l.endpoint_id === BILLER);
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0].unit, "compute_second");
    assert.equal(lines[0].quantity, record.run_ms / 1000, "seconds of run time, whatever the app billed");
    close(lines[0].cost, (record.run_ms / 1000) * 0.25, "cost");
  });

  it("lets the API override the file, and refuses bad bodies and queries with 422 in fal's shape", async () => {
    const put = await http(p, "PUT", "/v1/models/pricing", { prices: [{ endpoint_id: ECHO, unit_price: 0.002, unit: "request" }] });
    assert.equal(put.status, 200);
    assert.equal((await http(p, "GET", `/v1/models/pricing?endpoint_id=${ECHO}`)).body.prices[0].source, "api");

    const misspelt = await http(p, "PUT", "/v1/models/pricing", { prices: [{ endpoint_id: ECHO, unit_prize: 1, unit_price: 1, unit: "request" }] });
    assert.equal(misspelt.status, 422);
    assert.deepEqual(misspelt.body.detail, [{ loc: ["body", "prices", 0, "unit_prize"], msg: "Extra inputs are not permitted", type: "extra_forbidden" }]);
    for (const body of [
      { prices: [{ endpoint_id: ECHO, unit_price: 1, unit: "frame" }] },
      { prices: [{ endpoint_id: ECHO, unit_price: -1, unit: "image" }] },
      { prices: [{ endpoint_id: "echo", unit_price: 1, unit: "image" }] },
      { prices: [{ endpoint_id: ECHO, unit_price: 1, unit: "image", currency: "usd" }] },
      { prices: [{ endpoint_id: ECHO, unit_price: 1, unit: "image" }, { endpoint_id: ECHO, unit_price: 2, unit: "image" }] },
      { prices: [] },
      { prices: [{ endpoint_id: ECHO, unit_price: 1, unit: "image" }], note: "x" },
    ]) {
      const res = await http(p, "PUT", "/v1/models/pricing", body);
      assert.equal(res.status, 422, JSON.stringify(body));
      assert.ok(Array.isArray(res.body.detail) && res.body.detail.length > 0);
    }
    assert.equal((await http(p, "GET", `/v1/models/pricing?endpoint_id=${ECHO}`)).body.prices[0].unit_price, 0.002, "a refused body sets nothing");

    for (const [query, field] of [
      ["timeframe=year", "timeframe"],
      ["timezone=Europe/Paris", "timezone"],
      ["expand=auth_method", "expand"],
      ["start=yesterday", "start"],
      ["start=2025-02-01&end=2025-01-01", "end"],
      ["limit=0", "limit"],
      ["cursor=!!", "cursor"],
      ["format=xml", "format"],
    ] as const) {
      const res = await http(p, "GET", `/v1/models/usage?${query}`);
      assert.equal(res.status, 422, query);
      assert.deepEqual(res.body.detail[0].loc, ["query", field], query);
    }
  });

  it("keeps pricing changes and usage to admin keys", async () => {
    const created = await http(p, "POST", "/v1/keys", { name: "pricing reader", scope: "api" });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const auth = { authorization: `Key ${created.body.key}` };
    const asKey = (method: string, route: string, body?: unknown) => http({ url: p.url, auth }, method, route, body);
    assert.equal((await asKey("GET", `/v1/models/pricing?endpoint_id=${ECHO}`)).status, 200);
    assert.equal((await asKey("POST", "/v1/models/pricing/estimate", { estimate_type: "unit_price", endpoints: { [ECHO]: { unit_quantity: 1 } } })).status, 200);
    assert.equal((await asKey("PUT", "/v1/models/pricing", { prices: [{ endpoint_id: ECHO, unit_price: 0, unit: "request" }] })).status, 403);
    assert.equal((await asKey("GET", "/v1/models/usage")).status, 403);
    assert.equal((await http({ url: p.url, auth: {} }, "GET", "/v1/models/pricing")).status, 401);
  });

  describe("usage over time (records dated 2024)", () => {
    const app = `acct-${randomUUID().slice(0, 8)}/svc`;
    const day = (d: number, hour = 0): number => Date.UTC(2024, 0, d, hour);
    const records: UsageRecord[] = [];

    before(async () => {
      await p.store.addPrices([
        { endpointId: app, unit: "request", unitPrice: 0.5, currency: "USD", effectiveFrom: day(1), source: "api" },
        { endpointId: `${app}/hd`, unit: "megapixel", unitPrice: 0.02, currency: "USD", effectiveFrom: day(1), source: "api" },
        { endpointId: app, unit: "request", unitPrice: 0.75, currency: "USD", effectiveFrom: day(3, 12), source: "api" },
      ]);
      const add = (d: number, hour: number, more: Partial<UsageRecord>): void => {
        records.push(usageRecord(app, { finishedAt: day(d, hour), ...more }));
      };
      add(1, 1, {});
      add(1, 2, { billableUnits: 3 });
      add(1, 3, { state: "FAILED", runMs: 200 });
      add(2, 5, { endpoint: "hd", billableUnits: 2.097152 });
      add(2, 6, { endpoint: "hd", billableUnits: 1.048576, keyId: "k-b", tenant: "globex" });
      add(3, 11, { keyId: "k-b", tenant: "globex" }); // before the price change at noon
      add(3, 13, {}); // after it
      add(3, 14, { state: "CANCELLED", runMs: 0 });
      add(5, 23, { billableUnits: 2, keyId: "k-b", tenant: "globex" });
      for (const r of records) await p.store.recordUsage(r);
    });

    const range = { endpoint_id: "", start: "2024-01-01", end: "2024-01-05", timeframe: "day" };

    it("puts usage in daily buckets whose lines add up to the summary", async () => {
      const body = await usage({ ...range, endpoint_id: app, expand: ["time_series", "summary"] });
      assert.equal(body.timeframe, "day");
      assert.equal(body.start, "2024-01-01T00:00:00.000Z");
      assert.equal(body.end, "2024-01-06T00:00:00.000Z", "bound to the timeframe: the end's day is whole");
      assert.deepEqual(
        body.time_series.map((b: any) => [b.bucket, b.results.length]),
        [
          ["2024-01-01T00:00:00.000Z", 1],
          ["2024-01-02T00:00:00.000Z", 1],
          ["2024-01-03T00:00:00.000Z", 2],
          ["2024-01-04T00:00:00.000Z", 0],
          ["2024-01-05T00:00:00.000Z", 1],
        ],
        "every bucket, empty ones too",
      );
      const [jan1] = body.time_series[0].results;
      assert.deepEqual(jan1, { endpoint_id: app, unit: "request", quantity: 4, unit_price: 0.5, cost: 2, currency: "USD", request_count: 3, billed_request_count: 2, compute_seconds: 3.2 });
      const jan3 = body.time_series[2].results;
      assert.deepEqual(jan3.map((l: any) => [l.unit_price, l.quantity, l.request_count]), [[0.5, 1, 1], [0.75, 1, 2]], "the noon price change splits the day");
      const hd = body.time_series[1].results[0];
      assert.equal(hd.endpoint_id, `${app}/hd`);
      assert.equal(hd.unit, "megapixel");
      close(hd.quantity, 3.145728, "megapixels");
      close(hd.cost, 3.145728 * 0.02, "megapixel cost");

      const totals = new Map<string, { quantity: number; cost: number; requests: number; seconds: number }>();
      for (const bucket of body.time_series) {
        for (const line of bucket.results) {
          close(line.cost, line.quantity * line.unit_price, "a line costs quantity × unit price");
          const key = `${line.endpoint_id} ${line.unit_price}`;
          const t = totals.get(key) ?? { quantity: 0, cost: 0, requests: 0, seconds: 0 };
          totals.set(key, { quantity: t.quantity + line.quantity, cost: t.cost + line.cost, requests: t.requests + line.request_count, seconds: t.seconds + line.compute_seconds });
        }
      }
      assert.equal(body.summary.length, totals.size);
      for (const line of body.summary) {
        const t = totals.get(`${line.endpoint_id} ${line.unit_price}`);
        assert.ok(t, JSON.stringify(line));
        close(line.quantity, t.quantity, "quantity");
        close(line.cost, t.cost, "cost");
        close(line.compute_seconds, t.seconds, "compute seconds");
        assert.equal(line.request_count, t.requests);
      }
      close(
        body.summary.reduce((sum: number, l: any) => sum + l.cost, 0),
        // 4 requests at 0.5 + 1 at 0.5 on Jan 3 morning + 1 at 0.75 after noon + 2 units at 0.75 on Jan 5, and 3.145728 MP at 0.02.
        4 * 0.5 + 0.5 + 0.75 + 2 * 0.75 + 3.145728 * 0.02,
        "total cost",
      );
    });

    it("puts usage in calendar-month buckets, which add up to the same totals", async () => {
      const daily = await usage({ ...range, endpoint_id: app, expand: "summary" });
      const monthly = await usage({ endpoint_id: app, start: "2023-12-15", end: "2024-02-10", timeframe: "month", expand: ["time_series", "summary"] });
      assert.deepEqual(
        monthly.time_series.map((b: any) => [b.bucket, b.results.length]),
        [
          ["2023-12-01T00:00:00.000Z", 0],
          ["2024-01-01T00:00:00.000Z", 3],
          ["2024-02-01T00:00:00.000Z", 0],
        ],
      );
      assert.equal(monthly.end, "2024-03-01T00:00:00.000Z");
      assert.deepEqual(monthly.time_series[1].results, daily.summary, "January holds all of it, line for line");
      assert.deepEqual(monthly.summary, daily.summary);
      const auto = await usage({ endpoint_id: app, start: "2024-01-01", end: "2024-12-31" });
      assert.equal(auto.timeframe, "month", "a year is bucketed by month when no timeframe is asked for");
      assert.equal(auto.time_series.length, 12);
    });

    it("pages buckets with a cursor", async () => {
      const whole = await usage({ ...range, endpoint_id: app });
      const pages: any[] = [];
      let cursor: string | null = null;
      do {
        const page: any = await usage({ ...range, endpoint_id: app, limit: "2", ...(cursor ? { cursor } : {}) });
        assert.ok(page.time_series.length <= 2);
        pages.push(...page.time_series);
        assert.equal(page.has_more, page.next_cursor !== null);
        cursor = page.next_cursor;
      } while (cursor);
      assert.deepEqual(pages, whole.time_series);
      assert.equal(whole.summary, undefined, "time_series alone by default");
    });

    it("exports the same lines as CSV, whose numbers parse back exactly", async () => {
      const json = await usage({ ...range, endpoint_id: app });
      const res = await fetch(`${p.url}/v1/models/usage?${new URLSearchParams({ ...range, endpoint_id: app, format: "csv" })}`, { headers: p.auth });
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/csv/);
      assert.match(res.headers.get("content-disposition") ?? "", /attachment; filename="darkroom-usage-2024-01-01-2024-01-06\.csv"/);
      const text = await res.text();
      const [header, ...rows] = parseCsv(text);
      assert.deepEqual(header, ["bucket", "endpoint_id", "key_id", "unit", "quantity", "unit_price", "cost", "currency", "request_count", "billed_request_count", "compute_seconds"]);
      const expected = json.time_series.flatMap((b: any) =>
        b.results.map((l: any) => [b.bucket, l.endpoint_id, "", l.unit, l.quantity, l.unit_price, l.cost, l.currency, l.request_count, l.billed_request_count, l.compute_seconds]),
      );
      const parsed = rows.map((r) => r.map((cell, i) => ([4, 5, 6, 8, 9, 10].includes(i) ? Number(cell) : cell)));
      assert.deepEqual(parsed, expected);

      const accepted = await fetch(`${p.url}/v1/models/usage?${new URLSearchParams({ ...range, endpoint_id: app })}`, { headers: { ...p.auth, accept: "text/csv" } });
      assert.equal(await accepted.text(), text, "Accept: text/csv asks for the same export");
    });

    it("filters by key and tenant, and keeps keys apart with expand=auth_method", async () => {
      const summary = async (more: Record<string, string | string[]>): Promise<any[]> => (await usage({ ...range, endpoint_id: app, expand: "summary", ...more })).summary;
      const globex = await summary({ tenant: "globex" });
      assert.deepEqual(globex.map((l: any) => [l.endpoint_id, l.unit_price, l.quantity]), [
        [app, 0.5, 1],
        [app, 0.75, 2],
        [`${app}/hd`, 0.02, 1.048576],
      ]);
      assert.deepEqual(await summary({ key_id: "k-b" }), globex, "k-b is globex's only key");
      const byKey = await summary({ expand: ["summary", "auth_method"] });
      assert.deepEqual(
        byKey.map((l: any) => [l.endpoint_id, l.unit_price, l.key_id, l.auth_method]),
        [
          [app, 0.5, "k-a", "k-a"],
          [app, 0.75, "k-a", "k-a"],
          [app, 0.5, "k-b", "k-b"],
          [app, 0.75, "k-b", "k-b"],
          [`${app}/hd`, 0.02, "k-a", "k-a"],
          [`${app}/hd`, 0.02, "k-b", "k-b"],
        ],
        "a key that no longer exists is labelled by its id",
      );
      const hdOnly = await summary({ endpoint_id: `${app}/hd` });
      assert.deepEqual(hdOnly.map((l: any) => l.endpoint_id), [`${app}/hd`], "a longer id is one endpoint");
    });
  });

  describe("estimates", () => {
    const app = `est-${randomUUID().slice(0, 8)}/svc`;
    before(async () => {
      const now = Date.now();
      await p.store.addPrices([
        { endpointId: app, unit: "image", unitPrice: 0.5, currency: "USD", effectiveFrom: now - 3_600_000, source: "api" },
        { endpointId: `${app}/eur`, unit: "image", unitPrice: 0.4, currency: "EUR", effectiveFrom: now - 3_600_000, source: "api" },
      ]);
      const record = (keyId: string, billableUnits: number): UsageRecord => ({
        requestId: randomUUID(),
        keyId,
        tenant: keyId,
        appId: app,
        endpoint: "",
        state: "SUCCEEDED",
        queueMs: 1,
        runMs: 100,
        billableUnits,
        finishedAt: now - 60_000,
      });
      // The caller (the admin key) made two calls of 2 and 4 images; someone else one of 100.
      for (const r of [record(ADMIN_KEY_ID, 2), record(ADMIN_KEY_ID, 4), record("k-other", 100)]) await p.store.recordUsage(r);
    });

    async function estimate(body: unknown): Promise<{ status: number; body: any }> {
      return http(p, "POST", "/v1/models/pricing/estimate", body);
    }

    it("multiplies units by today's price", async () => {
      const res = await estimate({ estimate_type: "unit_price", endpoints: { [app]: { unit_quantity: 50 }, [`${BILLER}/none`]: { unit_quantity: 4 } } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.estimate_type, "unit_price");
      close(res.body.total_cost, 50 * 0.5 + 4 * 0.25, "an endpoint without a price costs the default");
      assert.equal(res.body.currency, "USD");
    });

    it("multiplies calls by the caller's past cost per call, else everyone's, else one unit", async () => {
      const mine = await estimate({ estimate_type: "historical_api_price", endpoints: { [app]: { call_quantity: 10 } } });
      assert.equal(mine.status, 200, JSON.stringify(mine.body));
      assert.deepEqual({ ...mine.body, total_cost: undefined }, { estimate_type: "historical_api_price", total_cost: undefined, currency: "USD" });
      close(mine.body.total_cost, 10 * ((2 + 4) / 2) * 0.5, "10 calls at the caller's 1.5 per call");

      const created = await http(p, "POST", "/v1/keys", { name: "newcomer", scope: "api" });
      const asNewcomer = await http({ url: p.url, auth: { authorization: `Key ${created.body.key}` } }, "POST", "/v1/models/pricing/estimate", {
        estimate_type: "historical_api_price",
        endpoints: { [app]: { call_quantity: 3 } },
      });
      close(asNewcomer.body.total_cost, 3 * ((2 + 4 + 100) / 3) * 0.5, "no history of its own: everyone's");

      const fresh = await estimate({ estimate_type: "historical_api_price", endpoints: { [`${BILLER}/never-called`]: { call_quantity: 8 } } });
      close(fresh.body.total_cost, 8 * 0.25, "no history at all: one unit per call");
    });

    it("refuses bad bodies, and endpoints priced in different currencies", async () => {
      for (const body of [
        { estimate_type: "guess", endpoints: { [app]: { call_quantity: 1 } } },
        { estimate_type: "historical_api_price", endpoints: { [app]: { call_quantity: 0 } } },
        { estimate_type: "historical_api_price", endpoints: { [app]: { unit_quantity: 1 } } },
        { estimate_type: "unit_price", endpoints: { "not an id": { unit_quantity: 1 } } },
        { estimate_type: "unit_price", endpoints: {} },
        { estimate_type: "unit_price", endpoints: { [app]: { unit_quantity: 1 } }, extra: true },
      ]) {
        const res = await estimate(body);
        assert.equal(res.status, 422, JSON.stringify(body));
      }
      const mixed = await estimate({ estimate_type: "unit_price", endpoints: { [app]: { unit_quantity: 1 }, [`${app}/eur`]: { unit_quantity: 1 } } });
      assert.equal(mixed.status, 422);
      assert.match(JSON.stringify(mixed.body.detail), /EUR/);
    });
  });
});
