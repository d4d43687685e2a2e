/**
 * A workflow drawn as a graph: a box per node (its id, the app it calls, its state in the run
 * shown, a progress bar while it runs, the first problem found in it), arrows for `depends`. The
 * boxes are buttons laid over an SVG of the arrows, so that they take the focus, wrap their text
 * and show a native progress bar; the drawing scrolls sideways inside its panel on a narrow screen.
 * @module
 */
import type { ReactNode } from "react";
import { NODE_HEIGHT, NODE_WIDTH, type GraphLayout, type PlacedNode } from "../lib/workflow-graph.js";
import type { PlacedProblem } from "../lib/workflow-problems.js";
import { idleNode, type NodeRunState } from "../lib/workflow-run.js";

/** A node's state in words: what the box says and what a screen reader hears. */
export function stateText(node: Pick<PlacedNode, "type">, state: NodeRunState): string {
  switch (state.phase) {
    case "idle":
      return node.type === "input" ? "input" : "idle";
    case "queued":
      return state.queuePosition ? `queued · ${state.queuePosition} ahead` : "queued";
    case "running":
      return state.progress ? `running · ${Math.round(state.progress.fraction * 100)}%` : "running";
    default:
      return state.phase;
  }
}

function NodeBox({
  node,
  state,
  problems,
  selected,
  onSelect,
}: {
  node: PlacedNode;
  state: NodeRunState;
  problems: readonly PlacedProblem[];
  selected: boolean;
  onSelect: (id: string) => void;
}): ReactNode {
  const text = stateText(node, state);
  const first = problems[0];
  const what = node.app ?? (node.type === "input" ? "the request's input" : node.type === "display" ? "display" : node.type);
  return (
    <button
      type="button"
      className={`wf-node type-${node.type} phase-${state.phase}${problems.length > 0 ? " has-problem" : ""}`}
      style={{ left: node.x, top: node.y, width: NODE_WIDTH, height: NODE_HEIGHT }}
      aria-pressed={selected}
      aria-label={`Node ${node.id}, ${what}: ${text}${first ? `; problem at ${first.field || "the node"}: ${first.message}` : ""}`}
      title={problems.map((p) => (p.field ? `${p.field}: ${p.message}` : p.message)).join("\n") || undefined}
      data-testid="workflow-node"
      data-node-id={node.id}
      data-state={state.phase}
      onClick={() => onSelect(node.id)}
    >
      <span className="wf-node-id">{node.id}</span>
      <span className="wf-node-app">{what}</span>
      {first ? (
        <span className="wf-node-problem" data-testid="node-problem">
          {first.message}
          {problems.length > 1 ? ` (+${problems.length - 1})` : ""}
        </span>
      ) : (
        <span className="wf-node-state" data-testid="node-state">
          {text}
        </span>
      )}
      {state.phase === "running" || (state.phase === "done" && state.progress) ? (
        state.progress ? (
          <progress value={state.progress.fraction} max={1} aria-hidden="true" />
        ) : (
          <progress aria-hidden="true" />
        )
      ) : null}
    </button>
  );
}

export function WorkflowGraph({
  layout,
  states,
  problems,
  selected,
  onSelect,
}: {
  layout: GraphLayout;
  states: Readonly<Record<string, NodeRunState>>;
  problems: ReadonlyMap<string, readonly PlacedProblem[]>;
  selected: string | null;
  onSelect: (id: string) => void;
}): ReactNode {
  const phaseOf = (id: string): string => states[id]?.phase ?? "idle";
  return (
    <div className="wf-graph-scroll" tabIndex={-1}>
      <div className="wf-graph" role="group" aria-label="Workflow graph" data-testid="workflow-graph" style={{ width: layout.width, height: layout.height }}>
        <svg width={layout.width} height={layout.height} aria-hidden="true" className="wf-edges">
          <defs>
            <marker id="wf-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
              <path d="M 0 0 L 10 5 L 0 10 z" className="wf-arrow-head" />
            </marker>
          </defs>
          {layout.edges.map((e) => (
            <path
              key={`${e.from}->${e.to}`}
              d={e.path}
              className={`wf-edge from-${phaseOf(e.from)}${e.backwards ? " backwards" : ""}`}
              markerEnd="url(#wf-arrow)"
              data-testid="workflow-edge"
              data-from={e.from}
              data-to={e.to}
            />
          ))}
        </svg>
        {layout.nodes.map((n) => (
          <NodeBox key={n.id} node={n} state={states[n.id] ?? idleNode()} problems={problems.get(n.id) ?? []} selected={selected === n.id} onSelect={onSelect} />
        ))}
      </div>
    </div>
  );
}
