/**
 * Which price applies: the prices read from the store, resolved the way `Store.aggregateUsage`
 * resolves them in SQL. At a time `at`, an endpoint `owner/alias/path` costs the latest price of
 * that endpoint in effect at `at`, else the latest of its app `owner/alias`, else the default price
 * (compute seconds at `DARKROOM_DEFAULT_COMPUTE_PRICE`).
 * @module
 */
import type { PriceRecord, PriceSource, PriceUnit, Store } from "../store/store.js";
import { DEFAULT_CURRENCY } from "./price-list.js";

/** The price of everything without one: compute seconds at the operator's rate. */
export interface DefaultPrice {
  unitPrice: number;
  currency: string;
}

/** A price as it applies to usage: a stored one, or the default. */
export interface AppliedPrice {
  unit: PriceUnit;
  unitPrice: number;
  currency: string;
  source: PriceSource | "default";
  /** Null for the default price. */
  effectiveFrom: number | null;
}

/** The default price of an operator's rate (per compute second). */
export function defaultPriceOf(rate: number): DefaultPrice {
  return { unitPrice: rate, currency: DEFAULT_CURRENCY };
}

/** `owner/alias` of an endpoint id (`owner/alias` or `owner/alias/path…`). */
export function appIdOf(endpointId: string): string {
  return endpointId.split("/").slice(0, 2).join("/");
}

/** An endpoint id as usage records name it: the app, or the app and its endpoint path. */
export function endpointIdOf(appId: string, endpoint: string): string {
  return endpoint === "" ? appId : `${appId}/${endpoint}`;
}

function applied(price: PriceRecord): AppliedPrice {
  return { unit: price.unit, unitPrice: price.unitPrice, currency: price.currency, source: price.source, effectiveFrom: price.effectiveFrom };
}

export class PriceBook {
  /** Each endpoint id's prices, oldest first (by effectiveFrom, then id). */
  readonly #history = new Map<string, PriceRecord[]>();
  readonly #byId = new Map<number, PriceRecord>();
  readonly #default: AppliedPrice;
  /** Workflows' app ids: without a price of their own they cost nothing (their nodes are billed). */
  readonly #workflows: ReadonlySet<string>;
  readonly #free: AppliedPrice;

  constructor(prices: readonly PriceRecord[], defaultPrice: DefaultPrice, workflows: ReadonlySet<string> = new Set()) {
    this.#workflows = workflows;
    this.#free = { unit: "request", unitPrice: 0, currency: defaultPrice.currency, source: "default", effectiveFrom: null };
    for (const price of prices) {
      this.#byId.set(price.id, price);
      const list = this.#history.get(price.endpointId) ?? [];
      list.push(price);
      this.#history.set(price.endpointId, list);
    }
    for (const list of this.#history.values()) list.sort((a, b) => a.effectiveFrom - b.effectiveFrom || a.id - b.id);
    this.#default = { unit: "compute_second", unitPrice: defaultPrice.unitPrice, currency: defaultPrice.currency, source: "default", effectiveFrom: null };
  }

  /** Every price in the store (the table is small: one row per price change). */
  static async load(store: Store, defaultPrice: DefaultPrice): Promise<PriceBook> {
    const [prices, workflows] = await Promise.all([store.listPrices(), store.listWorkflows()]);
    return new PriceBook(prices, defaultPrice, new Set(workflows.map((w) => w.id)));
  }

  get defaultPrice(): AppliedPrice {
    return this.#default;
  }

  /** Endpoint ids that have a price of their own (at any time), sorted. */
  pricedEndpointIds(): string[] {
    return [...this.#history.keys()].sort();
  }

  /** The price stored for exactly `endpointId` that is in effect at `at`; null when none is. */
  storedAt(endpointId: string, at: number): PriceRecord | null {
    const list = this.#history.get(endpointId);
    if (!list) return null;
    let found: PriceRecord | null = null;
    for (const price of list) {
      if (price.effectiveFrom > at) break;
      found = price;
    }
    return found;
  }

  /** The latest price stored for exactly `endpointId`, whenever it takes effect; null when it has none. */
  latest(endpointId: string): PriceRecord | null {
    return this.#history.get(endpointId)?.at(-1) ?? null;
  }

  /** The price `endpointId` costs at `at`: its own, else its app's, else the default (nothing, for a workflow). */
  priceAt(endpointId: string, at: number): AppliedPrice {
    const own = this.storedAt(endpointId, at) ?? this.storedAt(appIdOf(endpointId), at);
    return own ? applied(own) : this.defaultFor(endpointId);
  }

  /**
   * The price of an endpoint without one of its own: the default compute-second price, except for a
   * workflow, whose run time is its nodes' and is billed on their requests (charging it again would
   * bill the same compute twice).
   */
  defaultFor(endpointId: string): AppliedPrice {
    return this.#workflows.has(appIdOf(endpointId)) ? this.#free : this.#default;
  }

  /** The price `Store.aggregateUsage` named by id (null: `endpointId`'s default). */
  byId(priceId: number | null, endpointId: string): AppliedPrice {
    const price = priceId === null ? undefined : this.#byId.get(priceId);
    return price ? applied(price) : this.defaultFor(endpointId);
  }
}
