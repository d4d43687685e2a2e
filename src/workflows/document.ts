/**
 * Workflow documents in fal's format: a graph of nodes keyed by id, each `input` (the request),
 * `run` (a call of an app, `app` its endpoint id) or `display` (fields for the caller), with
 * `depends` naming the nodes it waits for, and references, strings that are wholly
 * `$<node>.<field>.<index>…` (`"$node_1.images.0.url"`), where a value comes from an upstream node.
 * `contents.output` says what the workflow returns; without it, its display nodes' fields do.
 *
 *   {name, title?, contents: {name, nodes: {id: {id, type, depends, app?, input?, fields?}}, output?, schema?: {input?, output?}}}
 *
 * Checking a document (checkWorkflow) finds everything that would fail at run time and can be known
 * before: unknown apps and endpoints, references to nodes that are missing or not upstream, cycles,
 * fields an app's output schema does not have, required inputs no value is given for. Each problem
 * names its place as fal's 422 `loc` does.
 * @module
 */
import { z } from "zod";
import type { AppManifest, EndpointManifest, JsonSchema } from "../core/types.js";

const NODE_ID = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
/** A whole-string reference: `$node` then `.segment`s (a field name, or an array index). */
const REFERENCE = /^\$([A-Za-z_][A-Za-z0-9_-]{0,63})((?:\.[^.\s]+)*)$/;

const WorkflowNode = z
  .object({
    id: z.string().regex(NODE_ID).optional(),
    type: z.enum(["input", "run", "display"]),
    depends: z.array(z.string().regex(NODE_ID)).max(100).default([]),
    app: z.string().min(3).max(200).optional(),
    input: z.record(z.string(), z.unknown()).optional(),
    fields: z.record(z.string(), z.unknown()).optional(),
  })
  // Editors keep their own things on nodes (positions, labels): kept, not read.
  .passthrough();

export const WorkflowDocument = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,99}$/, "a workflow name is lower case letters, digits, '.', '_' and '-'"),
  title: z.string().max(200).optional(),
  description: z.string().max(5000).optional(),
  contents: z
    .object({
      name: z.string().max(100).optional(),
      nodes: z.record(z.string().regex(NODE_ID, "node ids are letters, digits, '_' and '-', starting with a letter"), WorkflowNode).refine((nodes) => Object.keys(nodes).length <= 200, "at most 200 nodes"),
      output: z.record(z.string(), z.unknown()).optional(),
      schema: z.object({ input: z.record(z.string(), z.unknown()).optional(), output: z.record(z.string(), z.unknown()).optional() }).passthrough().optional(),
    })
    .passthrough(),
});
export type WorkflowDocument = z.infer<typeof WorkflowDocument>;
export type WorkflowNode = z.infer<typeof WorkflowNode>;

/** A problem of a document, placed as fal's 422 `detail[]` entries are. */
export interface WorkflowProblem {
  loc: (string | number)[];
  msg: string;
  type: string;
}

/** What a run node calls: the app, and its endpoint path within it ("" for the root). */
export interface NodeTarget {
  app: AppManifest;
  endpoint: EndpointManifest;
}

/** A reference's parts: the node it reads, and the path into that node's value. */
export interface Reference {
  node: string;
  path: string[];
}

/** The reference a value is, or null for a literal. */
export function referenceOf(value: unknown): Reference | null {
  if (typeof value !== "string") return null;
  const match = REFERENCE.exec(value);
  if (!match) return null;
  return { node: match[1] as string, path: (match[2] ?? "").split(".").filter(Boolean) };
}

/** Every reference inside a value (objects and arrays walked), with where it sits. */
export function referencesIn(value: unknown, at: (string | number)[] = []): { ref: Reference; loc: (string | number)[] }[] {
  const ref = referenceOf(value);
  if (ref) return [{ ref, loc: at }];
  if (Array.isArray(value)) return value.flatMap((item, i) => referencesIn(item, [...at, i]));
  if (value !== null && typeof value === "object") return Object.entries(value).flatMap(([k, v]) => referencesIn(v, [...at, k]));
  return [];
}

/** The app and endpoint an endpoint id names (`owner/alias[/path]`), or null. */
export function resolveEndpointId(endpointId: string, appOf: (appId: string) => AppManifest | undefined): NodeTarget | null {
  const [owner, alias, ...rest] = endpointId.split("/");
  if (!owner || !alias) return null;
  const app = appOf(`${owner}/${alias}`);
  if (!app) return null;
  const endpoint = app.endpoints.find((e) => e.path === rest.join("/") && e.kind !== "realtime");
  return endpoint ? { app, endpoint } : null;
}

/** The nodes in an order in which each comes after those it depends on; null when there is a cycle. */
export function topologicalOrder(nodes: Record<string, Pick<WorkflowNode, "depends">>): string[] | null {
  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (id: string): boolean => {
    const seen = state.get(id);
    if (seen === "done") return true;
    if (seen === "visiting") return false;
    state.set(id, "visiting");
    for (const dep of nodes[id]?.depends ?? []) if (nodes[dep] && !visit(dep)) return false;
    state.set(id, "done");
    order.push(id);
    return true;
  };
  for (const id of Object.keys(nodes)) if (!visit(id)) return null;
  return order;
}

/** Every node `id` waits for, directly or through others. */
export function upstreamOf(nodes: Record<string, Pick<WorkflowNode, "depends">>, id: string): Set<string> {
  const found = new Set<string>();
  const stack = [...(nodes[id]?.depends ?? [])];
  while (stack.length > 0) {
    const next = stack.pop() as string;
    if (found.has(next) || !nodes[next]) continue;
    found.add(next);
    stack.push(...(nodes[next]?.depends ?? []));
  }
  return found;
}

/**
 * The schema of what `path` reaches inside a value of `schema`: undefined when the schema says the
 * field cannot be there, `{}` (anything) when the schema does not say.
 */
export function schemaAt(schema: JsonSchema, path: readonly string[], root: JsonSchema = schema): JsonSchema | undefined {
  let current: JsonSchema | undefined = schema;
  for (const segment of path) {
    current = resolveRef(current, root);
    if (current === undefined) return undefined;
    const variants = (current["anyOf"] ?? current["oneOf"]) as JsonSchema[] | undefined;
    if (Array.isArray(variants)) {
      const reached = variants.map((v) => schemaAt(v, [segment], root)).filter((s): s is JsonSchema => s !== undefined);
      if (reached.length === 0) return undefined;
      current = reached.length === 1 ? reached[0] : { anyOf: reached };
      continue;
    }
    const properties = current["properties"] as Record<string, JsonSchema> | undefined;
    const items = current["items"] as JsonSchema | undefined;
    if (/^\d+$/.test(segment) && (items !== undefined || current["type"] === "array")) {
      current = items ?? {};
    } else if (properties && segment in properties) {
      current = properties[segment];
    } else if (properties || current["type"] === "array" || isScalarType(current["type"])) {
      // A described object without this field (unless it takes others), an array, or a scalar.
      const extra = current["additionalProperties"];
      if (properties && extra !== false && extra !== undefined) current = extra === true ? {} : (extra as JsonSchema);
      else return undefined;
    } else {
      // The schema says nothing of its fields: anything may be there.
      return {};
    }
  }
  return current ? resolveRef(current, root) : undefined;
}

function isScalarType(type: unknown): boolean {
  return type === "string" || type === "number" || type === "integer" || type === "boolean" || type === "null";
}

function resolveRef(schema: JsonSchema | undefined, root: JsonSchema): JsonSchema | undefined {
  let current = schema;
  for (let hops = 0; current && typeof current["$ref"] === "string" && hops < 20; hops++) {
    const ref = current["$ref"];
    if (!ref.startsWith("#/")) return {};
    let target: unknown = root;
    for (const part of ref.slice(2).split("/")) target = (target as Record<string, unknown> | undefined)?.[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    current = (target as JsonSchema | undefined) ?? {};
  }
  return current;
}

/** The schema of a workflow's input: `schema.input`, else one made from its input node's fields. */
export function workflowInputSchema(doc: WorkflowDocument): JsonSchema {
  const given = doc.contents.schema?.input;
  if (given && (given["type"] === "object" || given["properties"])) return given;
  const inputNode = Object.values(doc.contents.nodes).find((n) => n.type === "input");
  const fields = Object.keys(given ?? inputNode?.input ?? {});
  // The input node's fields, each whatever the caller sends; given as a map, each field's own schema.
  const properties = Object.fromEntries(fields.map((f) => [f, given && typeof given[f] === "object" ? (given[f] as JsonSchema) : {}]));
  return { type: "object", properties, required: fields };
}

/** The input node's id, or null when the workflow takes no input. */
export function inputNodeOf(doc: WorkflowDocument): string | null {
  return Object.entries(doc.contents.nodes).find(([, n]) => n.type === "input")?.[0] ?? null;
}

/** What the workflow returns: `contents.output`, else its display nodes' fields merged. */
export function outputSpecOf(doc: WorkflowDocument): Record<string, unknown> {
  if (doc.contents.output) return doc.contents.output;
  const merged: Record<string, unknown> = {};
  for (const node of Object.values(doc.contents.nodes)) if (node.type === "display") Object.assign(merged, node.fields ?? {});
  return merged;
}

/**
 * Everything wrong with a document that can be known before it runs. `appOf` looks an app up by id
 * (`owner/alias`); `selfId` is the workflow's own id, which no node may call.
 */
export function checkWorkflow(doc: WorkflowDocument, appOf: (appId: string) => AppManifest | undefined, selfId?: string): WorkflowProblem[] {
  const problems: WorkflowProblem[] = [];
  const nodes = doc.contents.nodes;
  const at = (id: string, ...rest: (string | number)[]): (string | number)[] => ["body", "contents", "nodes", id, ...rest];
  const inputs = Object.entries(nodes).filter(([, n]) => n.type === "input");
  if (inputs.length > 1) problems.push({ loc: at(inputs[1]?.[0] as string, "type"), msg: "a workflow has at most one input node", type: "value_error" });
  if (!Object.values(nodes).some((n) => n.type === "run")) problems.push({ loc: ["body", "contents", "nodes"], msg: "a workflow needs at least one run node", type: "value_error" });

  const targets = new Map<string, NodeTarget>();
  for (const [id, node] of Object.entries(nodes)) {
    if (node.id !== undefined && node.id !== id) problems.push({ loc: at(id, "id"), msg: `the node is keyed "${id}" but says id "${node.id}"`, type: "value_error" });
    node.depends.forEach((dep, i) => {
      if (dep === id) problems.push({ loc: at(id, "depends", i), msg: "a node cannot depend on itself", type: "value_error" });
      else if (!nodes[dep]) problems.push({ loc: at(id, "depends", i), msg: `no node "${dep}"`, type: "value_error" });
    });
    if (node.type === "run") {
      if (!node.app) {
        problems.push({ loc: at(id, "app"), msg: "a run node names the app it calls", type: "missing" });
        continue;
      }
      const target = resolveEndpointId(node.app, appOf);
      if (!target) problems.push({ loc: at(id, "app"), msg: `no app endpoint "${node.app}" here`, type: "value_error" });
      else if (selfId !== undefined && target.app.id === selfId) problems.push({ loc: at(id, "app"), msg: "a workflow cannot call itself", type: "value_error" });
      // Two workflows calling each other would start requests without end.
      else if (target.app.workflow === true) problems.push({ loc: at(id, "app"), msg: `${target.app.id} is a workflow: a workflow's nodes call apps`, type: "value_error" });
      else targets.set(id, target);
    }
  }
  if (topologicalOrder(nodes) === null) problems.push({ loc: ["body", "contents", "nodes"], msg: "the nodes' depends form a cycle", type: "value_error" });

  const inputSchema = workflowInputSchema(doc);
  const checkRefs = (owner: string | null, value: unknown, loc: (string | number)[]): void => {
    const upstream = owner === null ? new Set(Object.keys(nodes)) : upstreamOf(nodes, owner);
    for (const { ref, loc: inner } of referencesIn(value)) {
      const where = [...loc, ...inner];
      const source = nodes[ref.node];
      if (!source) {
        problems.push({ loc: where, msg: `$${ref.node}: no such node`, type: "value_error" });
        continue;
      }
      if (!upstream.has(ref.node)) {
        problems.push({ loc: where, msg: `$${ref.node} is not upstream of "${owner}": add it to depends`, type: "value_error" });
        continue;
      }
      if (source.type === "display") {
        problems.push({ loc: where, msg: `$${ref.node} is a display node; refer to what it displays`, type: "value_error" });
        continue;
      }
      const schema = source.type === "input" ? inputSchema : targets.get(ref.node)?.endpoint.output;
      if (schema && ref.path.length > 0 && schemaAt(schema, ref.path) === undefined) {
        const whose = source.type === "input" ? "the workflow's input" : `${source.app}'s output`;
        problems.push({ loc: where, msg: `${whose} has no field ${ref.path.join(".")}`, type: "value_error" });
      }
    }
  };
  for (const [id, node] of Object.entries(nodes)) {
    if (node.type === "run") {
      checkRefs(id, node.input ?? {}, at(id, "input"));
      const target = targets.get(id);
      if (target) {
        const given = node.input ?? {};
        const required = (target.endpoint.input["required"] as string[] | undefined) ?? [];
        for (const field of required) if (!(field in given)) problems.push({ loc: at(id, "input", field), msg: `${node.app} requires ${field}`, type: "missing" });
        const properties = target.endpoint.input["properties"] as Record<string, unknown> | undefined;
        if (properties && target.endpoint.input["additionalProperties"] === false) {
          for (const field of Object.keys(given)) if (!(field in properties)) problems.push({ loc: at(id, "input", field), msg: `${node.app} takes no field ${field}`, type: "value_error" });
        }
      }
    } else if (node.type === "display") {
      checkRefs(id, node.fields ?? {}, at(id, "fields"));
    }
  }
  checkRefs(null, outputSpecOf(doc), ["body", "contents", "output"]);
  return problems;
}

/** `value` with each reference replaced by what it points to in `values` (by node id); undefined where the path leads nowhere. */
export function resolveReferences(value: unknown, values: Readonly<Record<string, unknown>>): unknown {
  const ref = referenceOf(value);
  if (ref) {
    let current: unknown = values[ref.node];
    for (const segment of ref.path) {
      if (current === null || typeof current !== "object") return undefined;
      current = (current as Record<string, unknown>)[segment];
    }
    return current;
  }
  if (Array.isArray(value)) return value.map((item) => resolveReferences(item, values));
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveReferences(v, values)]));
  return value;
}
