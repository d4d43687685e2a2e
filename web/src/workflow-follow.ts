/**
 * Follows the nodes of the workflow run the app page shows. Three sources feed the node states
 * (web/src/lib/workflow-run.ts): the workflow's events, which the page's status stream hands over
 * as partial results; a poll of each queued or running node's own request status, which carries
 * its queue position and progress; and, when the page did not see the run from its start (a
 * reopened run) and once the run has ended, each node's request, found through the workflow
 * request's `workflow_nodes`, so that an event the stream never delivered leaves no gap.
 * @module
 */
import { useCallback, useEffect, useMemo, useReducer, useRef } from "react";
import type { Api } from "./api.js";
import { useInterval } from "./hooks.js";
import type { WorkflowNodeSpec } from "./lib/workflow-graph.js";
import {
  applyNodeStatus,
  applyWorkflowEvent,
  finishWorkflowRun,
  isActive,
  isFinished,
  NO_RUN,
  nodesToWatch,
  parseWorkflowEvent,
  startWorkflowRun,
  type NodeStatusReport,
  type WorkflowEvent,
  type WorkflowRunState,
  withDisplayFields,
} from "./lib/workflow-run.js";
import type { Run } from "./run.js";

/** Node statuses are read this often while any node is queued or running. */
const POLL_MS = 500;

type Action =
  | { type: "start"; requestId: string; nodes: readonly WorkflowNodeSpec[]; input: unknown }
  | { type: "event"; requestId: string; event: WorkflowEvent; nodes: readonly WorkflowNodeSpec[]; input: unknown }
  | { type: "status"; requestId: string; nodeId: string; report: NodeStatusReport }
  | { type: "finish"; requestId: string; outcome: "succeeded" | "failed" | "cancelled"; output: { value: unknown } | null; nodes: readonly WorkflowNodeSpec[] };

function reduce(state: WorkflowRunState, action: Action): WorkflowRunState {
  if (action.type === "start") return action.requestId === state.requestId ? state : startWorkflowRun(action.requestId, action.nodes, action.input);
  // Whatever concerns another run than the one shown: an event may come before the start is seen.
  if (action.requestId !== state.requestId) {
    if (action.type !== "event") return state;
    state = startWorkflowRun(action.requestId, action.nodes, action.input);
  }
  switch (action.type) {
    case "event":
      return applyWorkflowEvent(state, action.event, action.nodes);
    case "status":
      return applyNodeStatus(state, action.nodeId, action.report);
    case "finish":
      return finishWorkflowRun(state, action.outcome, action.nodes, action.output);
  }
}

export interface WorkflowRunView {
  state: WorkflowRunState;
  /** Hands a partial result of the workflow's request to the view (wired to useRun's onPartial). */
  onPartial: (requestId: string, value: unknown) => void;
}

/**
 * `nodes` are the nodes of the registered document (what runs), `run` and `input` the page's run
 * and its input; `nodes` is null until the document is loaded.
 */
export function useWorkflowRun(api: Api | undefined, nodes: readonly WorkflowNodeSpec[] | null, run: Run, input: unknown): WorkflowRunView {
  const [state, dispatch] = useReducer(reduce, NO_RUN);
  const latest = useRef({ nodes, input, state });
  latest.current = { nodes, input, state };
  /** Whether the run shown was submitted from this page: then no node existed before its events. */
  const submittedHere = useRef(false);
  const polling = useRef(false);

  const requestId = run.phase === "queued" || run.phase === "running" || run.phase === "done" ? run.requestId : null;
  if (run.phase === "submitting") submittedHere.current = true;

  /** Reads each submitted node's request (a node not yet submitted stays as it is). */
  const reconcile = useCallback(
    async (workflowRequestId: string, only: (id: string) => boolean) => {
      const known = latest.current.nodes;
      if (!api || !known) return;
      const submitted = await submittedNodesOf(api, workflowRequestId).catch(() => new Map<string, string>());
      await Promise.all(
        known
          .filter((n) => n.type === "run" && only(n.id) && submitted.has(n.id))
          .map(async (n) => {
            const detail = await api.request(submitted.get(n.id) as string);
            dispatch({ type: "status", requestId: workflowRequestId, nodeId: n.id, report: detail });
          }),
      ).catch(() => undefined);
    },
    [api],
  );

  // A run appears: its nodes start from scratch. One reopened mid-way is read up to where it is.
  useEffect(() => {
    if (!requestId || !nodes) return;
    dispatch({ type: "start", requestId, nodes, input: latest.current.input });
    const fresh = submittedHere.current;
    submittedHere.current = false;
    if (!fresh) void reconcile(requestId, () => true);
  }, [requestId, nodes, reconcile]);

  // The run ended: its outcome, then every node read again for what the events may not have said.
  const outcome = run.phase === "done" ? run.outcome : null;
  const output = run.phase === "done" && run.result.ok ? run.result.body : undefined;
  useEffect(() => {
    if (!requestId || !outcome || !nodes) return;
    dispatch({ type: "finish", requestId, outcome, output: output === undefined ? null : { value: output }, nodes });
    void reconcile(requestId, (id) => {
      const s = latest.current.state.nodes[id];
      return !s || !isFinished(s.phase) || (s.phase === "done" && !s.output);
    });
  }, [requestId, outcome, output, nodes, reconcile]);

  const onPartial = useCallback((forRequest: string, value: unknown) => {
    const event = parseWorkflowEvent(value);
    const known = latest.current.nodes;
    if (event && known) dispatch({ type: "event", requestId: forRequest, event, nodes: known, input: latest.current.input });
  }, []);

  // The nodes are read while the workflow runs: the events say what happened, but only a node's own
  // status has its queue position and progress.
  const workflowActive = run.phase === "queued" || run.phase === "running";
  const nodesActive = Object.values(state.nodes).some((n) => isActive(n.phase));
  useInterval(
    () => {
      const known = latest.current.nodes;
      const current = latest.current.state;
      if (!api || polling.current || !current.requestId || !known) return;
      const forRun = current.requestId;
      const specs = new Map(known.map((n) => [n.id, n]));
      const watched = current.ended ? Object.keys(current.nodes).filter((id) => isActive(current.nodes[id]?.phase ?? "idle")) : nodesToWatch(current, known);
      polling.current = true;
      // Nodes whose request the page does not know yet are looked up once per round, all together.
      const unknownIds = watched.some((nodeId) => !current.nodes[nodeId]?.requestId);
      const submitted = unknownIds ? submittedNodesOf(api, forRun).catch(() => new Map<string, string>()) : Promise.resolve(new Map<string, string>());
      void Promise.all(
        watched.map(async (nodeId) => {
          const node = current.nodes[nodeId];
          const endpoint = node?.appId ?? specs.get(nodeId)?.app;
          let report: NodeStatusReport | null = null;
          if (node?.requestId && endpoint) {
            report = await api.status(endpoint, node.requestId).catch(() => null);
            // Its end is read in full: the output (or error) the status leaves out.
            if (report?.status === "COMPLETED") report = await api.request(node.requestId).catch(() => report);
          } else {
            const nodeRequest = (await submitted).get(nodeId);
            report = nodeRequest ? await api.request(nodeRequest).catch(() => null) : null;
          }
          if (report) dispatch({ type: "status", requestId: forRun, nodeId, report });
        }),
      ).finally(() => {
        polling.current = false;
      });
    },
    POLL_MS,
    workflowActive || nodesActive,
  );

  const shown = useMemo(() => (nodes ? withDisplayFields(state, nodes) : state), [state, nodes]);
  return { state: shown, onPartial };
}

/** The workflow request's submitted run nodes (`workflow_nodes` of GET /v1/requests/{id}): node id to request id. */
async function submittedNodesOf(api: Api, workflowRequestId: string): Promise<Map<string, string>> {
  const detail = await api.request(workflowRequestId);
  return new Map((detail.workflow_nodes ?? []).filter((n) => n.state !== null).map((n) => [n.node_id, n.request_id]));
}
