/**
 * Prices under `/v1/models/pricing`, in fal's platform-API shapes: the price list, the admin's
 * `PUT` that sets prices (Darkroom's: fal's prices are fal's to set), and cost estimates. The pricing
 * file given at startup (`--pricing`) is stored before the server takes requests.
 * See docs/pricing-and-usage.md.
 * @module
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { PlatformError, type FieldError } from "../../core/errors.js";
import { estimateCost, ESTIMATE_TYPES } from "../../pricing/estimate.js";
import { appIdOf, defaultPriceOf, PriceBook, type AppliedPrice } from "../../pricing/price-book.js";
import { applyFilePrices, readPriceFile } from "../../pricing/price-file.js";
import { ENDPOINT_ID, endpointIdsOfQuery, MAX_QUERY_ENDPOINT_IDS, PriceList, pricesOf } from "../../pricing/price-list.js";
import type { UsageSource } from "../../pricing/usage-report.js";
import type { PriceRecord } from "../../store/store.js";
import { requireAdmin, requirePrincipal, type GatewayContext } from "../context.js";
import { validatedBody } from "../validated-body.js";

/** Page size of the price list when the query names none, and the most one page holds (as `GET /v1/models`). */
const DEFAULT_PAGE = 100;
const MAX_PAGE = 500;

/** Most endpoints one estimate prices. */
const MAX_ESTIMATE_ENDPOINTS = 50;

const EndpointKey = z.string().max(256).regex(ENDPOINT_ID, "an app id (owner/alias) or one of its endpoints (owner/alias/path)");

/** fal's estimate body: one of two shapes, told apart by `estimate_type`; unknown fields refused. */
const EstimateBody = z.discriminatedUnion("estimate_type", [
  z
    .object({
      estimate_type: z.literal(ESTIMATE_TYPES[0]),
      endpoints: z.record(EndpointKey, z.object({ call_quantity: z.number().int().min(1) }).strict()),
    })
    .strict(),
  z
    .object({
      estimate_type: z.literal(ESTIMATE_TYPES[1]),
      endpoints: z.record(EndpointKey, z.object({ unit_quantity: z.number().min(0.000001) }).strict()),
    })
    .strict(),
]);

/** A price as fal lists it, plus Darkroom's `source` and `effective_from` (null for the default). */
function priceView(endpointId: string, price: AppliedPrice): Record<string, unknown> {
  return {
    endpoint_id: endpointId,
    unit_price: price.unitPrice,
    unit: price.unit,
    currency: price.currency,
    source: price.source,
    effective_from: price.effectiveFrom === null ? null : new Date(price.effectiveFrom).toISOString(),
  };
}

function storedView(price: PriceRecord): Record<string, unknown> {
  return priceView(price.endpointId, price);
}

function queryError(name: string, msg: string, type = "value_error"): FieldError {
  return { loc: ["query", name], msg, type };
}

/** A whole number from the query in [min, max], or the fallback when absent. */
function intParam(raw: unknown, name: string, fallback: number, min: number, max: number, problems: FieldError[]): number {
  if (raw === undefined) return fallback;
  const value = typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    problems.push(queryError(name, `a whole number from ${min} to ${max}`));
    return fallback;
  }
  return value;
}

export function registerPricingRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const source: UsageSource = { store: ctx.store, defaultPrice: defaultPriceOf(ctx.config.pricing.defaultComputePrice) };

  const pricingFile = ctx.config.pricing.file;
  if (pricingFile) {
    // Before the first request: a price the file sets is in effect for every request this server
    // takes. A file that cannot be read or is not valid stops the start, naming what is wrong.
    app.addHook("onReady", async () => {
      const { added, overridden } = await applyFilePrices(ctx.store, await readPriceFile(pricingFile, Date.now()));
      app.log.info({ file: pricingFile, added: added.map((p) => p.endpointId) }, "pricing file applied");
      for (const o of overridden) {
        app.log.warn({ file: pricingFile, endpoint_id: o.endpointId, since: new Date(o.since).toISOString() }, "pricing file entry ignored: the API set this price");
      }
    });
  }

  app.get("/v1/models/pricing", async (request) => {
    requirePrincipal(request);
    const q = request.query as Record<string, string | string[] | undefined>;
    const problems: FieldError[] = [];
    const { ids, invalid } = endpointIdsOfQuery(q["endpoint_id"]);
    if (invalid.length > 0) problems.push(queryError("endpoint_id", `not an endpoint id: ${invalid.join(", ")}`));
    if (ids.length > MAX_QUERY_ENDPOINT_IDS) problems.push(queryError("endpoint_id", `at most ${MAX_QUERY_ENDPOINT_IDS} endpoint ids`));
    const limit = intParam(q["limit"], "limit", DEFAULT_PAGE, 1, MAX_PAGE, problems);
    const offset = intParam(q["cursor"], "cursor", 0, 0, Number.MAX_SAFE_INTEGER, problems);
    if (problems.length > 0) throw new PlatformError("ERR_VALIDATION", { fieldErrors: problems });

    const book = await PriceBook.load(ctx.store, source.defaultPrice);
    const now = Date.now();
    const apps = new Set(ctx.scheduler.apps.map((a) => a.id));
    let listed: string[];
    if (ids.length > 0) {
      // An id nobody priced and no app serves has no price, not the default one: say so.
      const unknown = ids.filter((id) => !apps.has(appIdOf(id)) && book.storedAt(id, now) === null && book.storedAt(appIdOf(id), now) === null);
      if (unknown.length > 0) throw new PlatformError("ERR_APP_NOT_FOUND", { message: `No app or price for ${unknown.join(", ")}` });
      listed = ids;
    } else {
      listed = [...new Set([...apps, ...book.pricedEndpointIds().filter((id) => book.storedAt(id, now) !== null)])].sort();
    }
    const page = listed.slice(offset, offset + limit);
    const hasMore = offset + limit < listed.length;
    return {
      prices: page.map((id) => priceView(id, book.priceAt(id, now))),
      next_cursor: hasMore ? String(offset + limit) : null,
      has_more: hasMore,
    };
  });

  app.put("/v1/models/pricing", async (request) => {
    requireAdmin(request);
    const prices = validatedBody(PriceList, request.body);
    // From now on: usage that finished before keeps the price it had (docs/pricing-and-usage.md).
    const stored = await ctx.store.addPrices(pricesOf(prices, "api", Date.now()));
    return { prices: stored.map(storedView) };
  });

  app.post("/v1/models/pricing/estimate", async (request) => {
    const principal = requirePrincipal(request);
    const body = validatedBody(EstimateBody, request.body);
    const entries = Object.entries(body.endpoints);
    if (entries.length === 0 || entries.length > MAX_ESTIMATE_ENDPOINTS) {
      throw new PlatformError("ERR_VALIDATION", {
        fieldErrors: [{ loc: ["body", "endpoints"], msg: `1 to ${MAX_ESTIMATE_ENDPOINTS} endpoint ids`, type: "value_error" }],
      });
    }
    const quantities = new Map<string, number>(
      body.estimate_type === "unit_price"
        ? Object.entries(body.endpoints).map(([id, q]) => [id, q.unit_quantity])
        : Object.entries(body.endpoints).map(([id, q]) => [id, q.call_quantity]),
    );
    const estimate = await estimateCost(source, { type: body.estimate_type, quantities, keyId: principal.keyId, now: Date.now() });
    return { estimate_type: body.estimate_type, total_cost: estimate.totalCost, currency: estimate.currency };
  });
}
