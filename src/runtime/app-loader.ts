/**
 * Loads an app module and turns its definition into the serialisable manifest the gateway uses.
 * Runs only in runner and probe processes: app modules may import heavy model code, and handler
 * code never runs in the gateway.
 * @module
 */
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { DEFAULT_KNOBS, type AppManifest, type EndpointManifest, type JsonSchema } from "../core/types.js";
import { isDefinedApp, type DefinedApp } from "./sdk.js";

/**
 * A module path's file URL. A query after the file name (`app.ts?model=lcm`) stays a query: one
 * module file can then define several apps, one per URL (ES modules are instantiated per URL).
 */
export function moduleUrl(modulePath: string): string {
  const query = /\.(?:ts|mts|js|mjs)(\?[^/]*)$/.exec(modulePath)?.[1];
  return query ? `${pathToFileURL(modulePath.slice(0, -query.length)).href}${query}` : pathToFileURL(modulePath).href;
}

export async function importApp(modulePath: string): Promise<DefinedApp> {
  const mod = (await import(moduleUrl(modulePath))) as { default?: unknown };
  if (!isDefinedApp(mod.default)) {
    throw new Error(`${modulePath} does not default-export defineApp({...})`);
  }
  return mod.default;
}

/** JSON Schema 2020-12 of a zod schema as clients send it (defaults make fields optional). */
export function toWireSchema(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  return z.toJSONSchema(schema, { target: "draft-2020-12", io, unrepresentable: "any" });
}

export async function buildManifest(app: DefinedApp, modulePath: string): Promise<AppManifest> {
  const endpoints: EndpointManifest[] = app.endpoints.map((e) => ({
    path: e.path,
    kind: e.kind ?? "http",
    input: toWireSchema(e.input, "input"),
    output: toWireSchema(e.output, "output"),
    ...(e.description ? { description: e.description } : {}),
  }));
  let unavailable: AppManifest["unavailable"] = null;
  if (app.checkAvailability) {
    try {
      unavailable = await app.checkAvailability();
    } catch (err) {
      unavailable = { reason: `availability check failed: ${err instanceof Error ? err.message : String(err)}`, remedy: "see the server log" };
    }
  }
  let weights: AppManifest["weights"];
  try {
    weights = app.weights ? await app.weights() : undefined;
  } catch {
    weights = undefined; // weights it cannot name now (a model not pulled yet): the app is unavailable anyway
  }
  return {
    id: app.id,
    version: app.version ?? "0.1.0",
    metadata: { tags: [], ...app.metadata },
    knobs: { ...DEFAULT_KNOBS, ...app.knobs },
    endpoints,
    modulePath,
    unavailable,
    ...(app.cache ? { cache: { ...app.cache } } : {}),
    ...(weights && weights.length > 0 ? { weights } : {}),
  };
}
