/**
 * A list of prices as operators write it, in `PUT /v1/models/pricing` bodies and in the pricing file
 * (`--pricing FILE`): `{"prices": [{"endpoint_id", "unit_price", "unit", "currency"}]}`, the fields
 * of fal's `GET /v1/models/pricing` answer. Unknown fields are refused, not ignored: a misspelt
 * `unit_prize` must not leave an app unpriced.
 * @module
 */
import { z } from "zod";
import type { NewPrice, PriceSource } from "../store/store.js";
import { PRICE_UNITS } from "./price-units.js";

/** `owner/alias` (every endpoint of the app) or `owner/alias/path…` (one endpoint). */
export const ENDPOINT_ID = /^[A-Za-z0-9._-]+\/[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

/** The currency of a price that names none, and of the default price. */
export const DEFAULT_CURRENCY = "USD";

/** Most prices one body or file sets. */
export const MAX_PRICES = 1000;

export const PriceEntry = z
  .object({
    endpoint_id: z.string().max(256).regex(ENDPOINT_ID, "an app id (owner/alias) or one of its endpoints (owner/alias/path)"),
    unit_price: z.number().nonnegative(),
    unit: z.enum(PRICE_UNITS),
    currency: z.string().regex(/^[A-Z]{3}$/, "a three-letter ISO 4217 code such as USD").default(DEFAULT_CURRENCY),
  })
  .strict();

export const PriceList = z
  .object({ prices: z.array(PriceEntry).min(1).max(MAX_PRICES) })
  .strict()
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.prices.forEach((entry, i) => {
      if (seen.has(entry.endpoint_id)) {
        ctx.addIssue({ code: "custom", path: ["prices", i, "endpoint_id"], message: `${entry.endpoint_id} is priced twice in one list` });
      }
      seen.add(entry.endpoint_id);
    });
  });

export type PriceListValue = z.output<typeof PriceList>;

/** The prices a parsed list sets, in effect from `effectiveFrom`. */
export function pricesOf(list: PriceListValue, source: PriceSource, effectiveFrom: number): NewPrice[] {
  return list.prices.map((entry) => ({
    endpointId: entry.endpoint_id,
    unit: entry.unit,
    unitPrice: entry.unit_price,
    currency: entry.currency,
    effectiveFrom,
    source,
  }));
}

/** Most endpoint ids one query names, as fal allows (1-50). */
export const MAX_QUERY_ENDPOINT_IDS = 50;

/**
 * The endpoint ids of a query parameter as fal takes them: repeated (`?endpoint_id=a&endpoint_id=b`),
 * comma-separated (`?endpoint_id=a,b`) or both; duplicates dropped, in the order given. `invalid`
 * holds the ones that are not endpoint ids.
 */
export function endpointIdsOfQuery(raw: string | readonly string[] | undefined): { ids: string[]; invalid: string[] } {
  const values = raw === undefined ? [] : typeof raw === "string" ? [raw] : raw;
  const ids = [...new Set(values.flatMap((v) => v.split(",")).map((id) => id.trim()).filter(Boolean))];
  return { ids: ids.filter((id) => ENDPOINT_ID.test(id)), invalid: ids.filter((id) => !ENDPOINT_ID.test(id)) };
}
