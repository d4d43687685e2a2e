/**
 * The state of each node of a workflow run, from what the Playground hears of it: fal's workflow
 * events on the workflow's status stream (`submit`, `completion`, `output`, `error`), the status of
 * each node's own request (queue position, progress), and the workflow's outcome. The sources
 * overlap and arrive in no fixed order (a status poll may see a node finish before its `completion`
 * event; a reopened status stream repeats the latest event), so every step here is idempotent and a
 * node's phase only moves forward: nothing heard late takes a finished node back to running.
 * @module
 */
import type { WorkflowNodeSpec } from "./workflow-graph.js";

export type NodePhase = "idle" | "queued" | "running" | "done" | "failed" | "cancelled";

export interface NodeProgress {
  fraction: number;
  step: number;
  total: number;
  message: string | null;
}

export interface NodeRunState {
  phase: NodePhase;
  /** The node's own request (a run node, once submitted). */
  requestId: string | null;
  /** The endpoint its request went to, as the `submit` event names it. */
  appId: string | null;
  queuePosition: number | null;
  progress: NodeProgress | null;
  /** What it produced: a run node's output, the input node's request body, a display node's fields. */
  output: { value: unknown } | null;
  error: string | null;
}

export type WorkflowEvent =
  | { type: "submit"; node_id: string; app_id: string; request_id: string }
  | { type: "completion"; node_id: string; output: unknown }
  | { type: "output"; output: unknown }
  | { type: "error"; node_id: string; message: string; error: string };

export interface WorkflowRunState {
  /** The workflow request these states belong to; null before any run. */
  requestId: string | null;
  nodes: Record<string, NodeRunState>;
  /** The workflow's output once it is known. */
  output: { value: unknown } | null;
  ended: "succeeded" | "failed" | "cancelled" | null;
}

/** What a node's request status says (fal's status payload, or `/v1/requests/{id}`). */
export interface NodeStatusReport {
  request_id?: string;
  /** The app (`/v1/requests/{id}`): where the request's status is read. */
  app_id?: string;
  status?: "IN_QUEUE" | "IN_PROGRESS" | "COMPLETED";
  state?: "QUEUED" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED";
  queue_position?: number | null;
  progress?: { step: number; total: number; fraction: number; message?: string | null } | null;
  error?: string | null;
  error_type?: string | null;
  output?: unknown;
}

const RANK: Record<NodePhase, number> = { idle: 0, queued: 1, running: 2, done: 3, failed: 3, cancelled: 3 };

export const isFinished = (phase: NodePhase): boolean => RANK[phase] === 3;
export const isActive = (phase: NodePhase): boolean => phase === "queued" || phase === "running";

export function idleNode(): NodeRunState {
  return { phase: "idle", requestId: null, appId: null, queuePosition: null, progress: null, output: null, error: null };
}

export const NO_RUN: WorkflowRunState = { requestId: null, nodes: {}, output: null, ended: null };

/** The fal event a partial result is, or null for anything else a status stream may carry. */
export function parseWorkflowEvent(value: unknown): WorkflowEvent | null {
  if (typeof value !== "object" || value === null) return null;
  const e = value as Record<string, unknown>;
  const str = (k: string): string | null => (typeof e[k] === "string" ? e[k] : null);
  const nodeId = str("node_id");
  switch (e["type"]) {
    case "submit": {
      const requestId = str("request_id");
      return nodeId && requestId ? { type: "submit", node_id: nodeId, app_id: str("app_id") ?? "", request_id: requestId } : null;
    }
    case "completion":
      return nodeId ? { type: "completion", node_id: nodeId, output: e["output"] } : null;
    case "output":
      return "output" in e ? { type: "output", output: e["output"] } : null;
    case "error":
      return nodeId ? { type: "error", node_id: nodeId, message: str("message") ?? "failed", error: str("error") ?? "" } : null;
    default:
      return null;
  }
}

/**
 * The nodes whose request may exist and is worth reading: those queued or running, and those that
 * have not been heard of but whose upstream nodes are all done (the executor submits them next).
 */
export function nodesToWatch(state: WorkflowRunState, nodes: readonly WorkflowNodeSpec[]): string[] {
  const phase = (id: string): NodePhase => state.nodes[id]?.phase ?? "idle";
  const byId = new Map(nodes.map((n) => [n.id, n]));
  return nodes
    .filter((n) => n.type === "run")
    .filter((n) => isActive(phase(n.id)) || (phase(n.id) === "idle" && n.depends.every((d) => phase(d) === "done" || byId.get(d)?.type === "display")))
    .map((n) => n.id);
}

/** A run that has just started: the input node holds the request's body, every other node waits. */
export function startWorkflowRun(requestId: string, nodes: readonly WorkflowNodeSpec[], input: unknown): WorkflowRunState {
  const states: Record<string, NodeRunState> = {};
  for (const n of nodes) states[n.id] = n.type === "input" ? { ...idleNode(), phase: "done", output: { value: input } } : idleNode();
  return { requestId, nodes: states, output: null, ended: null };
}

/** `node` moved to `next`, unless it is further along already. */
function advance(state: WorkflowRunState, nodeId: string, next: Partial<NodeRunState> & { phase: NodePhase }): WorkflowRunState {
  const current = state.nodes[nodeId] ?? idleNode();
  if (RANK[next.phase] < RANK[current.phase]) return state;
  // A finished node keeps how it finished; only details it lacked (its output, its request) are filled in.
  if (isFinished(current.phase)) {
    const filled: NodeRunState = {
      ...current,
      requestId: current.requestId ?? next.requestId ?? null,
      appId: current.appId ?? next.appId ?? null,
      output: current.output ?? (current.phase === next.phase ? (next.output ?? null) : null),
      error: current.error ?? (current.phase === next.phase ? (next.error ?? null) : null),
    };
    return { ...state, nodes: { ...state.nodes, [nodeId]: filled } };
  }
  const merged: NodeRunState = { ...current, ...next };
  if (isFinished(next.phase)) {
    merged.queuePosition = null;
    if (next.phase === "done") merged.progress = current.progress ? { ...current.progress, fraction: 1 } : null;
  }
  if (next.phase === "running") merged.queuePosition = null;
  return { ...state, nodes: { ...state.nodes, [nodeId]: merged } };
}

/** A step of a path into a value: a field of an object, an index of a list. */
function step(value: unknown, key: string): unknown {
  if (Array.isArray(value)) return /^\d+$/.test(key) ? value[Number(key)] : undefined;
  if (typeof value === "object" && value !== null) return (value as Record<string, unknown>)[key];
  return undefined;
}

const REFERENCE = /^\$([A-Za-z_][A-Za-z0-9_-]{0,63})((?:\.[^.\s]+)*)$/;

/** `value` with its references (`"$node.field.0"`) replaced by what the nodes produced, as the executor does. */
export function resolveReferences(value: unknown, outputs: Readonly<Record<string, unknown>>): unknown {
  if (typeof value === "string") {
    const match = REFERENCE.exec(value);
    if (!match) return value;
    return (match[2] ?? "").split(".").filter(Boolean).reduce<unknown>(step, outputs[match[1] ?? ""]);
  }
  if (Array.isArray(value)) return value.map((v) => resolveReferences(v, outputs));
  if (typeof value === "object" && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveReferences(v, outputs)]));
  return value;
}

/** What one workflow event says about the nodes. */
export function applyWorkflowEvent(state: WorkflowRunState, event: WorkflowEvent, nodes: readonly WorkflowNodeSpec[]): WorkflowRunState {
  switch (event.type) {
    case "submit":
      return advance(state, event.node_id, { phase: "queued", requestId: event.request_id, appId: event.app_id || null });
    case "completion":
      return advance(state, event.node_id, { phase: "done", output: { value: event.output }, error: null });
    case "error":
      return advance(state, event.node_id, { phase: "failed", error: event.message });
    case "output":
      return finishWorkflowRun(state, "succeeded", nodes, { value: event.output });
  }
}

/** What a node's request status says: queued with its place, running with its progress, or how it ended. */
export function applyNodeStatus(state: WorkflowRunState, nodeId: string, report: NodeStatusReport): WorkflowRunState {
  // A node found by its derived id (no submit event seen) learns its request here.
  const current = state.nodes[nodeId];
  if (report.request_id && current && !current.requestId) {
    state = { ...state, nodes: { ...state.nodes, [nodeId]: { ...current, requestId: report.request_id, appId: current.appId ?? report.app_id ?? null } } };
  }
  const ended = report.state ?? (report.status === "COMPLETED" ? (report.error ? (report.error_type === "client_cancelled" ? "CANCELLED" : "FAILED") : "SUCCEEDED") : null);
  if (ended === "SUCCEEDED") return advance(state, nodeId, { phase: "done", ...("output" in report ? { output: { value: report.output } } : {}) });
  if (ended === "FAILED") return advance(state, nodeId, { phase: "failed", error: report.error ?? "failed" });
  if (ended === "CANCELLED") return advance(state, nodeId, { phase: "cancelled", error: report.error ?? "cancelled" });
  if (ended === "QUEUED" || report.status === "IN_QUEUE") return advance(state, nodeId, { phase: "queued", queuePosition: report.queue_position ?? null });
  const p = report.progress;
  const progress = p ? { fraction: p.fraction, step: p.step, total: p.total, message: p.message ?? null } : (state.nodes[nodeId]?.progress ?? null);
  return advance(state, nodeId, { phase: "running", progress });
}

/**
 * The workflow ended. On success every node ran (what a display node shows: withDisplayFields); on
 * failure or cancellation the executor cancelled what was still queued or running, and the nodes
 * that never started stay idle.
 */
export function finishWorkflowRun(
  state: WorkflowRunState,
  outcome: "succeeded" | "failed" | "cancelled",
  nodes: readonly WorkflowNodeSpec[],
  output: { value: unknown } | null = null,
): WorkflowRunState {
  let next: WorkflowRunState = { ...state, ended: outcome, output: output ?? state.output };
  if (outcome === "succeeded") {
    for (const n of nodes) {
      const phase = next.nodes[n.id]?.phase ?? "idle";
      if (!isFinished(phase)) next = advance(next, n.id, { phase: "done" });
    }
    return next;
  }
  for (const n of nodes) {
    const phase = next.nodes[n.id]?.phase ?? "idle";
    if (isActive(phase)) next = advance(next, n.id, { phase: "cancelled", error: outcome === "failed" ? "cancelled: another node failed" : "cancelled with the workflow" });
  }
  return next;
}

/**
 * The state with each finished display node holding its fields, resolved against the nodes'
 * outputs as they are known now: a run node's output may be read after the workflow has ended, so
 * the fields are worked out when shown rather than fixed when the run ends.
 */
export function withDisplayFields(state: WorkflowRunState, nodes: readonly WorkflowNodeSpec[]): WorkflowRunState {
  const displays = nodes.filter((n) => n.type === "display" && state.nodes[n.id]?.phase === "done");
  if (displays.length === 0) return state;
  const outputs: Record<string, unknown> = {};
  for (const [id, s] of Object.entries(state.nodes)) if (s.output) outputs[id] = s.output.value;
  const next = { ...state.nodes };
  for (const n of displays) next[n.id] = { ...(next[n.id] ?? idleNode()), output: { value: resolveReferences(n.input, outputs) } };
  return { ...state, nodes: next };
}
