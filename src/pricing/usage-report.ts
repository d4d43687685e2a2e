/**
 * Reads usage as priced line items: the buckets of a report (a page at a time, or all of them for an
 * export) and its summary over the whole range. The store sums in SQL and the prices come after, so
 * a report never holds more than one row per bucket, endpoint, key and price.
 * @module
 */
import type { Store, UsageAggregate, UsageAggregateQuery } from "../store/store.js";
import { PriceBook, type DefaultPrice } from "./price-book.js";
import type { BucketGrid } from "./timeframes.js";
import { appIdsOf, costByCurrency, costLines, type EndpointFilter, type UsageLine } from "./usage-lines.js";

/** What a report reads from. */
export interface UsageSource {
  store: Store;
  defaultPrice: DefaultPrice;
}

/** Which usage a report covers, besides its time range. */
export interface UsageReportFilter {
  endpoints: EndpointFilter;
  keyId?: string;
  tenant?: string;
  /** Keep each key's usage on lines of its own (fal's `expand=auth_method`). */
  byKey?: boolean;
}

/** Buckets a CSV export reads at once. */
const EXPORT_PAGE_BUCKETS = 1000;

function storeQuery(filter: UsageReportFilter, range: Pick<UsageAggregateQuery, "since" | "until" | "bucketMs">): UsageAggregateQuery {
  const appIds = appIdsOf(filter.endpoints);
  return {
    ...range,
    ...(appIds ? { appIds } : {}),
    ...(filter.keyId !== undefined ? { keyId: filter.keyId } : {}),
    ...(filter.tenant !== undefined ? { tenant: filter.tenant } : {}),
    byKey: filter.byKey === true,
  };
}

/** Prices the sums: the book is read after them, so it holds every price they name. */
async function priced(source: UsageSource, sums: readonly UsageAggregate[], filter: UsageReportFilter): Promise<UsageLine[]> {
  return costLines(sums, await PriceBook.load(source.store, source.defaultPrice), filter.endpoints);
}

/** The lines of `count` buckets of `grid` from bucket `first`, in bucket order. */
export async function bucketLines(source: UsageSource, grid: BucketGrid, first: number, count: number, filter: UsageReportFilter): Promise<UsageLine[]> {
  const last = Math.min(first + count, grid.count);
  if (last <= first) return [];
  if (grid.widthMs !== null) {
    const sums = await source.store.aggregateUsage(storeQuery(filter, { since: grid.startOf(first), until: grid.startOf(last), bucketMs: grid.widthMs }));
    return priced(source, sums, filter);
  }
  // Calendar months differ in length: one sum per month, each its own single bucket.
  const sums: UsageAggregate[] = [];
  for (let i = first; i < last; i++) {
    const since = grid.startOf(i);
    const until = grid.endOf(i);
    sums.push(...(await source.store.aggregateUsage(storeQuery(filter, { since, until, bucketMs: until - since }))));
  }
  return priced(source, sums, filter);
}

/** Every line of the grid, a page of buckets at a time (what a CSV export streams). */
export async function* allBucketLines(source: UsageSource, grid: BucketGrid, filter: UsageReportFilter): AsyncGenerator<UsageLine> {
  for (let first = 0; first < grid.count; first += EXPORT_PAGE_BUCKETS) {
    yield* await bucketLines(source, grid, first, EXPORT_PAGE_BUCKETS, filter);
  }
}

/** The lines of [`since`, `until`) as one bucket: fal's `summary`, totals per endpoint and price. */
export async function summaryLines(source: UsageSource, since: number, until: number, filter: UsageReportFilter): Promise<UsageLine[]> {
  if (until <= since) return [];
  const sums = await source.store.aggregateUsage(storeQuery(filter, { since, until, bucketMs: until - since }));
  return priced(source, sums, filter);
}

/**
 * What usage in [`since`, `until`) cost, per currency: a tenant's or key's spend, e.g. against a
 * monthly budget.
 */
export async function spendOf(source: UsageSource, since: number, until: number, filter: Omit<UsageReportFilter, "byKey">): Promise<Map<string, number>> {
  return costByCurrency(await summaryLines(source, since, until, filter));
}
