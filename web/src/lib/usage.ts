/**
 * The Usage page's arithmetic over `GET /v1/models/usage` (docs/pricing-and-usage.md): the periods
 * it offers and their ranges, the query of each page, the chart's series per app or per tenant,
 * and the summary per endpoint.
 *
 * The page asks once, with `expand=auth_method`, so that every line is one key's; it groups by
 * app from the endpoint id and by tenant through the key list (`GET /v1/keys`). That is two
 * requests (plus pages of a long range) whatever the number of tenants, where a query per tenant
 * (`&tenant=…`) would be one per tenant. The price: a key is counted under the tenant it belongs
 * to now, while `&tenant=` filters by the tenant each request was made under.
 * @module
 */

export const TIMEFRAMES = ["minute", "hour", "day", "week", "month"] as const;
export type Timeframe = (typeof TIMEFRAMES)[number];

/** One line item: one endpoint at one price (and, with `auth_method`, one key) in one bucket or the summary. */
export interface UsageLine {
  endpoint_id: string;
  unit: string;
  quantity: number;
  unit_price: number;
  cost: number;
  currency: string;
  auth_method?: string;
  key_id?: string | null;
  request_count: number;
  billed_request_count: number;
  compute_seconds: number;
}

export interface UsageBucket {
  bucket: string;
  results: UsageLine[];
}

/** One answer of `GET /v1/models/usage`. */
export interface UsageAnswer {
  time_series?: UsageBucket[];
  summary?: UsageLine[];
  next_cursor: string | null;
  has_more: boolean;
  start: string;
  end: string;
  timeframe: Timeframe;
}

export type Period = "24h" | "7d" | "30d" | "month";

export interface PeriodChoice {
  value: Period;
  label: string;
  /** The timeframes that make a readable chart of it; the first is the one it starts with. */
  timeframes: readonly Timeframe[];
}

export const PERIODS: readonly PeriodChoice[] = [
  { value: "24h", label: "Last 24 hours", timeframes: ["hour", "minute"] },
  { value: "7d", label: "Last 7 days", timeframes: ["hour", "day"] },
  { value: "30d", label: "Last 30 days", timeframes: ["day", "hour", "week"] },
  { value: "month", label: "This month (UTC)", timeframes: ["day", "hour", "week"] },
];

export function isPeriod(value: string | null): value is Period {
  return PERIODS.some((p) => p.value === value);
}

export function periodChoice(period: Period): PeriodChoice {
  return PERIODS.find((p) => p.value === period) ?? (PERIODS[0] as PeriodChoice);
}

/** The timeframe for `period`: `wanted` when it suits the period, else the period's first. */
export function timeframeFor(period: Period, wanted: string | null): Timeframe {
  const choice = periodChoice(period);
  return choice.timeframes.find((t) => t === wanted) ?? (choice.timeframes[0] as Timeframe);
}

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const FIXED_MS: Readonly<Record<Exclude<Timeframe, "month">, number>> = { minute: 60_000, hour: HOUR, day: DAY, week: 7 * DAY };

/** The range a period covers, ending at `now` (the server aligns it to whole buckets). */
export function periodRange(period: Period, now: number): { start: number; end: number } {
  switch (period) {
    case "24h":
      return { start: now - DAY, end: now };
    case "7d":
      return { start: now - 7 * DAY, end: now };
    case "30d":
      return { start: now - 30 * DAY, end: now };
    case "month": {
      const d = new Date(now);
      const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
      return { start, end: Math.max(now, start + 1) };
    }
  }
}

/** Buckets in [`start`, `end`) for `timeframe` (the server's grid: a month bucket is a calendar month). */
export function bucketCount(start: number, end: number, timeframe: Timeframe): number {
  if (end <= start) return 0;
  if (timeframe !== "month") return Math.ceil((end - start) / FIXED_MS[timeframe]);
  const a = new Date(start);
  const b = new Date(end - 1);
  return (b.getUTCFullYear() - a.getUTCFullYear()) * 12 + (b.getUTCMonth() - a.getUTCMonth()) + 1;
}

/** Buckets the page asks for at once: a long range comes in a few pages, and the page shows how far it got. */
export const PAGE_BUCKETS = 250;

export interface UsageQuery {
  start: number;
  end: number;
  timeframe: Timeframe;
}

/**
 * The query string of one page: every line per key (`auth_method`), the summary with the first page
 * only (it covers the whole range on every page).
 */
export function usagePageQuery(q: UsageQuery, cursor: string | null): string {
  const params = new URLSearchParams({ start: new Date(q.start).toISOString(), end: new Date(q.end).toISOString(), timeframe: q.timeframe });
  params.append("expand", "time_series");
  params.append("expand", "auth_method");
  if (cursor === null) params.append("expand", "summary");
  params.set("limit", String(PAGE_BUCKETS));
  if (cursor !== null) params.set("cursor", cursor);
  return params.toString();
}

/** The CSV export of the same range: one row per bucket, endpoint, price and key. */
export function usageCsvQuery(q: UsageQuery): string {
  const params = new URLSearchParams({ start: new Date(q.start).toISOString(), end: new Date(q.end).toISOString(), timeframe: q.timeframe });
  params.append("expand", "time_series");
  params.append("expand", "auth_method");
  params.set("format", "csv");
  return params.toString();
}

/** The file name in a `Content-Disposition` header, or `fallback`. */
export function fileNameOf(contentDisposition: string | null, fallback: string): string {
  const m = /filename="?([^";]+)"?/i.exec(contentDisposition ?? "");
  return m?.[1] ?? fallback;
}

export type Metric = "requests" | "cost" | "compute";
export type Grouping = "app" | "tenant";

export const METRICS: readonly { value: Metric; label: string }[] = [
  { value: "requests", label: "Requests" },
  { value: "cost", label: "Cost" },
  { value: "compute", label: "Compute time" },
];

export const GROUPINGS: readonly { value: Grouping; label: string }[] = [
  { value: "app", label: "App" },
  { value: "tenant", label: "Tenant" },
];

export function metricOf(line: UsageLine, metric: Metric): number {
  if (metric === "requests") return line.request_count;
  if (metric === "cost") return line.cost;
  return line.compute_seconds;
}

/** `owner/alias` of an endpoint id. */
export function appOf(endpointId: string): string {
  return endpointId.split("/").slice(0, 2).join("/");
}

/** The label usage without a key is grouped under. */
export const NO_KEY = "(no key)";

/** Maps a line's key to its tenant: the key's tenant now; an unknown key is a tenant of its own, as the server names it. */
export function tenantMap(keys: readonly { id: string; tenant: string }[]): (keyId: string | null | undefined) => string {
  const byKey = new Map(keys.map((k) => [k.id, k.tenant]));
  return (keyId) => (keyId === null || keyId === undefined ? NO_KEY : (byKey.get(keyId) ?? keyId));
}

export interface ChartSeries {
  label: string;
  values: number[];
  total: number;
}

export interface ChartData {
  /** Bucket starts, unix seconds. */
  times: number[];
  series: ChartSeries[];
}

/** Series beyond this many are summed into one "Other" series. */
export const MAX_SERIES = 8;
export const OTHER = "Other";

/**
 * The chart of `metric` per app or per tenant: one series per group over every bucket (zeros where a
 * group had none), largest total first; past `maxSeries`, the smallest are summed into "Other". Cost
 * in several currencies keeps each currency a series of its own.
 */
export function chartData(buckets: readonly UsageBucket[], metric: Metric, grouping: Grouping, tenantOf: (keyId: string | null | undefined) => string, maxSeries = MAX_SERIES): ChartData {
  const currencies = new Set(buckets.flatMap((b) => b.results.map((l) => l.currency)));
  const byGroup = new Map<string, number[]>();
  buckets.forEach((bucket, i) => {
    for (const line of bucket.results) {
      let label = grouping === "app" ? appOf(line.endpoint_id) : tenantOf(line.key_id);
      if (metric === "cost" && currencies.size > 1) label += ` (${line.currency})`;
      let values = byGroup.get(label);
      if (!values) {
        values = new Array<number>(buckets.length).fill(0);
        byGroup.set(label, values);
      }
      values[i] = (values[i] ?? 0) + metricOf(line, metric);
    }
  });
  const all = [...byGroup.entries()].map(([label, values]) => ({ label, values, total: values.reduce((a, b) => a + b, 0) }));
  all.sort((a, b) => b.total - a.total || a.label.localeCompare(b.label));
  let series = all;
  if (all.length > maxSeries) {
    const rest = all.slice(maxSeries - 1);
    const values = buckets.map((_, i) => rest.reduce((sum, s) => sum + (s.values[i] ?? 0), 0));
    series = [...all.slice(0, maxSeries - 1), { label: OTHER, values, total: values.reduce((a, b) => a + b, 0) }];
  }
  return { times: buckets.map((b) => Date.parse(b.bucket) / 1000), series };
}

/** Running sums of `series` in order: what a stacked chart draws (the last is the total). */
export function stacked(series: readonly ChartSeries[]): number[][] {
  const out: number[][] = [];
  let below: number[] | null = null;
  for (const s of series) {
    const prev: number[] | null = below;
    const sums: number[] = s.values.map((v, i) => v + (prev?.[i] ?? 0));
    out.push(sums);
    below = sums;
  }
  return out;
}

/** One row of the summary: an endpoint at one price, summed over keys. */
export interface SummaryRow {
  endpoint_id: string;
  unit: string;
  unit_price: number;
  currency: string;
  quantity: number;
  cost: number;
  request_count: number;
  billed_request_count: number;
  compute_seconds: number;
}

/** The summary per endpoint and price (the server's lines are per key too, with `auth_method`), sorted by endpoint. */
export function summaryRows(lines: readonly UsageLine[]): SummaryRow[] {
  const rows = new Map<string, SummaryRow>();
  for (const l of lines) {
    const id = JSON.stringify([l.endpoint_id, l.unit, l.unit_price, l.currency]);
    const row = rows.get(id);
    if (row) {
      row.quantity += l.quantity;
      row.cost += l.cost;
      row.request_count += l.request_count;
      row.billed_request_count += l.billed_request_count;
      row.compute_seconds += l.compute_seconds;
    } else {
      rows.set(id, {
        endpoint_id: l.endpoint_id,
        unit: l.unit,
        unit_price: l.unit_price,
        currency: l.currency,
        quantity: l.quantity,
        cost: l.cost,
        request_count: l.request_count,
        billed_request_count: l.billed_request_count,
        compute_seconds: l.compute_seconds,
      });
    }
  }
  return [...rows.values()].sort((a, b) => a.endpoint_id.localeCompare(b.endpoint_id) || a.unit_price - b.unit_price);
}

export interface UsageTotals {
  requests: number;
  computeSeconds: number;
  /** Cost per currency, largest first. */
  costs: { currency: string; cost: number }[];
}

export function usageTotals(rows: readonly SummaryRow[]): UsageTotals {
  const costs = new Map<string, number>();
  for (const r of rows) costs.set(r.currency, (costs.get(r.currency) ?? 0) + r.cost);
  return {
    requests: rows.reduce((a, r) => a + r.request_count, 0),
    computeSeconds: rows.reduce((a, r) => a + r.compute_seconds, 0),
    costs: [...costs.entries()].map(([currency, cost]) => ({ currency, cost })).sort((a, b) => b.cost - a.cost),
  };
}

/** A quantity, price or cost: at most six decimals, no exponent, no grouping ("0.041", "1204", "0.000125"). */
export function formatAmount(n: number): string {
  if (!Number.isFinite(n)) return "–";
  const fixed = n.toFixed(6).replace(/\.?0+$/, "");
  return fixed === "-0" ? "0" : fixed;
}

/** Cost with its currency; several currencies are listed side by side. */
export function formatCosts(costs: readonly { currency: string; cost: number }[]): string {
  return costs.length === 0 ? "0" : costs.map((c) => `${formatAmount(c.cost)} ${c.currency}`).join(" + ");
}
