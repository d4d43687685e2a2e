/**
 * The units a price is given in: fal's billing units, and what one unit of each measures.
 * @module
 */
import type { PriceUnit } from "../store/store.js";

/** Every unit, in the order docs and errors list them. */
export const PRICE_UNITS = ["request", "image", "megapixel", "second", "compute_second"] as const satisfies readonly PriceUnit[];

/** What one unit is, for docs and the CLI. */
export const PRICE_UNIT_MEANING: Readonly<Record<PriceUnit, string>> = {
  request: "one request (apps that bill nothing count 1 per successful request)",
  image: "one output image, as the app bills it",
  megapixel: "one million output pixels, as the app bills them",
  second: "one second of output audio or video, as the app bills it",
  compute_second: "one second of run time, measured by the gateway (what the app bills is not used)",
};

export function isPriceUnit(value: string): value is PriceUnit {
  return (PRICE_UNITS as readonly string[]).includes(value);
}
