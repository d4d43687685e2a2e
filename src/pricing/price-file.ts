/**
 * The pricing file (`--pricing FILE` / `DARKROOM_PRICING`): the operator's prices in the body form
 * of `PUT /v1/models/pricing`, read when the gateway starts. What it says becomes a price from that
 * start on, unless the API has set one for the endpoint: a file entry wins over nothing, the API
 * over the file. Prices are history (Store.addPrices): a file changed between two starts changes the
 * price from the second start on, never the cost of usage before it.
 * @module
 */
import { readFile } from "node:fs/promises";
import type { z } from "zod";
import type { NewPrice, PriceRecord, Store } from "../store/store.js";
import { PriceList, pricesOf } from "./price-list.js";

/** The field problems of a zod error as `prices[2].unit: …` lines. */
function problemsOf(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const where = issue.path.reduce<string>((text, part) => (typeof part === "number" ? `${text}[${part}]` : text ? `${text}.${String(part)}` : String(part)), "");
    if (issue.code === "unrecognized_keys") return `${where || "(top level)"}: unknown field(s) ${issue.keys.join(", ")}`;
    return `${where || "(top level)"}: ${issue.message}`;
  });
}

/** Reads and checks the file; throws an Error naming the file and every problem in it. */
export async function readPriceFile(file: string, effectiveFrom: number): Promise<NewPrice[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new Error(`pricing file ${file}: cannot read it (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`pricing file ${file}: not JSON (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  const parsed = PriceList.safeParse(json);
  if (!parsed.success) throw new Error(`pricing file ${file}:\n  ${problemsOf(parsed.error).join("\n  ")}`);
  return pricesOf(parsed.data, "file", effectiveFrom);
}

function samePrice(a: Pick<PriceRecord, "unit" | "unitPrice" | "currency">, b: Pick<PriceRecord, "unit" | "unitPrice" | "currency">): boolean {
  return a.unit === b.unit && a.unitPrice === b.unitPrice && a.currency === b.currency;
}

/** What `applyFilePrices` did. */
export interface FilePricesApplied {
  /** Prices stored from the file (new endpoints, or file prices that changed). */
  added: PriceRecord[];
  /** Entries left alone because the API set the endpoint's current price. */
  overridden: { endpointId: string; since: number }[];
}

/**
 * Stores the file's prices that are not in effect yet. Per endpoint: nothing stored, or a file price
 * that differs, stores the entry; a price set through the API stays (the API overrides the file);
 * the same price again stores nothing, so restarts add no history.
 */
export async function applyFilePrices(store: Store, entries: readonly NewPrice[]): Promise<FilePricesApplied> {
  const history = await store.listPrices(entries.map((e) => e.endpointId));
  const latest = new Map<string, PriceRecord>();
  for (const price of history) latest.set(price.endpointId, price); // oldest first: the last one wins
  const toAdd: NewPrice[] = [];
  const overridden: FilePricesApplied["overridden"] = [];
  for (const entry of entries) {
    const current = latest.get(entry.endpointId);
    if (current?.source === "api") overridden.push({ endpointId: entry.endpointId, since: current.effectiveFrom });
    else if (!current || !samePrice(current, entry)) toAdd.push(entry);
  }
  return { added: toAdd.length > 0 ? await store.addPrices(toAdd) : [], overridden };
}
