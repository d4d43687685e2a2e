/**
 * `GET /v1/models/usage` (admin), in fal's platform-API shape: usage line items (quantity in the
 * price's unit, unit price, cost) in time buckets (`expand=time_series`) and in total
 * (`expand=summary`), for all endpoints or some, with Darkroom's `key_id` and `tenant` filters, and
 * a CSV export of the same line items (`format=csv` or `Accept: text/csv`). The raw records stay at
 * `/v1/usage` (routes/platform.ts). See docs/pricing-and-usage.md.
 * @module
 */
import type { FastifyInstance } from "fastify";
import { Readable } from "node:stream";
import { PlatformError, type FieldError } from "../../core/errors.js";
import { defaultPriceOf } from "../../pricing/price-book.js";
import { endpointIdsOfQuery, MAX_QUERY_ENDPOINT_IDS } from "../../pricing/price-list.js";
import { autoTimeframe, BucketGrid, isTimeframe, TIMEFRAMES, type Timeframe } from "../../pricing/timeframes.js";
import { usageCsvHeader, usageCsvRow } from "../../pricing/usage-csv.js";
import { usageLineView, type UsageLine } from "../../pricing/usage-lines.js";
import { allBucketLines, bucketLines, summaryLines, type UsageReportFilter, type UsageSource } from "../../pricing/usage-report.js";
import { requireAdmin, type GatewayContext } from "../context.js";

const EXPANSIONS = ["time_series", "summary", "auth_method"] as const;
type Expansion = (typeof EXPANSIONS)[number];

/** fal's default range: the last 24 hours. */
const DEFAULT_RANGE_MS = 24 * 3600 * 1000;
/** Longest range one query covers: a century, in which month buckets are still few. */
const MAX_RANGE_MS = 100 * 366 * 24 * 3600 * 1000;
/** Buckets per page when the query names no limit, and the most a page holds. */
const DEFAULT_PAGE_BUCKETS = 500;
const MAX_PAGE_BUCKETS = 10_000;
/** Darkroom buckets in UTC; fal's `timezone` is accepted when it says so. */
const UTC_NAMES = new Set(["utc", "etc/utc", "gmt", "etc/gmt", "z", "+00:00"]);

interface UsageQuery {
  grid: BucketGrid;
  expand: ReadonlySet<Expansion>;
  filter: UsageReportFilter;
  /** Index of the first bucket of the page. */
  offset: number;
  limit: number;
  csv: boolean;
}

type RawQuery = Record<string, string | string[] | undefined>;

function queryError(name: string, msg: string): FieldError {
  return { loc: ["query", name], msg, type: "value_error" };
}

/** The one value of a parameter; given twice, the first (as Fastify's own parser would keep). */
function single(q: RawQuery, name: string): string | undefined {
  const raw = q[name];
  return Array.isArray(raw) ? raw[0] : raw;
}

/** A repeatable parameter (`?expand=a&expand=b`), comma lists allowed. */
function list(q: RawQuery, name: string): string[] {
  const raw = q[name];
  const values = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
}

/** An ISO 8601 date or date-time (a date alone is midnight UTC), as unix ms. */
function timeParam(q: RawQuery, name: string, fallback: number, problems: FieldError[]): number {
  const raw = single(q, name);
  if (raw === undefined || raw.trim() === "") return fallback;
  const ms = Date.parse(raw);
  if (!Number.isFinite(ms)) problems.push(queryError(name, "an ISO 8601 date or date-time, e.g. 2025-01-01 or 2025-01-01T00:00:00Z"));
  return Number.isFinite(ms) ? ms : fallback;
}

/** The cursor of a page: the index of its first bucket, base64 (fal's cursors encode the page, e.g. `Mg==`). */
function cursorOf(offset: number): string {
  return Buffer.from(String(offset)).toString("base64");
}

function offsetOfCursor(cursor: string): number | null {
  const text = Buffer.from(cursor, "base64").toString("utf8");
  return /^\d{1,15}$/.test(text) ? Number(text) : null;
}

function wantsCsv(q: RawQuery, accept: string | undefined, problems: FieldError[]): boolean {
  const format = single(q, "format");
  if (format === undefined) return /\btext\/csv\b/i.test(accept ?? "") && !/\bapplication\/json\b/i.test(accept ?? "");
  if (format !== "json" && format !== "csv") problems.push(queryError("format", "json or csv"));
  return format === "csv";
}

function parseUsageQuery(q: RawQuery, accept: string | undefined, now: number): UsageQuery {
  const problems: FieldError[] = [];
  const end = timeParam(q, "end", now, problems);
  const start = timeParam(q, "start", end - DEFAULT_RANGE_MS, problems);
  if (problems.length === 0 && !(end > start)) problems.push(queryError("end", "must be after start"));
  if (end - start > MAX_RANGE_MS) problems.push(queryError("start", "a range of at most 100 years"));

  const timezone = single(q, "timezone");
  if (timezone !== undefined && !UTC_NAMES.has(timezone.trim().toLowerCase())) {
    problems.push(queryError("timezone", "Darkroom buckets usage in UTC only: leave timezone out or set it to UTC"));
  }
  const timeframeRaw = single(q, "timeframe");
  if (timeframeRaw !== undefined && !isTimeframe(timeframeRaw)) problems.push(queryError("timeframe", `one of ${TIMEFRAMES.join(", ")}`));
  const bound = single(q, "bound_to_timeframe") ?? "true";
  if (bound !== "true" && bound !== "false") problems.push(queryError("bound_to_timeframe", "true or false"));

  const expandList = list(q, "expand");
  const unknownExpand = expandList.filter((e) => !(EXPANSIONS as readonly string[]).includes(e));
  if (unknownExpand.length > 0) problems.push(queryError("expand", `unknown: ${unknownExpand.join(", ")} (known: ${EXPANSIONS.join(", ")})`));
  const expand = new Set((expandList.length > 0 ? expandList : ["time_series"]) as Expansion[]);
  if (!expand.has("time_series") && !expand.has("summary")) problems.push(queryError("expand", "at least one of time_series and summary"));

  const { ids, invalid } = endpointIdsOfQuery(q["endpoint_id"]);
  if (invalid.length > 0) problems.push(queryError("endpoint_id", `not an endpoint id: ${invalid.join(", ")}`));
  if (ids.length > MAX_QUERY_ENDPOINT_IDS) problems.push(queryError("endpoint_id", `at most ${MAX_QUERY_ENDPOINT_IDS} endpoint ids`));

  const limitRaw = single(q, "limit");
  const limit = limitRaw === undefined ? DEFAULT_PAGE_BUCKETS : /^\d+$/.test(limitRaw) ? Number(limitRaw) : Number.NaN;
  if (!(limit >= 1 && limit <= MAX_PAGE_BUCKETS)) problems.push(queryError("limit", `a whole number of buckets from 1 to ${MAX_PAGE_BUCKETS}`));
  const cursor = single(q, "cursor");
  const offset = cursor === undefined ? 0 : offsetOfCursor(cursor);
  if (offset === null) problems.push(queryError("cursor", "a next_cursor from an earlier answer"));
  const csv = wantsCsv(q, accept, problems);

  if (problems.length > 0) throw new PlatformError("ERR_VALIDATION", { fieldErrors: problems });
  const timeframe: Timeframe = timeframeRaw !== undefined && isTimeframe(timeframeRaw) ? timeframeRaw : autoTimeframe(end - start);
  const keyId = single(q, "key_id");
  const tenant = single(q, "tenant");
  return {
    grid: BucketGrid.of(start, end, timeframe, bound === "true"),
    expand,
    filter: {
      endpoints: ids.length > 0 ? new Set(ids) : null,
      ...(keyId !== undefined ? { keyId } : {}),
      ...(tenant !== undefined ? { tenant } : {}),
      byKey: expand.has("auth_method"),
    },
    offset: offset ?? 0,
    limit,
    csv,
  };
}

export function registerUsageRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const source: UsageSource = { store: ctx.store, defaultPrice: defaultPriceOf(ctx.config.pricing.defaultComputePrice) };

  /** fal's `auth_method` label of a key: its name, or its id when it has none. */
  async function keyLabels(): Promise<Map<string, string>> {
    return new Map((await ctx.keys.list()).map((k) => [k.id, k.name || k.id]));
  }

  app.get("/v1/models/usage", async (request, reply) => {
    requireAdmin(request);
    const query = parseUsageQuery(request.query as RawQuery, request.headers.accept, Date.now());
    const { grid, filter } = query;

    if (query.csv) {
      // The whole range, a page of buckets at a time: an export never holds the range in memory.
      async function* csv(): AsyncGenerator<string> {
        yield usageCsvHeader();
        for await (const line of allBucketLines(source, grid, filter)) yield usageCsvRow(line);
      }
      const name = `darkroom-usage-${new Date(grid.start).toISOString().slice(0, 10)}-${new Date(grid.end).toISOString().slice(0, 10)}.csv`;
      return reply
        .type("text/csv; charset=utf-8")
        .header("content-disposition", `attachment; filename="${name}"`)
        .send(Readable.from(csv()));
    }

    const labels = query.expand.has("auth_method") ? await keyLabels() : null;
    const body: Record<string, unknown> = {};
    let hasMore = false;
    if (query.expand.has("time_series")) {
      const last = Math.min(query.offset + query.limit, grid.count);
      const lines = await bucketLines(source, grid, query.offset, query.limit, filter);
      const byBucket = new Map<number, UsageLine[]>();
      for (const line of lines) {
        const bucket = byBucket.get(line.bucketStart);
        if (bucket) bucket.push(line);
        else byBucket.set(line.bucketStart, [line]);
      }
      const buckets: Record<string, unknown>[] = [];
      // Every bucket of the page, empty ones too: a chart needs its zeros.
      for (let i = query.offset; i < last; i++) {
        const start = grid.startOf(i);
        buckets.push({ bucket: new Date(start).toISOString(), results: (byBucket.get(start) ?? []).map((l) => usageLineView(l, labels)) });
      }
      body["time_series"] = buckets;
      hasMore = last < grid.count;
    }
    if (query.expand.has("summary")) {
      body["summary"] = (await summaryLines(source, grid.start, grid.end, filter)).map((l) => usageLineView(l, labels));
    }
    return {
      ...body,
      next_cursor: hasMore ? cursorOf(query.offset + query.limit) : null,
      has_more: hasMore,
      // Darkroom's: the range and timeframe the answer covers, after alignment and auto-detection.
      start: new Date(grid.start).toISOString(),
      end: new Date(grid.end).toISOString(),
      timeframe: grid.timeframe,
    };
  });
}
