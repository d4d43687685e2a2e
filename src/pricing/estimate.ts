/**
 * `POST /v1/models/pricing/estimate`, fal's two ways of guessing a cost:
 * - `unit_price`: units × the endpoint's price now;
 * - `historical_api_price`: calls × what one call cost on average: the caller's own billed calls of
 *   the endpoint in the last 30 days; without any, everyone's; without any either, one unit at
 *   today's price (one second, for a compute-second price).
 * @module
 */
import { PlatformError } from "../core/errors.js";
import { PriceBook } from "./price-book.js";
import { summaryLines, type UsageSource } from "./usage-report.js";

export const ESTIMATE_TYPES = ["historical_api_price", "unit_price"] as const;
export type EstimateType = (typeof ESTIMATE_TYPES)[number];

/** How far back `historical_api_price` looks. */
export const HISTORY_MS = 30 * 24 * 3600 * 1000;

export interface EstimateRequest {
  type: EstimateType;
  /** Endpoint id → calls (`historical_api_price`) or units (`unit_price`). */
  quantities: ReadonlyMap<string, number>;
  /** The caller, whose history comes first. */
  keyId: string;
  now: number;
}

export interface Estimate {
  totalCost: number;
  currency: string;
}

interface CostPerCall {
  cost: number;
  currency: string;
}

/** Average billed cost of one call of `endpointId` in the history window; null with no billed call. */
async function historicalCostPerCall(source: UsageSource, endpointId: string, keyId: string | undefined, now: number): Promise<CostPerCall | null> {
  const lines = await summaryLines(source, now - HISTORY_MS, now + 1, { endpoints: new Set([endpointId]), ...(keyId !== undefined ? { keyId } : {}) });
  const calls = lines.reduce((n, line) => n + line.billedRequests, 0);
  const [first] = lines;
  if (calls === 0 || !first) return null;
  if (lines.some((line) => line.currency !== first.currency)) return null; // a currency change within the window: no one average
  return { cost: lines.reduce((sum, line) => sum + line.cost, 0) / calls, currency: first.currency };
}

export async function estimateCost(source: UsageSource, request: EstimateRequest): Promise<Estimate> {
  const book = await PriceBook.load(source.store, source.defaultPrice);
  const costs: { endpointId: string; cost: number; currency: string }[] = [];
  for (const [endpointId, quantity] of request.quantities) {
    const price = book.priceAt(endpointId, request.now);
    if (request.type === "unit_price") {
      costs.push({ endpointId, cost: quantity * price.unitPrice, currency: price.currency });
      continue;
    }
    const perCall =
      (await historicalCostPerCall(source, endpointId, request.keyId, request.now)) ??
      (await historicalCostPerCall(source, endpointId, undefined, request.now)) ?? { cost: price.unitPrice, currency: price.currency };
    costs.push({ endpointId, cost: quantity * perCall.cost, currency: perCall.currency });
  }
  const currencies = [...new Set(costs.map((c) => c.currency))];
  if (currencies.length > 1) {
    throw new PlatformError("ERR_VALIDATION", {
      fieldErrors: costs.map((c) => ({ loc: ["body", "endpoints", c.endpointId], msg: `priced in ${c.currency}: one estimate cannot add ${currencies.join(" and ")}`, type: "value_error" })),
    });
  }
  return { totalCost: costs.reduce((sum, c) => sum + c.cost, 0), currency: currencies[0] ?? source.defaultPrice.currency };
}
