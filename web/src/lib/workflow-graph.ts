/**
 * A workflow document (fal's format, docs/workflows.md) read as a graph and laid out left to right:
 * each node in the layer after the deepest node it depends on, nodes within a layer ordered to keep
 * arrows from crossing, arrows drawn from a node's right edge to the left edge of each node that
 * depends on it. The document may be one being typed in the editor: whatever is malformed in it
 * (a missing node in `depends`, a cycle, a node that is not an object) is drawn as far as it can be,
 * never thrown on, since the problems are shown on the graph itself.
 * @module
 */

/** A node as the document gives it; anything else on it (an editor's positions) is not read. */
export interface WorkflowNodeSpec {
  id: string;
  /** `input`, `run` or `display`; whatever else the document says, kept for the problem list. */
  type: string;
  /** The endpoint a run node calls (`owner/alias[/path]`), null for other nodes. */
  app: string | null;
  /** The nodes it waits for, as written (missing ones included). */
  depends: string[];
  /** A run node's input, a display node's fields: where its references are. */
  input: Record<string, unknown>;
}

export interface PlacedNode extends WorkflowNodeSpec {
  layer: number;
  x: number;
  y: number;
}

export interface PlacedEdge {
  from: string;
  to: string;
  /** An SVG path from the middle of `from`'s right edge to the middle of `to`'s left edge. */
  path: string;
  /** Points backwards (a cycle): drawn, but marked, since the server refuses it. */
  backwards: boolean;
}

export interface GraphLayout {
  nodes: PlacedNode[];
  edges: PlacedEdge[];
  width: number;
  height: number;
}

/** Box sizes in CSS pixels: wide enough for `owner/alias` and a state line, as the styles draw them. */
export const NODE_WIDTH = 188;
export const NODE_HEIGHT = 84;
const GAP_X = 64;
const GAP_Y = 22;
const PADDING = 12;
/** Sweeps of the crossing reduction; a few settle any workflow a person draws. */
const SWEEPS = 4;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The nodes of a document (`{contents: {nodes}}`, or the contents alone), in the document's order;
 * null when it has no `nodes` object to read.
 */
export function workflowNodesOf(doc: unknown): WorkflowNodeSpec[] | null {
  if (!isObject(doc)) return null;
  const contents = isObject(doc["contents"]) ? doc["contents"] : doc;
  const nodes = contents["nodes"];
  if (!isObject(nodes)) return null;
  return Object.entries(nodes).map(([id, raw]) => {
    const node = isObject(raw) ? raw : {};
    const type = typeof node["type"] === "string" ? node["type"] : "unknown";
    const depends = Array.isArray(node["depends"]) ? node["depends"].filter((d): d is string => typeof d === "string") : [];
    const input = type === "display" ? node["fields"] : node["input"];
    return { id, type, app: typeof node["app"] === "string" ? node["app"] : null, depends, input: isObject(input) ? input : {} };
  });
}

/**
 * Each node's layer: 0 for a node that depends on nothing, else one more than the deepest node it
 * depends on. A dependency that closes a cycle is left out of the count (the walk would not end).
 */
export function layersOf(nodes: readonly WorkflowNodeSpec[]): Map<string, number> {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const layer = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (id: string): number => {
    const known = layer.get(id);
    if (known !== undefined) return known;
    visiting.add(id);
    let deepest = -1;
    for (const dep of byId.get(id)?.depends ?? []) {
      if (dep === id || !byId.has(dep) || visiting.has(dep)) continue;
      deepest = Math.max(deepest, visit(dep));
    }
    visiting.delete(id);
    layer.set(id, deepest + 1);
    return deepest + 1;
  };
  for (const n of nodes) visit(n.id);
  return layer;
}

const mean = (values: readonly number[]): number | null => (values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length);

/**
 * Orders each layer by the mean position of its neighbours in the layer before (then, sweeping
 * back, after), the barycenter heuristic: it removes the crossings of the usual workflow shapes
 * (chains, fans, diamonds). Nodes without neighbours there keep their place; ties keep document order.
 */
function orderLayers(nodes: readonly WorkflowNodeSpec[], layer: ReadonlyMap<string, number>): string[][] {
  const count = Math.max(0, ...layer.values()) + 1;
  const layers: string[][] = Array.from({ length: count }, () => []);
  for (const n of nodes) layers[layer.get(n.id) ?? 0]?.push(n.id);
  const ids = new Set(nodes.map((n) => n.id));
  const upstream = new Map(nodes.map((n) => [n.id, n.depends.filter((d) => ids.has(d) && d !== n.id)]));
  const downstream = new Map<string, string[]>(nodes.map((n) => [n.id, []]));
  for (const n of nodes) for (const d of upstream.get(n.id) ?? []) downstream.get(d)?.push(n.id);
  const position = new Map<string, number>();
  const remember = (row: readonly string[]): void => row.forEach((id, i) => position.set(id, i));
  layers.forEach(remember);
  const reorder = (row: string[], neighbours: Map<string, string[]>): void => {
    const keyed = row.map((id, i) => {
      const m = mean((neighbours.get(id) ?? []).map((x) => position.get(x)).filter((p): p is number => p !== undefined));
      return { id, key: m ?? i, i };
    });
    keyed.sort((a, b) => a.key - b.key || a.i - b.i);
    row.splice(0, row.length, ...keyed.map((k) => k.id));
    remember(row);
  };
  for (let sweep = 0; sweep < SWEEPS; sweep++) {
    for (let l = 1; l < count; l++) reorder(layers[l] ?? [], upstream);
    for (let l = count - 2; l >= 0; l--) reorder(layers[l] ?? [], downstream);
  }
  return layers;
}

/** Where every node's box goes and the path of every arrow, in a box of `width` × `height`. */
export function layoutWorkflow(nodes: readonly WorkflowNodeSpec[]): GraphLayout {
  if (nodes.length === 0) return { nodes: [], edges: [], width: 0, height: 0 };
  const layer = layersOf(nodes);
  const layers = orderLayers(nodes, layer);
  const tallest = Math.max(...layers.map((row) => row.length));
  const height = PADDING * 2 + tallest * NODE_HEIGHT + (tallest - 1) * GAP_Y;
  const width = PADDING * 2 + layers.length * NODE_WIDTH + (layers.length - 1) * GAP_X;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const placed = new Map<string, PlacedNode>();
  layers.forEach((row, l) => {
    // Each layer centred on the tallest, so that a chain runs straight through the middle.
    const rowHeight = row.length * NODE_HEIGHT + (row.length - 1) * GAP_Y;
    const top = (height - rowHeight) / 2;
    row.forEach((id, i) => {
      const spec = byId.get(id);
      if (spec) placed.set(id, { ...spec, layer: l, x: PADDING + l * (NODE_WIDTH + GAP_X), y: top + i * (NODE_HEIGHT + GAP_Y) });
    });
  });
  const edges: PlacedEdge[] = [];
  for (const target of nodes) {
    const to = placed.get(target.id);
    for (const dep of new Set(target.depends)) {
      const from = placed.get(dep);
      if (!from || !to || dep === target.id) continue;
      edges.push({ from: dep, to: target.id, path: edgePath(from, to), backwards: from.layer >= to.layer });
    }
  }
  return { nodes: nodes.map((n) => placed.get(n.id)).filter((n): n is PlacedNode => n !== undefined), edges, width, height };
}

/** A smooth curve between the boxes; a backwards arrow loops out below both, so it is not hidden behind them. */
function edgePath(from: PlacedNode, to: PlacedNode): string {
  const x1 = from.x + NODE_WIDTH;
  const y1 = from.y + NODE_HEIGHT / 2;
  const x2 = to.x;
  const y2 = to.y + NODE_HEIGHT / 2;
  if (x2 > x1) {
    const bend = Math.max(24, (x2 - x1) / 2);
    return `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`;
  }
  const below = Math.max(from.y, to.y) + NODE_HEIGHT + GAP_Y / 2;
  return `M ${x1} ${y1} C ${x1 + GAP_X} ${y1}, ${x1 + GAP_X} ${below}, ${(x1 + x2) / 2} ${below} S ${x2 - GAP_X} ${y2}, ${x2} ${y2}`;
}
