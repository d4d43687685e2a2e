/**
 * The workflow of a workflow app's page: its graph with each node's state in the run the page shows,
 * the chosen node's detail and output, and its document in an editor. The graph draws the document
 * being edited while it is JSON (so that an edit shows at once, with what a browser can tell wrong
 * in it marked on its nodes), and the registered one otherwise. The registry's problems (from a
 * read, or a refused Save) are marked on the nodes they name until the document is edited again.
 * @module
 */
import { useEffect, useMemo, useState, type MutableRefObject, type ReactNode } from "react";
import { ApiError, type WorkflowView } from "../api.js";
import { useAsync, useModels } from "../hooks.js";
import { jsonSyntaxError } from "../lib/json-syntax.js";
import { layoutWorkflow, workflowNodesOf, type WorkflowNodeSpec } from "../lib/workflow-graph.js";
import { graphProblems, problemsByNode, problemsOf, type WorkflowProblem } from "../lib/workflow-problems.js";
import { idleNode } from "../lib/workflow-run.js";
import type { Run } from "../run.js";
import { useSession } from "../session.js";
import { useWorkflowRun } from "../workflow-follow.js";
import { ErrorNotice, Loading } from "./common.js";
import { WorkflowEditor } from "./WorkflowEditor.js";
import { WorkflowGraph } from "./WorkflowGraph.js";
import { WorkflowNodeDetail } from "./WorkflowNodeDetail.js";

/** The document as the editor shows it: what a PUT takes back (the registry's own fields left out). */
function documentText(view: WorkflowView): string {
  const { name, title, description, contents } = view;
  return JSON.stringify({ name, title, ...(description ? { description } : {}), contents }, null, 2);
}

/** Problems with the same place and words once, the registry's first. */
function merge(...lists: readonly WorkflowProblem[][]): WorkflowProblem[] {
  const seen = new Set<string>();
  return lists.flat().filter((p) => {
    const key = `${p.loc.join(".")}\n${p.msg}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function WorkflowPanel({
  workflowId,
  run,
  input,
  partialSink,
}: {
  workflowId: string;
  run: Run;
  input: unknown;
  /** Where the page's run hands each partial result of the workflow's request. */
  partialSink: MutableRefObject<((requestId: string, value: unknown) => void) | null>;
}): ReactNode {
  const { session } = useSession();
  const api = session?.api;
  const models = useModels();
  const loaded = useAsync(async (signal) => (api ? api.workflow(workflowId, signal) : null), [api, workflowId]);
  const [saved, setSaved] = useState<WorkflowView | null>(null);
  const [text, setText] = useState<string | null>(null);
  const [serverProblems, setServerProblems] = useState<WorkflowProblem[]>([]);
  const [saving, setSaving] = useState(false);
  const [saveNote, setSaveNote] = useState<{ ok: boolean; text: string } | null>(null);
  const [saveError, setSaveError] = useState<Error | null>(null);
  const [selected, setSelected] = useState<string | null>(null);

  // The document as read; a read's problems are the registry's checks run again against today's apps.
  useEffect(() => {
    if (!loaded.data) return;
    setSaved(loaded.data);
    setText(documentText(loaded.data));
    setServerProblems(problemsOf(loaded.data.problems ?? []));
  }, [loaded.data]);

  const registeredNodes = useMemo(() => (saved ? workflowNodesOf(saved.contents) : null), [saved]);
  const syntaxError = useMemo(() => (text === null ? null : jsonSyntaxError(text)), [text]);
  const editedNodes = useMemo<WorkflowNodeSpec[] | null>(() => (text === null || syntaxError ? null : workflowNodesOf(JSON.parse(text) as unknown)), [text, syntaxError]);
  const shownNodes = editedNodes ?? registeredNodes ?? [];
  const layout = useMemo(() => layoutWorkflow(shownNodes), [shownNodes]);
  const problems = useMemo(() => merge(serverProblems, graphProblems(shownNodes)), [serverProblems, shownNodes]);
  const { byNode } = useMemo(() => problemsByNode(problems), [problems]);
  const dirty = saved !== null && text !== null && text !== documentText(saved);

  const { state, onPartial } = useWorkflowRun(api, registeredNodes, run, input);
  useEffect(() => {
    partialSink.current = onPartial;
    return () => {
      partialSink.current = null;
    };
  }, [partialSink, onPartial]);

  if (loaded.error) {
    if (loaded.error instanceof ApiError && loaded.error.status === 404) return <p className="muted">This workflow&apos;s document is not in the registry any more.</p>;
    return <ErrorNotice error={loaded.error} onRetry={loaded.reload} />;
  }
  if (!saved || text === null) return <Loading what="the workflow" />;

  const edit = (next: string): void => {
    setText(next);
    // The registry's verdict was on the text it was sent; an edit may have fixed it, only a Save can tell.
    setServerProblems([]);
    setSaveNote(null);
  };

  const save = async (): Promise<void> => {
    if (!api || syntaxError || saving) return;
    setSaving(true);
    setSaveError(null);
    setSaveNote(null);
    try {
      const res = await api.saveWorkflow(workflowId, JSON.parse(text) as unknown);
      if (res.ok) {
        const view = res.body as WorkflowView;
        setSaved(view);
        setText(documentText(view));
        setServerProblems([]);
        setSaveNote({ ok: true, text: res.status === 201 ? "Registered." : "Saved: the next run uses this document." });
        // Its input schema may have changed: the form follows.
        models.reload();
      } else if (res.status === 422) {
        const found = problemsOf(res.body);
        setServerProblems(found);
        setSaveNote({ ok: false, text: `Not saved: ${found.length} ${found.length === 1 ? "problem" : "problems"}. The registered document is unchanged.` });
      } else {
        setSaveError(new ApiError(res.status, res.body, res.headers));
      }
    } catch (err) {
      setSaveError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      setSaving(false);
    }
  };

  const chosen = shownNodes.find((n) => n.id === selected) ?? null;
  const runShown = state.requestId !== null;
  return (
    <div className="wf-panel">
      <p className="muted small">
        {editedNodes && dirty ? "The graph shows the document as edited (not saved yet)." : "Each box is a node, each arrow a dependency; choose a node to see its output."}
        {runShown ? (
          <>
            {" "}
            States are those of request <code>{state.requestId}</code>.
          </>
        ) : null}
      </p>
      {layout.nodes.length > 0 ? (
        <WorkflowGraph layout={layout} states={state.nodes} problems={byNode} selected={chosen?.id ?? null} onSelect={setSelected} />
      ) : (
        <p className="muted">The document has no nodes to draw.</p>
      )}
      {problems.length > 0 ? (
        <div className="notice error" data-testid="workflow-problems">
          <p>
            {serverProblems.length > 0 ? "The registry found" : "Found"} {problems.length === 1 ? "this problem" : "these problems"}:
          </p>
          <ul>
            {problems.map((p) => {
              const placed = problemsByNode([p]);
              const nodeId = [...placed.byNode.keys()][0];
              const where = nodeId ? (placed.byNode.get(nodeId)?.[0]?.field ?? "") : (placed.general[0]?.field ?? "");
              return (
                <li key={`${p.loc.join(".")}\n${p.msg}`}>
                  {nodeId ? (
                    <button type="button" className="button small" onClick={() => setSelected(nodeId)}>
                      {nodeId}
                    </button>
                  ) : null}{" "}
                  {where ? <code>{where}</code> : null}
                  {where ? ": " : ""}
                  {p.msg}
                </li>
              );
            })}
          </ul>
        </div>
      ) : null}
      {chosen ? <WorkflowNodeDetail node={chosen} state={state.nodes[chosen.id] ?? idleNode()} problems={byNode.get(chosen.id) ?? []} /> : null}
      {saveError ? <ErrorNotice error={saveError} /> : null}
      {saveNote ? (
        <p className={`notice ${saveNote.ok ? "success" : "error"}`} role="status" data-testid="workflow-save-note">
          {saveNote.text}
        </p>
      ) : null}
      <WorkflowEditor
        text={text}
        onChange={edit}
        editable={session?.scope === "admin"}
        syntaxError={syntaxError}
        saving={saving}
        dirty={dirty}
        onSave={() => void save()}
        onRevert={() => edit(documentText(saved))}
      />
    </div>
  );
}
