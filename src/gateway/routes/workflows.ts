/**
 * The workflow registry, `/v1/workflows`: documents in fal's format (src/workflows/document.ts),
 * checked against the apps this gateway serves before they are kept, and served at once as apps of
 * their own (`/run`, `/queue`, `/stream` under `{owner}/{name}`, or fal's `workflows/{owner}/{name}`). Admin keys register and delete
 * them; any key lists and reads them. A read checks the document again, since the apps it calls may
 * have changed since it was registered.
 * @module
 */
import type { FastifyInstance } from "fastify";
import { PlatformError } from "../../core/errors.js";
import type { WorkflowRecord } from "../../store/store.js";
import { checkWorkflow, WorkflowDocument, type WorkflowProblem } from "../../workflows/document.js";
import { requireAdmin, requirePrincipal, type GatewayContext } from "../context.js";
import { validatedBody } from "../validated-body.js";

const OWNER = /^[a-z0-9][a-z0-9-]{0,63}$/;
const NAME = /^[a-z0-9][a-z0-9._-]{0,99}$/;

function workflowIdOf(params: unknown): string {
  const { owner, name } = params as { owner: string; name: string };
  const problems = [
    ...(OWNER.test(owner) ? [] : [{ loc: ["path", "owner"], msg: "lower case letters, digits and '-'", type: "invalid_format" }]),
    ...(NAME.test(name) ? [] : [{ loc: ["path", "name"], msg: "lower case letters, digits, '.', '_' and '-'", type: "invalid_format" }]),
  ];
  if (problems.length > 0) throw new PlatformError("ERR_VALIDATION", { fieldErrors: problems });
  return `${owner}/${name}`;
}

function view(record: WorkflowRecord, full: boolean, problems?: WorkflowProblem[]): Record<string, unknown> {
  const doc = JSON.parse(record.document) as WorkflowDocument;
  return {
    id: record.id,
    name: doc.name,
    title: doc.title ?? doc.name,
    ...(doc.description ? { description: doc.description } : {}),
    ...(full ? { contents: doc.contents } : {}),
    ...(problems ? { problems } : {}),
    created_at: new Date(record.createdAt).toISOString(),
    updated_at: new Date(record.updatedAt).toISOString(),
  };
}

export function registerWorkflowRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const appOf = (id: string): ReturnType<GatewayContext["scheduler"]["app"]> => ctx.scheduler.app(id);

  app.get("/v1/workflows", async (request) => {
    requirePrincipal(request);
    return { workflows: (await ctx.store.listWorkflows()).map((record) => view(record, false)) };
  });

  app.get("/v1/workflows/:owner/:name", async (request) => {
    requirePrincipal(request);
    const id = workflowIdOf(request.params);
    const record = await ctx.store.getWorkflow(id);
    if (!record) throw new PlatformError("ERR_WORKFLOW_NOT_FOUND", { message: `No workflow ${id}` });
    return view(record, true, checkWorkflow(WorkflowDocument.parse(JSON.parse(record.document)), appOf, id));
  });

  app.put("/v1/workflows/:owner/:name", async (request, reply) => {
    requireAdmin(request);
    const id = workflowIdOf(request.params);
    const { name } = request.params as { name: string };
    const body = (request.body ?? {}) as Record<string, unknown>;
    // The path names it; a body without a name takes the path's.
    const doc = validatedBody(WorkflowDocument, { name, ...body });
    const problems: WorkflowProblem[] = [];
    if (doc.name !== name) problems.push({ loc: ["body", "name"], msg: `the path names the workflow "${name}"`, type: "value_error" });
    // Called as /workflows/{owner}/{name}, which a fal client also maps to the app {owner}/{name}.
    const served = appOf(id);
    if (served && served.workflow !== true) problems.push({ loc: ["path", "name"], msg: `an app is served as ${id}`, type: "value_error" });
    problems.push(...checkWorkflow(doc, appOf, id));
    if (problems.length > 0) throw new PlatformError("ERR_VALIDATION", { message: problems[0]?.msg ?? "Invalid workflow", fieldErrors: problems });
    const existed = (await ctx.store.getWorkflow(id)) !== null;
    const record = await ctx.store.putWorkflow(id, JSON.stringify(doc), Date.now());
    ctx.scheduler.registerWorkflow(id, doc);
    return reply.code(existed ? 200 : 201).send(view(record, true));
  });

  app.delete("/v1/workflows/:owner/:name", async (request, reply) => {
    requireAdmin(request);
    const id = workflowIdOf(request.params);
    if (!(await ctx.store.deleteWorkflow(id))) throw new PlatformError("ERR_WORKFLOW_NOT_FOUND", { message: `No workflow ${id}` });
    ctx.scheduler.unregisterWorkflow(id);
    return reply.code(204).send();
  });
}
