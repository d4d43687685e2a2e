/**
 * Usage sums (`Store.aggregateUsage`) costed into fal's usage line items: per bucket and endpoint,
 * the quantity billed in the price's unit, the unit price, and their product. Sums of one endpoint
 * under equal prices (the app's price and the endpoint's own, a price set again unchanged) merge
 * into one line.
 * @module
 */
import type { PriceUnit, UsageAggregate } from "../store/store.js";
import { appIdOf, endpointIdOf, type PriceBook } from "./price-book.js";

export interface UsageLine {
  /** Unix ms at which the line's bucket starts. */
  bucketStart: number;
  endpointId: string;
  /** Set when lines are kept apart per key. */
  keyId: string | null;
  unit: PriceUnit;
  /** Units billed: billable units, or seconds of run time for a `compute_second` price. */
  quantity: number;
  unitPrice: number;
  /** quantity × unitPrice. */
  cost: number;
  currency: string;
  /** Requests that finished, billed or not. */
  requestCount: number;
  /** Requests that are billed (src/pricing/billable-units.ts). */
  billedRequests: number;
  /** Run time of every request, seconds. */
  computeSeconds: number;
}

/**
 * Which endpoint ids a report keeps: the ids asked for, where an app id (`owner/alias`) keeps every
 * endpoint of the app and a longer id exactly that endpoint. Null keeps everything.
 */
export type EndpointFilter = ReadonlySet<string> | null;

export function endpointMatches(filter: EndpointFilter, endpointId: string): boolean {
  return filter === null || filter.has(endpointId) || filter.has(appIdOf(endpointId));
}

/** The app ids a filter needs from the store (it filters by app; endpoints are picked out after). */
export function appIdsOf(filter: EndpointFilter): string[] | undefined {
  return filter === null ? undefined : [...new Set([...filter].map(appIdOf))];
}

/**
 * The line items of `sums`, in their order (bucket, endpoint id, key id), then by unit price.
 * `book` must be loaded after the sums were read, so that it knows every price they name.
 */
export function costLines(sums: readonly UsageAggregate[], book: PriceBook, filter: EndpointFilter): UsageLine[] {
  const lines = new Map<string, UsageLine>();
  for (const sum of sums) {
    const endpointId = endpointIdOf(sum.appId, sum.endpoint);
    if (!endpointMatches(filter, endpointId)) continue;
    const price = book.byId(sum.priceId, endpointId);
    // A compute-second price bills run time as the gateway measured it, whatever the app reported.
    const quantity = price.unit === "compute_second" ? sum.billedRunMs / 1000 : sum.billedUnits;
    const key = JSON.stringify([sum.bucketStart, endpointId, sum.keyId, price.unit, price.unitPrice, price.currency]);
    const line = lines.get(key);
    if (line) {
      line.quantity += quantity;
      line.cost = line.quantity * line.unitPrice;
      line.requestCount += sum.requests;
      line.billedRequests += sum.billedRequests;
      line.computeSeconds += sum.runMs / 1000;
    } else {
      lines.set(key, {
        bucketStart: sum.bucketStart,
        endpointId,
        keyId: sum.keyId,
        unit: price.unit,
        quantity,
        unitPrice: price.unitPrice,
        cost: quantity * price.unitPrice,
        currency: price.currency,
        requestCount: sum.requests,
        billedRequests: sum.billedRequests,
        computeSeconds: sum.runMs / 1000,
      });
    }
  }
  const text = (a: string | null, b: string | null): number => (a === b ? 0 : a === null ? 1 : b === null ? -1 : a < b ? -1 : 1);
  return [...lines.values()].sort(
    (a, b) => a.bucketStart - b.bucketStart || text(a.endpointId, b.endpointId) || text(a.keyId, b.keyId) || a.unitPrice - b.unitPrice || text(a.unit, b.unit),
  );
}

/** Total cost per currency of some lines (a range priced in one currency has one entry). */
export function costByCurrency(lines: readonly UsageLine[]): Map<string, number> {
  const totals = new Map<string, number>();
  for (const line of lines) totals.set(line.currency, (totals.get(line.currency) ?? 0) + line.cost);
  return totals;
}

/** A line item as `GET /v1/models/usage` answers it (fal's field names; `auth_method`/`key_id` with `expand=auth_method`). */
export interface UsageLineView {
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

/** The wire view of `line`; `keyLabels` (key id → name) adds who made the requests. */
export function usageLineView(line: UsageLine, keyLabels: ReadonlyMap<string, string> | null): UsageLineView {
  return {
    endpoint_id: line.endpointId,
    unit: line.unit,
    quantity: line.quantity,
    unit_price: line.unitPrice,
    cost: line.cost,
    currency: line.currency,
    ...(keyLabels ? { auth_method: line.keyId === null ? "no key" : (keyLabels.get(line.keyId) ?? line.keyId), key_id: line.keyId } : {}),
    request_count: line.requestCount,
    billed_request_count: line.billedRequests,
    compute_seconds: line.computeSeconds,
  };
}
