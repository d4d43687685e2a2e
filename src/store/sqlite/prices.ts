/**
 * The SQLite driver's prices (an append-only history per endpoint id) and the usage sums costed
 * against them (Store.aggregateUsage). Writes run through the group commit; reads take no lock.
 * @module
 */
import type Database from "better-sqlite3";
import { aggregateUsageSql, assertAggregateQuery, assertNewPrice, sortAggregates, toPriceRecord, toUsageAggregate, type PriceRow, type UsageAggregateRow } from "../price-rows.js";
import type { NewPrice, Store } from "../store.js";
import type { GroupCommit } from "./group-commit.js";

export type Prices = Pick<Store, "addPrices" | "listPrices" | "aggregateUsage">;

interface AggregateParams {
  since: number;
  until: number;
  bucketMs: number;
  byKey: number;
  /** JSON array of app ids, or null for every app. */
  appIds: string | null;
  keyId: string | null;
  tenant: string | null;
}

export function createPrices(db: Database.Database, writes: GroupCommit): Prices {
  const insertPrice = db.prepare<NewPrice, PriceRow>(`
    INSERT INTO prices (endpoint_id, unit, unit_price, currency, effective_from, source)
    VALUES (@endpointId, @unit, @unitPrice, @currency, @effectiveFrom, @source)
    RETURNING *`);
  const selectAllPrices = db.prepare<[], PriceRow>(`SELECT * FROM prices ORDER BY endpoint_id, effective_from, id`);
  const selectPricesOf = db.prepare<[string], PriceRow>(`
    SELECT p.* FROM json_each(?) AS wanted CROSS JOIN prices AS p ON p.endpoint_id = wanted.value
    ORDER BY p.endpoint_id, p.effective_from, p.id`);
  // Numbers are cast: better-sqlite3 may bind a JavaScript number as REAL, and the bucket arithmetic
  // must be integer division.
  const aggregate = db.prepare<AggregateParams, UsageAggregateRow>(
    aggregateUsageSql({
      param: (name) => `CAST(@${name} AS INTEGER)`,
      joinPath: (a, b) => `${a} || '/' || ${b}`,
      filters: `
        AND (@appIds IS NULL OR u.app_id IN (SELECT value FROM json_each(@appIds)))
        AND (@keyId IS NULL OR u.key_id = @keyId)
        AND (@tenant IS NULL OR u.tenant = @tenant)`,
    }),
  );

  return {
    async addPrices(prices) {
      for (const price of prices) assertNewPrice(price);
      // One group-commit write: the prices are stored together or not at all.
      const rows = await writes.run(() => prices.map((price) => insertPrice.get({ ...price })));
      return rows.map((row, i) => {
        if (!row) throw new Error(`Storing the price of ${prices[i]?.endpointId} returned no row`);
        return toPriceRecord(row);
      });
    },

    async listPrices(endpointIds) {
      const rows = endpointIds === undefined ? selectAllPrices.all() : selectPricesOf.all(JSON.stringify([...new Set(endpointIds)]));
      return rows.map(toPriceRecord);
    },

    async aggregateUsage(query) {
      assertAggregateQuery(query);
      const rows = aggregate.all({
        since: query.since,
        until: query.until,
        bucketMs: query.bucketMs,
        byKey: query.byKey ? 1 : 0,
        appIds: query.appIds === undefined ? null : JSON.stringify(query.appIds),
        keyId: query.keyId ?? null,
        tenant: query.tenant ?? null,
      });
      return sortAggregates(rows.map(toUsageAggregate));
    },
  };
}
