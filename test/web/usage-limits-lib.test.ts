/**
 * The pure modules behind the Usage page, the limits on the Keys page and the app page's limit
 * banner: periods and pages of the usage API, series per app and per tenant, the summary per
 * endpoint; limit drafts, checks and where a 422 lands; which limit a refusal names and Retry-After.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatWait, limitRefusalOf, parseRetryAfter } from "../../web/src/lib/limit-refusal.js";
import { describeLimits, draftOfLimits, errorsByField, formFieldOf, limitsOfDraft, NO_LIMITS, tenantNameError, weightOfDraft } from "../../web/src/lib/limits.js";
import {
  bucketCount,
  chartData,
  fileNameOf,
  formatAmount,
  formatCosts,
  NO_KEY,
  periodRange,
  stacked,
  summaryRows,
  tenantMap,
  timeframeFor,
  usageCsvQuery,
  usagePageQuery,
  usageTotals,
  type UsageBucket,
  type UsageLine,
} from "../../web/src/lib/usage.js";

function line(endpoint: string, keyId: string | null, requests: number, cost: number, extra: Partial<UsageLine> = {}): UsageLine {
  return {
    endpoint_id: endpoint,
    unit: "request",
    quantity: requests,
    unit_price: requests === 0 ? 0 : cost / requests,
    cost,
    currency: "USD",
    key_id: keyId,
    request_count: requests,
    billed_request_count: requests,
    compute_seconds: requests * 0.5,
    ...extra,
  };
}

describe("usage periods and queries", () => {
  const now = Date.parse("2026-03-15T10:20:30.000Z");

  it("gives each period its range and the timeframe that fits, keeping a chosen one that also fits", () => {
    assert.deepEqual(periodRange("24h", now), { start: now - 86_400_000, end: now });
    assert.deepEqual(periodRange("7d", now), { start: now - 7 * 86_400_000, end: now });
    assert.deepEqual(periodRange("month", now), { start: Date.parse("2026-03-01T00:00:00.000Z"), end: now });
    assert.equal(timeframeFor("24h", null), "hour");
    assert.equal(timeframeFor("24h", "minute"), "minute");
    assert.equal(timeframeFor("24h", "week"), "hour", "a week bucket does not fit a day");
    assert.equal(timeframeFor("30d", "bogus"), "day");
  });

  it("counts buckets as the server's grid does, calendar months included", () => {
    assert.equal(bucketCount(Date.parse("2026-03-14T10:00:00Z"), Date.parse("2026-03-15T11:00:00Z"), "hour"), 25);
    assert.equal(bucketCount(0, 90_000, "minute"), 2);
    assert.equal(bucketCount(Date.parse("2026-01-01T00:00:00Z"), Date.parse("2026-04-01T00:00:00Z"), "month"), 3);
    assert.equal(bucketCount(Date.parse("2026-01-20T00:00:00Z"), Date.parse("2026-02-03T00:00:00Z"), "month"), 2);
    assert.equal(bucketCount(5, 5, "day"), 0);
  });

  it("asks for every line per key, the summary with the first page only, and the CSV of the same range", () => {
    const q = { start: Date.parse("2026-03-01T00:00:00Z"), end: now, timeframe: "day" as const };
    const first = new URLSearchParams(usagePageQuery(q, null));
    assert.deepEqual(first.getAll("expand"), ["time_series", "auth_method", "summary"]);
    assert.equal(first.get("start"), "2026-03-01T00:00:00.000Z");
    assert.equal(first.get("end"), "2026-03-15T10:20:30.000Z");
    assert.equal(first.get("timeframe"), "day");
    assert.equal(first.get("cursor"), null);
    const next = new URLSearchParams(usagePageQuery(q, "MjUw"));
    assert.deepEqual(next.getAll("expand"), ["time_series", "auth_method"]);
    assert.equal(next.get("cursor"), "MjUw");
    const csv = new URLSearchParams(usageCsvQuery(q));
    assert.equal(csv.get("format"), "csv");
    assert.deepEqual(csv.getAll("expand"), ["time_series", "auth_method"]);
    assert.equal(fileNameOf('attachment; filename="darkroom-usage-2026-03-01-2026-03-16.csv"', "x.csv"), "darkroom-usage-2026-03-01-2026-03-16.csv");
    assert.equal(fileNameOf(null, "x.csv"), "x.csv");
  });
});

describe("usage series and summary", () => {
  const buckets: UsageBucket[] = [
    { bucket: "2026-03-15T08:00:00.000Z", results: [line("darkroom/echo", "k1", 3, 0.006), line("darkroom/echo/stream", "k2", 1, 0.002)] },
    { bucket: "2026-03-15T09:00:00.000Z", results: [] },
    { bucket: "2026-03-15T10:00:00.000Z", results: [line("darkroom/echo", "k2", 2, 0.004), line("darkroom/upscale", null, 1, 0.5), line("darkroom/echo", "k3", 1, 0.002)] },
  ];
  const tenantOf = tenantMap([
    { id: "k1", tenant: "team-a" },
    { id: "k2", tenant: "team-b" },
  ]);

  it("maps keys to their tenants; an unknown key is its own tenant, no key is named as such", () => {
    assert.equal(tenantOf("k1"), "team-a");
    assert.equal(tenantOf("k3"), "k3");
    assert.equal(tenantOf(null), NO_KEY);
  });

  it("charts a metric per app and per tenant with zeros for empty buckets, largest first", () => {
    const perApp = chartData(buckets, "requests", "app", tenantOf);
    assert.deepEqual(perApp.times, [Date.parse("2026-03-15T08:00:00Z") / 1000, Date.parse("2026-03-15T09:00:00Z") / 1000, Date.parse("2026-03-15T10:00:00Z") / 1000]);
    assert.deepEqual(
      perApp.series.map((s) => [s.label, s.values, s.total]),
      [
        ["darkroom/echo", [4, 0, 3], 7],
        ["darkroom/upscale", [0, 0, 1], 1],
      ],
    );
    const perTenant = chartData(buckets, "cost", "tenant", tenantOf);
    assert.deepEqual(
      perTenant.series.map((s) => [s.label, s.values.map(formatAmount)]),
      [
        [NO_KEY, ["0", "0", "0.5"]],
        // A tie (0.006 each) goes by name.
        ["team-a", ["0.006", "0", "0"]],
        ["team-b", ["0.002", "0", "0.004"]],
        ["k3", ["0", "0", "0.002"]],
      ],
    );
    const compute = chartData(buckets, "compute", "app", tenantOf);
    assert.deepEqual(compute.series[0]?.values, [2, 0, 1.5]);
  });

  it("sums the smallest series into Other past the series limit, and keeps currencies apart for cost", () => {
    const many: UsageBucket[] = [{ bucket: "2026-03-15T08:00:00.000Z", results: ["a", "b", "c", "d"].map((o, i) => line(`${o}/app`, null, 10 - i, 1)) }];
    const chart = chartData(many, "requests", "app", tenantOf, 3);
    assert.deepEqual(
      chart.series.map((s) => [s.label, s.total]),
      [
        ["a/app", 10],
        ["b/app", 9],
        ["Other", 15],
      ],
    );
    const mixed: UsageBucket[] = [{ bucket: "2026-03-15T08:00:00.000Z", results: [line("o/a", null, 1, 1), line("o/a", null, 1, 2, { currency: "EUR" })] }];
    assert.deepEqual(
      chartData(mixed, "cost", "app", tenantOf).series.map((s) => s.label),
      ["o/a (EUR)", "o/a (USD)"],
    );
  });

  it("stacks series as running sums", () => {
    const chart = chartData(buckets, "requests", "app", tenantOf);
    assert.deepEqual(stacked(chart.series), [
      [4, 0, 3],
      [4, 0, 4],
    ]);
  });

  it("sums the summary's per-key lines per endpoint and price, and totals them per currency", () => {
    const summary = [line("darkroom/echo", "k1", 3, 0.006), line("darkroom/echo", "k2", 2, 0.004), line("darkroom/echo", "k2", 1, 0.005, { unit_price: 0.005 }), line("darkroom/upscale", null, 1, 0.5, { unit: "megapixel", quantity: 0.25 })];
    const rows = summaryRows(summary);
    assert.deepEqual(
      rows.map((r) => [r.endpoint_id, r.unit, r.unit_price, r.request_count, formatAmount(r.quantity), formatAmount(r.cost), r.compute_seconds]),
      [
        ["darkroom/echo", "request", 0.002, 5, "5", "0.01", 2.5],
        ["darkroom/echo", "request", 0.005, 1, "1", "0.005", 0.5],
        ["darkroom/upscale", "megapixel", 0.5, 1, "0.25", "0.5", 0.5],
      ],
    );
    const totals = usageTotals(rows);
    assert.equal(totals.requests, 7);
    assert.equal(totals.computeSeconds, 3.5);
    assert.equal(formatCosts(totals.costs), "0.515 USD");
    assert.equal(formatCosts([]), "0");
  });

  it("writes amounts with at most six decimals and no exponent", () => {
    assert.equal(formatAmount(0.1 + 0.2), "0.3");
    assert.equal(formatAmount(1204), "1204");
    assert.equal(formatAmount(0.000125), "0.000125");
    assert.equal(formatAmount(1e-9), "0");
    assert.equal(formatAmount(-1e-9), "0");
    assert.equal(formatAmount(12.5), "12.5");
  });
});

describe("limits drafts", () => {
  it("round-trips limits through the form's text and sends only what is set", () => {
    const view = { max_concurrency: 2, requests_per_minute: 30, apps: ["darkroom/*", "acme/flux"], monthly_budget: 12.5, max_queued: null };
    const draft = draftOfLimits(view);
    assert.deepEqual(draft, { max_concurrency: "2", requests_per_minute: "30", max_queued: "", monthly_budget: "12.5", apps: "darkroom/*\nacme/flux" });
    assert.deepEqual(limitsOfDraft(draft), { limits: { max_concurrency: 2, requests_per_minute: 30, monthly_budget: 12.5, apps: ["darkroom/*", "acme/flux"] }, errors: [] });
    assert.deepEqual(limitsOfDraft(draftOfLimits(NO_LIMITS)), { limits: {}, errors: [] });
    // Commas and spaces separate apps too; duplicates go.
    assert.deepEqual(limitsOfDraft({ ...draftOfLimits(NO_LIMITS), apps: "a/b, a/b  c/*" }).limits, { apps: ["a/b", "c/*"] });
    assert.deepEqual(limitsOfDraft({ ...draftOfLimits(NO_LIMITS), monthly_budget: "0" }).limits, { monthly_budget: 0 });
  });

  it("refuses what the server would, at the body's paths", () => {
    const bad = limitsOfDraft({ max_concurrency: "0", requests_per_minute: "2.5", max_queued: "lots", monthly_budget: "-1", apps: "darkroom/echo\nNot_An/App" });
    assert.deepEqual(
      bad.errors.map((e) => e.path),
      ["limits.max_concurrency", "limits.requests_per_minute", "limits.max_queued", "limits.monthly_budget", "limits.apps"],
    );
    assert.match(bad.errors[4]?.message ?? "", /: Not_An\/App$/);
    assert.equal(limitsOfDraft({ ...draftOfLimits(NO_LIMITS), max_concurrency: "99999999999999999999" }).errors.length, 1, "beyond a safe integer");
    assert.equal(tenantNameError("", true), null);
    assert.match(tenantNameError("", false) ?? "", /needs a name/);
    assert.match(tenantNameError("has space", true) ?? "", /letters, digits/);
    assert.equal(tenantNameError("team-a.eu_1", false), null);
    assert.deepEqual(weightOfDraft("2.5"), { weight: 2.5, error: null });
    assert.deepEqual(weightOfDraft(""), { weight: null, error: null });
    assert.match(weightOfDraft("0").error ?? "", /above 0/);
  });

  it("puts a server's field errors next to the field they name, the rest on the form", () => {
    assert.equal(formFieldOf("limits.apps"), "apps");
    assert.equal(formFieldOf("limits.apps[3]"), "apps");
    assert.equal(formFieldOf("limits.max_queued"), "max_queued");
    assert.equal(formFieldOf("tenant"), "tenant");
    assert.equal(formFieldOf("weight"), "weight");
    assert.equal(formFieldOf("path.name"), "name");
    assert.equal(formFieldOf("limits.rpm"), "");
    assert.equal(formFieldOf("apps"), "", "apps outside limits is no limit field");
    const byField = errorsByField([
      { path: "limits.apps", message: "Too big" },
      { path: "limits.apps[0]", message: "bad id" },
      { path: "limits.rpm", message: "Extra inputs are not permitted" },
    ]);
    assert.equal(byField.get("apps"), "Too big; bad id");
    assert.equal(byField.get(""), "limits.rpm: Extra inputs are not permitted");
  });

  it("describes limits on one line", () => {
    assert.equal(describeLimits(NO_LIMITS), "none");
    assert.equal(describeLimits({ max_concurrency: 4, requests_per_minute: 60, apps: ["darkroom/*"], monthly_budget: 25, max_queued: 10 }), "4 at once · 60/min · 10 queued · 25/month · apps: darkroom/*");
    assert.equal(describeLimits({ ...NO_LIMITS, apps: [] }), "no apps");
  });
});

describe("limit refusals", () => {
  it("names the limit behind each refusal and keeps the server's detail", () => {
    const rpm = limitRefusalOf(429, { detail: "This key may make 1 requests per minute; try again in 42 s", error_type: "rate_limited" }, 42);
    assert.deepEqual(rpm, { limit: "requests_per_minute", title: "Requests per minute", detail: "This key may make 1 requests per minute; try again in 42 s", retryAfterSeconds: 42 });
    assert.equal(limitRefusalOf(429, { detail: "This key has 3 requests waiting, its max_queued limit; submit more once some have started", error_type: "queue_full" }, null)?.limit, "max_queued");
    assert.equal(limitRefusalOf(429, { detail: "Queue of darkroom/echo holds 5 requests (fal_max_queue_length=5)", error_type: "queue_full" }, null)?.limit, "queue_length");
    assert.equal(limitRefusalOf(403, { detail: "darkroom/echo is not in the apps limit of this key", error_type: "forbidden" }, null)?.limit, "apps");
    assert.equal(limitRefusalOf(403, { detail: "Tenant 'acme' has spent 10.0000 USD of its monthly budget of 10 USD", error_type: "budget_exhausted" }, null)?.limit, "monthly_budget");
    assert.equal(limitRefusalOf(429, { detail: "Too many failed key checks; try again later", error_type: "rate_limited" }, 30)?.limit, "failed_key_checks");
    // Not a limit: an admin route, a token for another app, a server error.
    assert.equal(limitRefusalOf(403, { detail: "This needs an admin key", error_type: "forbidden" }, null), null);
    assert.equal(limitRefusalOf(403, { detail: "This token is not valid for darkroom/echo", error_type: "forbidden" }, null), null);
    assert.equal(limitRefusalOf(500, { detail: "boom", error_type: "internal_error" }, 5), null);
  });

  it("reads Retry-After as seconds or as an HTTP date, and says how long is left", () => {
    const now = Date.parse("2026-03-15T10:00:00.000Z");
    assert.equal(parseRetryAfter("42", now), 42);
    assert.equal(parseRetryAfter(" 0 ", now), 0);
    assert.equal(parseRetryAfter("Sun, 15 Mar 2026 10:01:30 GMT", now), 90);
    assert.equal(parseRetryAfter("Sun, 15 Mar 2026 09:00:00 GMT", now), 0, "a date gone by");
    assert.equal(parseRetryAfter("soon", now), null);
    assert.equal(parseRetryAfter(null, now), null);
    assert.equal(formatWait(42), "in 42 s");
    assert.equal(formatWait(120), "in 2 min");
    assert.equal(formatWait(125), "in 2 min 5 s");
    assert.equal(formatWait(0), "now");
  });
});
