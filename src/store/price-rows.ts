/**
 * Prices and usage sums as both drivers' SQL returns them, and what they become: the row shapes,
 * their conversion to records, and the checks a price passes before either driver writes it.
 * @module
 */
import type { NewPrice, PriceRecord, PriceSource, PriceUnit, UsageAggregate, UsageAggregateQuery } from "./store.js";

export interface PriceRow {
  id: number;
  endpoint_id: string;
  unit: string;
  unit_price: number;
  currency: string;
  effective_from: number;
  source: string;
}

export interface UsageAggregateRow {
  bucket_start: number;
  app_id: string;
  endpoint: string;
  key_id: string | null;
  price_id: number | null;
  requests: number;
  billed_requests: number;
  billed_units: number;
  billed_run_ms: number;
  run_ms: number;
}

export function toPriceRecord(row: PriceRow): PriceRecord {
  return {
    id: row.id,
    endpointId: row.endpoint_id,
    unit: row.unit as PriceUnit,
    unitPrice: row.unit_price,
    currency: row.currency,
    effectiveFrom: row.effective_from,
    source: row.source as PriceSource,
  };
}

export function toUsageAggregate(row: UsageAggregateRow): UsageAggregate {
  return {
    bucketStart: row.bucket_start,
    appId: row.app_id,
    endpoint: row.endpoint,
    keyId: row.key_id,
    priceId: row.price_id,
    requests: row.requests,
    billedRequests: row.billed_requests,
    billedUnits: row.billed_units,
    billedRunMs: row.billed_run_ms,
    runMs: row.run_ms,
  };
}

/**
 * Refuses a price no driver should store: a negative or non-finite price (NaN would be stored as
 * NULL by SQLite and refused by PostgreSQL: the same error everywhere is better) or a fractional time.
 */
export function assertNewPrice(price: NewPrice): void {
  if (!Number.isFinite(price.unitPrice) || price.unitPrice < 0) throw new Error(`Invalid unit price ${price.unitPrice} for ${price.endpointId}`);
  if (!Number.isSafeInteger(price.effectiveFrom)) throw new Error(`Invalid effectiveFrom ${price.effectiveFrom} for ${price.endpointId}`);
}

/** Refuses a bucketing the SQL cannot do: buckets must be whole milliseconds wide and the range ordered. */
export function assertAggregateQuery(query: UsageAggregateQuery): void {
  if (!Number.isSafeInteger(query.bucketMs) || query.bucketMs <= 0) throw new Error(`Invalid bucketMs ${query.bucketMs}`);
  if (!Number.isSafeInteger(query.since) || !Number.isSafeInteger(query.until) || query.until < query.since) {
    throw new Error(`Invalid usage range [${query.since}, ${query.until})`);
  }
}

/**
 * The order `Store.aggregateUsage` promises: bucket, app id, endpoint, key id, price id (nulls last),
 * comparing text by code unit. Sorted here rather than in SQL, whose text order follows the
 * database's collation and so differs between drivers (and PostgreSQL servers).
 */
export function sortAggregates(rows: UsageAggregate[]): UsageAggregate[] {
  const text = (a: string | null, b: string | null): number => (a === b ? 0 : a === null ? 1 : b === null ? -1 : a < b ? -1 : 1);
  const num = (a: number | null, b: number | null): number => (a === b ? 0 : a === null ? 1 : b === null ? -1 : a - b);
  return rows.sort(
    (a, b) =>
      a.bucketStart - b.bucketStart || text(a.appId, b.appId) || text(a.endpoint, b.endpoint) || text(a.keyId, b.keyId) || num(a.priceId, b.priceId),
  );
}

/** How a driver writes the parts of {@link aggregateUsageSql} that differ between SQL dialects. */
export interface AggregateDialect {
  /** A parameter, as an integer (`since`, `until`, `bucketMs`) or a boolean (`byKey`) expression. */
  param: (name: "since" | "until" | "bucketMs" | "byKey") => string;
  /** `a || '/' || b`. */
  joinPath: (a: string, b: string) => string;
  /** The driver's optional filters (app ids, key, tenant), each starting with ` AND `. */
  filters: string;
}

/**
 * The SQL both drivers sum usage with, written once. The price of a record is looked up per record
 * on the `prices_endpoint_effective` index (at most two index probes); the sums run in the database,
 * so one row per bucket, endpoint, key and price comes back, however many records the range holds.
 * Integer sums are cast to bigint: PostgreSQL's SUM of bigint is numeric, which pg reads as a string.
 */
export function aggregateUsageSql(dialect: AggregateDialect): string {
  const { param } = dialect;
  const since = param("since");
  const billed = `(u.state = 'SUCCEEDED' OR (u.state = 'CANCELLED' AND u.run_ms > 0))`;
  const priceOf = (endpointId: string): string => `(
          SELECT p.id FROM prices p
          WHERE p.endpoint_id = ${endpointId} AND p.effective_from <= u.finished_at
          ORDER BY p.effective_from DESC, p.id DESC LIMIT 1)`;
  return `
    SELECT bucket_start, app_id, endpoint, key_id, price_id,
           CAST(COUNT(*) AS BIGINT) AS requests,
           CAST(SUM(CASE WHEN billed THEN 1 ELSE 0 END) AS BIGINT) AS billed_requests,
           CAST(SUM(units) AS DOUBLE PRECISION) AS billed_units,
           CAST(SUM(CASE WHEN billed THEN run_ms ELSE 0 END) AS BIGINT) AS billed_run_ms,
           CAST(SUM(run_ms) AS BIGINT) AS run_ms
    FROM (
      SELECT ${since} + (u.finished_at - ${since}) / ${param("bucketMs")} * ${param("bucketMs")} AS bucket_start,
             u.app_id, u.endpoint,
             CASE WHEN ${param("byKey")} THEN u.key_id ELSE NULL END AS key_id,
             COALESCE(${priceOf(`CASE WHEN u.endpoint = '' THEN u.app_id ELSE ${dialect.joinPath("u.app_id", "u.endpoint")} END`)},
                      ${priceOf("u.app_id")}) AS price_id,
             ${billed} AS billed,
             CASE WHEN u.state = 'SUCCEEDED' THEN COALESCE(u.billable_units, 1)
                  WHEN ${billed} THEN COALESCE(u.billable_units, 0)
                  ELSE 0 END AS units,
             u.run_ms
      FROM usage u
      WHERE u.finished_at >= ${since} AND u.finished_at < ${param("until")}${dialect.filters}
    ) AS r
    GROUP BY bucket_start, app_id, endpoint, key_id, price_id`;
}
