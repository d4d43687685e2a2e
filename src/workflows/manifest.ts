/**
 * A registered workflow as an app: listed in `/v1/models` (category `workflow`), called on `/run`,
 * `/queue` and `/stream` under its id, its input checked against the workflow's input schema. Its
 * runner is the gateway's workflow executor (src/scheduler/workflow-executor.ts), not a process.
 * @module
 */
import { DEFAULT_KNOBS, type AppManifest } from "../core/types.js";
import { workflowInputSchema, type WorkflowDocument } from "./document.js";

/** How long a workflow may run, end to end: its nodes keep their own request_timeout. */
const WORKFLOW_TIMEOUT_S = 3600;

export function workflowManifest(id: string, doc: WorkflowDocument): AppManifest {
  const output = doc.contents.schema?.output;
  return {
    id,
    version: "1",
    metadata: { display_name: doc.title ?? doc.name, category: "workflow", description: doc.description ?? "", tags: ["workflow"] },
    knobs: { ...DEFAULT_KNOBS, request_timeout: WORKFLOW_TIMEOUT_S },
    endpoints: [{ path: "", kind: "http", input: workflowInputSchema(doc), output: output && typeof output === "object" ? output : { type: "object" }, description: "Runs the workflow's nodes and returns its output" }],
    modulePath: "",
    unavailable: null,
    workflow: true,
  };
}
