/**
 * The PostgreSQL driver's prices (an append-only history per endpoint id) and the usage sums costed
 * against them (Store.aggregateUsage), summed by the server: a range of millions of usage records
 * returns one row per bucket, endpoint and price.
 * @module
 */
import type pg from "pg";
import { aggregateUsageSql, assertAggregateQuery, assertNewPrice, sortAggregates, toPriceRecord, toUsageAggregate, type PriceRow, type UsageAggregateRow } from "../price-rows.js";
import type { Store } from "../store.js";
import { selectRows, transaction } from "./queries.js";

export type Prices = Pick<Store, "addPrices" | "listPrices" | "aggregateUsage">;

/** Positions of aggregateUsage's parameters; the optional filters follow as $6, $7, $8. */
const AGGREGATE_PARAMS = { since: 1, until: 2, bucketMs: 3, byKey: 4 } as const;

/** The aggregate statement with the filters a query uses (each filter's SQL is fixed: only its value varies). */
function aggregateStatement(filters: { appIds: boolean; keyId: boolean; tenant: boolean }): string {
  let next = 5;
  const parts: string[] = [];
  if (filters.appIds) parts.push(`\n        AND u.app_id = ANY($${next++}::text[])`);
  if (filters.keyId) parts.push(`\n        AND u.key_id = $${next++}`);
  if (filters.tenant) parts.push(`\n        AND u.tenant = $${next++}`);
  return aggregateUsageSql({
    param: (name) => (name === "byKey" ? `$${AGGREGATE_PARAMS.byKey}::boolean` : `$${AGGREGATE_PARAMS[name]}::bigint`),
    joinPath: (a, b) => `${a} || '/' || ${b}`,
    filters: parts.join(""),
  });
}

export function createPrices(pool: pg.Pool): Prices {
  return {
    async addPrices(prices) {
      for (const price of prices) assertNewPrice(price);
      return transaction(pool, async (client) => {
        const stored = [];
        for (const price of prices) {
          const result = await client.query<PriceRow>({
            name: "darkroom_insert_price",
            text: `INSERT INTO prices (endpoint_id, unit, unit_price, currency, effective_from, source)
                   VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
            values: [price.endpointId, price.unit, price.unitPrice, price.currency, price.effectiveFrom, price.source],
          });
          const row = result.rows[0];
          if (!row) throw new Error(`Storing the price of ${price.endpointId} returned no row`);
          stored.push(toPriceRecord(row));
        }
        return stored;
      });
    },

    async listPrices(endpointIds) {
      const rows =
        endpointIds === undefined
          ? await selectRows<PriceRow>(pool, "SELECT * FROM prices ORDER BY endpoint_id, effective_from, id", [])
          : await selectRows<PriceRow>(pool, "SELECT * FROM prices WHERE endpoint_id = ANY($1::text[]) ORDER BY endpoint_id, effective_from, id", [
              [...new Set(endpointIds)],
            ]);
      // Text order follows the server's collation; the interface promises code-unit order.
      return rows.map(toPriceRecord).sort((a, b) => (a.endpointId < b.endpointId ? -1 : a.endpointId > b.endpointId ? 1 : a.effectiveFrom - b.effectiveFrom || a.id - b.id));
    },

    async aggregateUsage(query) {
      assertAggregateQuery(query);
      const values: unknown[] = [query.since, query.until, query.bucketMs, query.byKey === true];
      if (query.appIds !== undefined) values.push([...query.appIds]);
      if (query.keyId !== undefined) values.push(query.keyId);
      if (query.tenant !== undefined) values.push(query.tenant);
      const text = aggregateStatement({ appIds: query.appIds !== undefined, keyId: query.keyId !== undefined, tenant: query.tenant !== undefined });
      const rows = await selectRows<UsageAggregateRow>(pool, text, values);
      return sortAggregates(rows.map(toUsageAggregate));
    },
  };
}
