/**
 * One node of a workflow, as chosen on the graph: what it is (type, app, depends, its input as
 * written, references and all), how it stands in the run shown (state, progress, error, its
 * request with a link to it on its app's page) and what it produced, shown with the same media
 * viewers and JSON view as an app's output.
 * @module
 */
import type { ReactNode } from "react";
import { findFiles } from "../lib/outputs.js";
import type { WorkflowNodeSpec } from "../lib/workflow-graph.js";
import type { PlacedProblem } from "../lib/workflow-problems.js";
import type { NodeRunState } from "../lib/workflow-run.js";
import { appIdOf } from "../api.js";
import { Link } from "../router.js";
import { JsonView } from "./JsonView.js";
import { AudioPlayer, ImageGallery, OtherFile, VideoPlayer } from "./Media.js";
import { stateText } from "./WorkflowGraph.js";

function NodeOutput({ value, label }: { value: unknown; label: string }): ReactNode {
  const files = findFiles(value);
  const images = files.filter((f) => f.kind === "image");
  return (
    <div className="outputs" data-testid="node-output">
      {images.length > 0 ? <ImageGallery files={images} /> : null}
      {files.filter((f) => f.kind === "audio").map((f) => <AudioPlayer key={f.path} file={f} />)}
      {files.filter((f) => f.kind === "video").map((f) => <VideoPlayer key={f.path} file={f} />)}
      {files.filter((f) => f.kind === "other").map((f) => <OtherFile key={f.path} file={f} />)}
      <JsonView value={value} label={label} />
    </div>
  );
}

export function WorkflowNodeDetail({ node, state, problems }: { node: WorkflowNodeSpec; state: NodeRunState; problems: readonly PlacedProblem[] }): ReactNode {
  const endpoint = state.appId ?? node.app;
  return (
    <section className="wf-detail" aria-labelledby="wf-detail-heading" data-testid="node-detail">
      <h3 id="wf-detail-heading">
        Node <code>{node.id}</code>
      </h3>
      <dl className="wf-facts">
        <div>
          <dt>Type</dt>
          <dd>{node.type}</dd>
        </div>
        {node.app ? (
          <div>
            <dt>App</dt>
            <dd>
              <Link href={`/app?id=${encodeURIComponent(appIdOf(node.app))}`}>{node.app}</Link>
            </dd>
          </div>
        ) : null}
        <div>
          <dt>Depends on</dt>
          <dd>{node.depends.length > 0 ? node.depends.join(", ") : "nothing"}</dd>
        </div>
        <div>
          <dt>State</dt>
          <dd data-testid="node-detail-state">{stateText(node, state)}</dd>
        </div>
        {state.requestId ? (
          <div>
            <dt>Request</dt>
            <dd>
              <code data-testid="node-request-id">{state.requestId}</code>
              {endpoint ? (
                <>
                  {" "}
                  · <Link href={`/app?id=${encodeURIComponent(appIdOf(endpoint))}&request=${encodeURIComponent(state.requestId)}`}>open</Link>
                </>
              ) : null}
            </dd>
          </div>
        ) : null}
      </dl>
      {state.phase === "running" && state.progress ? (
        <p className="muted small">
          {state.progress.message ?? `step ${state.progress.step} of ${state.progress.total}`} ({Math.round(state.progress.fraction * 100)}%)
        </p>
      ) : null}
      {problems.length > 0 ? (
        <ul className="wf-problems" aria-label={`Problems of ${node.id}`}>
          {problems.map((p) => (
            <li key={p.field + p.message}>
              {p.field ? <code>{p.field}</code> : null}
              {p.field ? ": " : ""}
              {p.message}
            </li>
          ))}
        </ul>
      ) : null}
      {state.error ? (
        <p className={`notice ${state.phase === "failed" ? "error" : "warning"}`} data-testid="node-error">
          {state.error}
        </p>
      ) : null}
      {state.output ? (
        <NodeOutput value={state.output.value} label={node.type === "input" ? "Input (JSON)" : node.type === "display" ? "Fields (JSON)" : "Output (JSON)"} />
      ) : state.phase === "done" ? (
        <p className="muted small">Its output is being read…</p>
      ) : (
        <p className="muted small">{state.phase === "idle" ? "Run the workflow to see what this node produces." : state.phase === "failed" || state.phase === "cancelled" ? "No output." : "No output yet."}</p>
      )}
      {node.type !== "input" && Object.keys(node.input).length > 0 ? (
        <details className="json-view">
          <summary>{node.type === "display" ? "Fields as written" : "Input as written"}</summary>
          <pre className="code json" tabIndex={0}>
            {JSON.stringify(node.input, null, 2)}
          </pre>
        </details>
      ) : null}
    </section>
  );
}
