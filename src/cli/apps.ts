/**
 * `darkroom apps list|show`: the apps a server offers, from `GET /v1/models`.
 * @module
 */
import { parseArgs } from "node:util";
import { table } from "./format.js";
import { api, CLIENT_OPTIONS, CliError, clientOptions, EXIT, printJson, type ClientOptions } from "./http.js";

export const APPS_USAGE = `Usage:
  darkroom apps list [--category C] [--search TEXT] [--json]
  darkroom apps show <owner/alias> [--json]
`;

type JsonSchema = Record<string, unknown>;

interface ModelEndpoint {
  path: string;
  kind: string;
  input_schema?: JsonSchema;
  output_schema?: JsonSchema;
}

export interface Model {
  endpoint_id: string;
  metadata: { display_name?: string; category?: string; description?: string; tags?: string[]; license?: string | null; weights_origin?: string | null };
  availability?: { available: boolean; reason?: string; remedy?: string };
  knobs?: Record<string, number>;
  endpoints?: ModelEndpoint[];
}

interface ModelPage {
  models: Model[];
  next_cursor: string | null;
  has_more: boolean;
}

async function listModels(client: ClientOptions, params: URLSearchParams): Promise<Model[]> {
  const models: Model[] = [];
  let cursor: string | null = null;
  do {
    const query = new URLSearchParams(params);
    query.set("limit", "500");
    if (cursor) query.set("cursor", cursor);
    const page: ModelPage = await api<ModelPage>(client, "GET", `/v1/models?${query.toString()}`);
    models.push(...page.models);
    cursor = page.has_more ? page.next_cursor : null;
  } while (cursor);
  return models;
}

export function availabilityText(model: Model): string {
  const a = model.availability;
  if (!a || a.available) return "available";
  return `unavailable: ${a.reason ?? "no reason given"}`;
}

/** A short type for a JSON Schema: `integer`, `array<string>`, `file URL`, `string | null`, `any`. */
export function schemaType(schema: unknown): string {
  if (!schema || typeof schema !== "object") return "any";
  const s = schema as JsonSchema;
  if (s["x-darkroom-file"] === true) return "file URL";
  if (typeof s["$ref"] === "string") return s["$ref"].split("/").pop() ?? "object";
  if ("const" in s) return JSON.stringify(s["const"]);
  const union = (s["anyOf"] ?? s["oneOf"]) as unknown[] | undefined;
  if (Array.isArray(union)) return [...new Set(union.map(schemaType))].join(" | ");
  const type = s["type"];
  if (Array.isArray(type)) return type.map(String).join(" | ");
  if (type === "array") return s["items"] ? `array<${schemaType(s["items"])}>` : "array";
  if (typeof type === "string") return type;
  return "any";
}

function range(s: JsonSchema): string {
  const min = s["minimum"] ?? s["exclusiveMinimum"];
  const max = s["maximum"] ?? s["exclusiveMaximum"];
  // zod writes integers' safe-integer bounds; they are noise here.
  const real = (v: unknown): v is number => typeof v === "number" && Math.abs(v) < Number.MAX_SAFE_INTEGER;
  if (real(min) && real(max)) return `${min}..${max}`;
  if (real(min)) return `>= ${min}`;
  if (real(max)) return `<= ${max}`;
  return "";
}

export interface SchemaField {
  name: string;
  type: string;
  required: boolean;
  default: string;
  /** Enum values and range, e.g. `one of: a, b` or `0..100`. */
  allowed: string;
  description: string;
}

/** The top-level properties of an object schema, in declaration order. */
export function schemaFields(schema: unknown): SchemaField[] {
  if (!schema || typeof schema !== "object") return [];
  const s = schema as JsonSchema;
  const properties = (s["properties"] ?? {}) as Record<string, JsonSchema>;
  const required = new Set(Array.isArray(s["required"]) ? (s["required"] as string[]) : []);
  return Object.entries(properties).map(([name, p]) => {
    const values = Array.isArray(p["enum"]) ? `one of: ${(p["enum"] as unknown[]).map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(", ")}` : "";
    return {
      name,
      type: schemaType(p),
      required: required.has(name),
      default: "default" in p ? JSON.stringify(p["default"]) : "",
      allowed: [values, range(p)].filter(Boolean).join("; "),
      description: typeof p["description"] === "string" ? p["description"] : "",
    };
  });
}

function fieldTable(schema: unknown, withDefaults: boolean): string {
  const fields = schemaFields(schema);
  if (fields.length === 0) return "  (no fields)\n";
  const header = withDefaults ? ["FIELD", "TYPE", "DEFAULT", "ALLOWED", "DESCRIPTION"] : ["FIELD", "TYPE", "DESCRIPTION"];
  const rows = fields.map((f) => {
    const name = f.required ? `${f.name} *` : f.name;
    return withDefaults ? [name, f.type, f.default, f.allowed, f.description] : [name, f.type, f.description];
  });
  return table(header, rows)
    .split("\n")
    .map((l) => (l ? `  ${l}` : l))
    .join("\n");
}

/** Endpoints whose schemas are the same are described once, under all their ids. */
function groupBySchema(model: Model, pick: (e: ModelEndpoint) => JsonSchema | undefined): { ids: string[]; schema: JsonSchema | undefined }[] {
  const groups = new Map<string, { ids: string[]; schema: JsonSchema | undefined }>();
  for (const e of model.endpoints ?? []) {
    const schema = pick(e);
    const key = JSON.stringify(schema ?? null);
    const group = groups.get(key) ?? { ids: [], schema };
    group.ids.push(endpointId(model, e));
    groups.set(key, group);
  }
  return [...groups.values()];
}

function endpointId(model: Model, e: ModelEndpoint): string {
  return e.path ? `${model.endpoint_id}/${e.path}` : model.endpoint_id;
}

export function describeModel(model: Model): string {
  const m = model.metadata;
  const out: string[] = [];
  out.push(`${model.endpoint_id}${m.display_name ? `  ${m.display_name}` : ""}`);
  if (m.description) out.push(`  ${m.description}`);
  out.push("");
  const facts: [string, string][] = [
    ["category", m.category ?? ""],
    ["tags", (m.tags ?? []).join(", ")],
    ["license", m.license ?? ""],
    ["weights", m.weights_origin ?? ""],
    ["availability", availabilityText(model)],
  ];
  if (model.availability && !model.availability.available && model.availability.remedy) facts.push(["remedy", model.availability.remedy]);
  const k = model.knobs;
  if (k) {
    const runners = `${k["min_runners"] ?? 0}-${k["max_runners"] ?? "?"} runners, ${k["max_multiplexing"] ?? 1} requests each`;
    facts.push(["scaling", `${runners}, keep_alive ${k["keep_alive"] ?? "?"} s`]);
    facts.push(["timeouts", `request ${k["request_timeout"] ?? "?"} s, startup ${k["startup_timeout"] ?? "?"} s`]);
  }
  for (const [label, value] of facts) if (value) out.push(`  ${label.padEnd(14)}${value}`);
  out.push("", "Endpoints");
  out.push(
    table(
      ["ID", "KIND", "HOW"],
      (model.endpoints ?? []).map((e) => [
        endpointId(model, e),
        e.kind,
        e.kind === "realtime" ? `WebSocket /${endpointId(model, e)}` : `darkroom run ${endpointId(model, e)} key=value ...`,
      ]),
    )
      .trimEnd()
      .split("\n")
      .map((l) => `  ${l}`)
      .join("\n"),
  );
  for (const group of groupBySchema(model, (e) => e.input_schema)) {
    out.push("", `Input of ${group.ids.join(", ")}  (* required)`, fieldTable(group.schema, true).trimEnd());
  }
  for (const group of groupBySchema(model, (e) => e.output_schema)) {
    out.push("", `Output of ${group.ids.join(", ")}`, fieldTable(group.schema, false).trimEnd());
  }
  return `${out.join("\n")}\n`;
}

export async function appsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...CLIENT_OPTIONS, category: { type: "string" }, search: { type: "string", short: "s" } },
  });
  const [sub, id, ...extra] = positionals;
  switch (sub) {
    case "list":
    case "ls": {
      if (id) throw new CliError(`unexpected argument '${id}'\n\n${APPS_USAGE}`, EXIT.USAGE);
      const client = clientOptions(values);
      const params = new URLSearchParams();
      if (values.category) params.set("category", values.category);
      if (values.search) params.set("q", values.search);
      const models = await listModels(client, params);
      if (values.json) {
        printJson(models);
        return EXIT.OK;
      }
      if (models.length === 0) {
        process.stdout.write("No apps.\n");
        return EXIT.OK;
      }
      process.stdout.write(
        table(
          ["ID", "NAME", "CATEGORY", "AVAILABILITY"],
          models.map((m) => [m.endpoint_id, m.metadata.display_name ?? "", m.metadata.category ?? "", availabilityText(m)]),
        ),
      );
      return EXIT.OK;
    }
    case "show": {
      if (!id || extra.length > 0) throw new CliError(`usage: darkroom apps show <owner/alias>`, EXIT.USAGE);
      const client = clientOptions(values);
      // Apps are addressed by owner/alias; a sub-path (an endpoint) shows its app.
      const appId = id.split("/").filter(Boolean).slice(0, 2).join("/");
      const [model] = await listModels(client, new URLSearchParams({ endpoint_id: appId }));
      if (!model) throw new CliError(`app '${appId}' not found on ${client.url}; see 'darkroom apps list'`);
      if (values.json) printJson(model);
      else process.stdout.write(describeModel(model));
      return EXIT.OK;
    }
    default:
      throw new CliError(sub ? `unknown apps command '${sub}'\n\n${APPS_USAGE}` : APPS_USAGE, EXIT.USAGE);
  }
}
