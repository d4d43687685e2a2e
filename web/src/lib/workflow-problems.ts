/**
 * A workflow document's problems placed on its graph: the registry's (fal's 422 `detail`, or the
 * `problems` a read of the document carries, each with a `loc` such as
 * `["body", "contents", "nodes", "node_2", "input", "image_url"]`) and the few a browser can find
 * alone while the document is typed (a `depends` or a reference naming a missing node, a reference
 * to a node that is not upstream, a cycle). The registry checks much more (apps, fields, schemas);
 * the local checks only say early what it would say anyway, in the same words and places.
 * @module
 */
import type { WorkflowNodeSpec } from "./workflow-graph.js";

export interface WorkflowProblem {
  loc: (string | number)[];
  msg: string;
  type?: string;
}

export interface PlacedProblem {
  /** The node the problem is on; null for the document as a whole (its name, its output, a cycle). */
  nodeId: string | null;
  /** Where within the node (`input.image_url`, `depends.0`), or within the document; "" for the node itself. */
  field: string;
  message: string;
}

/** Reads fal's 422 body (`{detail: [{loc, msg, type}]}`) or a document's `problems`: the problems in it. */
export function problemsOf(body: unknown): WorkflowProblem[] {
  const list = Array.isArray(body) ? body : typeof body === "object" && body !== null ? ((body as Record<string, unknown>)["detail"] ?? (body as Record<string, unknown>)["problems"]) : null;
  if (!Array.isArray(list)) return [];
  return list.flatMap((p: unknown) => {
    if (typeof p !== "object" || p === null) return [];
    const { loc, msg, type } = p as Record<string, unknown>;
    if (typeof msg !== "string") return [];
    const place = Array.isArray(loc) ? loc.filter((x): x is string | number => typeof x === "string" || typeof x === "number") : [];
    return [{ loc: place, msg, ...(typeof type === "string" ? { type } : {}) }];
  });
}

/** Where a problem is: on a node when its `loc` goes through `contents.nodes.<id>`, else on the document. */
export function placeProblem(problem: WorkflowProblem): PlacedProblem {
  const loc = problem.loc[0] === "body" ? problem.loc.slice(1) : problem.loc;
  if (loc[0] === "contents" && loc[1] === "nodes" && typeof loc[2] === "string") {
    return { nodeId: loc[2], field: loc.slice(3).join("."), message: problem.msg };
  }
  return { nodeId: null, field: loc.join("."), message: problem.msg };
}

/** The problems grouped by node, and those on the document as a whole. */
export function problemsByNode(problems: readonly WorkflowProblem[]): { byNode: Map<string, PlacedProblem[]>; general: PlacedProblem[] } {
  const byNode = new Map<string, PlacedProblem[]>();
  const general: PlacedProblem[] = [];
  for (const placed of problems.map(placeProblem)) {
    if (placed.nodeId === null) general.push(placed);
    else byNode.set(placed.nodeId, [...(byNode.get(placed.nodeId) ?? []), placed]);
  }
  return { byNode, general };
}

const REFERENCE = /^\$([A-Za-z_][A-Za-z0-9_-]{0,63})((?:\.[^.\s]+)*)$/;

/** Every reference in a value (objects and lists walked), with its place. */
function referencesIn(value: unknown, at: (string | number)[]): { node: string; loc: (string | number)[] }[] {
  if (typeof value === "string") {
    const match = REFERENCE.exec(value);
    return match?.[1] ? [{ node: match[1], loc: at }] : [];
  }
  if (Array.isArray(value)) return value.flatMap((v, i) => referencesIn(v, [...at, i]));
  if (typeof value === "object" && value !== null) return Object.entries(value).flatMap(([k, v]) => referencesIn(v, [...at, k]));
  return [];
}

/**
 * What can be told wrong about the graph without asking the server, placed as the server places it.
 * The messages are the registry's own (src/workflows/document.ts), so that a problem reads the same
 * before and after Save.
 */
export function graphProblems(nodes: readonly WorkflowNodeSpec[]): WorkflowProblem[] {
  const problems: WorkflowProblem[] = [];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const at = (id: string, ...rest: (string | number)[]): (string | number)[] => ["body", "contents", "nodes", id, ...rest];
  for (const n of nodes) {
    n.depends.forEach((dep, i) => {
      if (dep === n.id) problems.push({ loc: at(n.id, "depends", i), msg: "a node cannot depend on itself", type: "value_error" });
      else if (!byId.has(dep)) problems.push({ loc: at(n.id, "depends", i), msg: `no node "${dep}"`, type: "value_error" });
    });
  }
  const upstream = (id: string): Set<string> => {
    const seen = new Set<string>();
    const walk = (x: string): void => {
      for (const dep of byId.get(x)?.depends ?? []) {
        if (seen.has(dep) || !byId.has(dep)) continue;
        seen.add(dep);
        walk(dep);
      }
    };
    walk(id);
    return seen;
  };
  const cyclic = nodes.some((n) => upstream(n.id).has(n.id));
  if (cyclic) problems.push({ loc: ["body", "contents", "nodes"], msg: "the nodes' depends form a cycle", type: "value_error" });
  for (const n of nodes) {
    if (n.type !== "run" && n.type !== "display") continue;
    const before = upstream(n.id);
    const field = n.type === "display" ? "fields" : "input";
    for (const ref of referencesIn(n.input, at(n.id, field))) {
      if (!byId.has(ref.node)) problems.push({ loc: ref.loc, msg: `$${ref.node}: no such node`, type: "value_error" });
      else if (!cyclic && !before.has(ref.node)) problems.push({ loc: ref.loc, msg: `$${ref.node} is not upstream of "${n.id}": add it to depends`, type: "value_error" });
    }
  }
  return problems;
}
