/**
 * The platform API under `/v1`: models (fal's platform-API shape), requests with their logs and
 * webhook delivery log, usage and the operations view. Keys and tenants have route files of their own.
 * @module
 */
import type { FastifyInstance } from "fastify";
import { PlatformError } from "../../core/errors.js";
import type { AppManifest, RequestRecord, RequestState } from "../../core/types.js";
import { nodeRequestId } from "../../scheduler/workflow-executor.js";
import { manifestOf } from "../../reuse/provenance.js";
import { shownInputOf } from "../../storage/spilled-inputs.js";
import type { RequestListFilter, UsageFilter } from "../../store/store.js";
import { appAllowed, canSeeRequest, requireAdmin, requirePrincipal, seesAllRequests, type GatewayContext } from "../context.js";
import { openApiDocument } from "../openapi.js";
import { baseUrlOf, errorTypeOf, requestUrls, statusBody, wireStatus } from "../wire.js";

function modelEntry(app: AppManifest, baseUrl: string, expandOpenApi: boolean): Record<string, unknown> {
  return {
    endpoint_id: app.id,
    metadata: {
      display_name: app.metadata.display_name,
      category: app.metadata.category,
      description: app.metadata.description,
      status: "active",
      tags: app.metadata.tags,
      updated_at: null,
      // Built-in thumbnails are served by this server: clients get them as absolute URLs, like fal's.
      thumbnail_url: app.metadata.thumbnail_url?.startsWith("/") ? `${baseUrl}${app.metadata.thumbnail_url}` : (app.metadata.thumbnail_url ?? null),
      model_url: `${baseUrl}/run/${app.id}`,
      license: app.metadata.license ?? null,
      weights_origin: app.metadata.weights_origin ?? null,
      ...(app.metadata.machine_type ? { machine_type: app.metadata.machine_type } : {}),
      ...(app.metadata.num_gpus !== undefined ? { num_gpus: app.metadata.num_gpus } : {}),
      ...(app.metadata.requirements ? { requirements: app.metadata.requirements } : {}),
      highlighted: false,
      pinned: false,
    },
    availability: app.unavailable ? { available: false, ...app.unavailable } : { available: true },
    knobs: app.knobs,
    ...(app.workflow ? { workflow: true } : {}),
    ...(app.cache ? { cache: app.cache } : {}),
    endpoints: app.endpoints.map((e) => ({ path: e.path, kind: e.kind, input_schema: e.input, output_schema: e.output })),
    ...(expandOpenApi ? { openapi: openApiDocument(app, baseUrl) } : {}),
  };
}

/**
 * A workflow request's run nodes and their requests (docs/workflows.md): each node's request id, and
 * its state once the executor has submitted it (null before), so that a client follows the nodes
 * without knowing how their ids are made.
 */
async function workflowNodesOf(ctx: GatewayContext, record: RequestRecord): Promise<{ workflow_nodes?: Record<string, unknown>[] }> {
  const doc = ctx.scheduler.workflowOf(record.appId);
  if (!doc) return {};
  const runNodes = Object.entries(doc.contents.nodes).filter(([, node]) => node.type === "run");
  const nodes = await Promise.all(
    runNodes.map(async ([nodeId, node]) => {
      const requestId = nodeRequestId(record.id, nodeId);
      const nodeRecord = await ctx.store.get(requestId);
      return { node_id: nodeId, app: node.app ?? null, request_id: requestId, state: nodeRecord?.state ?? null };
    }),
  );
  return { workflow_nodes: nodes };
}

const STATES: readonly RequestState[] = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];

export function registerPlatformRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.get("/v1/models", async (request) => {
    requirePrincipal(request);
    const q = request.query as Record<string, string | string[] | undefined>;
    const ids = ([] as string[]).concat(q["endpoint_id"] ?? []);
    const search = typeof q["q"] === "string" ? q["q"].toLowerCase() : null;
    const category = typeof q["category"] === "string" ? q["category"] : null;
    const limit = Math.min(Math.max(Number(q["limit"] ?? 100) || 100, 1), 500);
    const offset = Math.max(Number(q["cursor"] ?? 0) || 0, 0);
    const baseUrl = baseUrlOf(request, ctx.config.publicUrl);
    let apps = ctx.scheduler.apps;
    if (ids.length > 0) apps = apps.filter((a) => ids.includes(a.id));
    if (search) apps = apps.filter((a) => `${a.id} ${a.metadata.display_name} ${a.metadata.description} ${a.metadata.tags.join(" ")}`.toLowerCase().includes(search));
    if (category) apps = apps.filter((a) => a.metadata.category === category);
    const page = apps.slice(offset, offset + limit);
    const hasMore = offset + limit < apps.length;
    return {
      models: page.map((a) => modelEntry(a, baseUrl, q["expand"] === "openapi-3.0" || q["expand"] === "openapi-3.1")),
      next_cursor: hasMore ? String(offset + limit) : null,
      has_more: hasMore,
    };
  });

  app.get("/v1/requests", async (request) => {
    const principal = requirePrincipal(request);
    const q = request.query as Record<string, string | undefined>;
    const state = q["status"]?.toUpperCase() as RequestState | undefined;
    if (state && !STATES.includes(state)) throw new PlatformError("ERR_BAD_REQUEST", { message: `status must be one of ${STATES.join(", ")}` });
    const filter: RequestListFilter = {
      ...(q["app"] ? { appId: q["app"] } : {}),
      ...(state ? { state } : {}),
      ...(seesAllRequests(principal) ? {} : { keyId: principal.keyId }),
      limit: Math.min(Number(q["limit"] ?? 50) || 50, 500),
      ...(q["before"] ? { before: Number(q["before"]) } : {}),
    };
    const records = await ctx.store.list(filter);
    return {
      // A token lists only the requests of its apps; the cursor still follows the unfiltered page.
      requests: records.filter((r) => appAllowed(principal, r.appId)).map((r) => ({
        request_id: r.id,
        endpoint_id: r.endpoint ? `${r.appId}/${r.endpoint}` : r.appId,
        app_id: r.appId,
        state: r.state,
        status: wireStatus(r),
        mode: r.mode,
        tenant: r.tenant,
        created_at: new Date(r.createdAt).toISOString(),
        started_at: r.startedAt ? new Date(r.startedAt).toISOString() : null,
        finished_at: r.finishedAt ? new Date(r.finishedAt).toISOString() : null,
        attempt: r.attempt,
        error: r.error,
        error_type: r.state === "FAILED" || r.state === "CANCELLED" ? errorTypeOf(r) : null,
      })),
      next_before: records.length > 0 ? records[records.length - 1]?.createdAt : null,
    };
  });

  // What made a request's result (docs/result-reuse.md#reproducibility).
  app.get("/v1/requests/:id/manifest", async (request) => {
    const principal = requirePrincipal(request);
    const { id } = request.params as { id: string };
    const record = await ctx.store.get(id);
    if (!record || !canSeeRequest(principal, record)) throw new PlatformError("ERR_REQUEST_NOT_FOUND");
    return manifestOf(ctx.store, record);
  });

  app.get("/v1/requests/:id", async (request) => {
    const principal = requirePrincipal(request);
    const { id } = request.params as { id: string };
    const record = await ctx.store.get(id);
    if (!record || !canSeeRequest(principal, record)) throw new PlatformError("ERR_REQUEST_NOT_FOUND");
    const position = record.state === "QUEUED" ? await ctx.store.queuePosition(id) : null;
    return {
      ...statusBody(record, { logs: await ctx.store.getLogs(id), queuePosition: position, progress: ctx.scheduler.progressOf(id) }),
      ...requestUrls(record.baseUrl, record.appId, record.id),
      app_id: record.appId,
      endpoint: record.endpoint,
      state: record.state,
      // A large input is kept in storage, not in the row: read back (spilled-inputs.ts).
      input: await shownInputOf(ctx.storage, record),
      output: record.output,
      status_code: record.statusCode,
      attempt: record.attempt,
      priority: record.priority,
      tenant: record.tenant,
      created_at: new Date(record.createdAt).toISOString(),
      started_at: record.startedAt ? new Date(record.startedAt).toISOString() : null,
      finished_at: record.finishedAt ? new Date(record.finishedAt).toISOString() : null,
      billable_units: record.billableUnits,
      webhook_url: record.webhookUrl,
      cache: record.cache,
      reused_from: record.reusedFrom,
      ...(await workflowNodesOf(ctx, record)),
    };
  });

  app.get("/v1/requests/:id/webhooks", async (request) => {
    const principal = requirePrincipal(request);
    const { id } = request.params as { id: string };
    const record = await ctx.store.get(id);
    if (!record || !canSeeRequest(principal, record)) throw new PlatformError("ERR_REQUEST_NOT_FOUND");
    const deliveries = await ctx.store.listWebhooks(id);
    return {
      deliveries: deliveries.map(({ job, attempts }) => ({
        id: job.id,
        url: job.url,
        state: job.state,
        attempts: job.attempts,
        next_attempt_at: job.state === "pending" ? new Date(job.nextAttemptAt).toISOString() : null,
        log: attempts.map((a) => ({ attempt: a.attempt, at: new Date(a.at).toISOString(), status: a.status, ok: a.ok, error: a.error, duration_ms: a.durationMs })),
      })),
    };
  });

  app.get("/v1/usage", async (request) => {
    const principal = requirePrincipal(request);
    const q = request.query as Record<string, string | undefined>;
    const filter: UsageFilter = {
      ...(q["app"] ? { appId: q["app"] } : {}),
      ...(seesAllRequests(principal) ? (q["key"] ? { keyId: q["key"] } : {}) : { keyId: principal.keyId }),
      ...(q["since"] ? { since: Date.parse(q["since"]) } : {}),
      ...(q["until"] ? { until: Date.parse(q["until"]) } : {}),
      limit: Math.min(Number(q["limit"] ?? 100) || 100, 1000),
    };
    const usage = (await ctx.store.listUsage(filter)).filter((u) => appAllowed(principal, u.appId));
    const totals = new Map<string, { requests: number; run_seconds: number; billable_units: number }>();
    for (const u of usage) {
      const t = totals.get(u.appId) ?? { requests: 0, run_seconds: 0, billable_units: 0 };
      t.requests += 1;
      t.run_seconds += u.runMs / 1000;
      t.billable_units += u.billableUnits ?? 0;
      totals.set(u.appId, t);
    }
    return {
      usage: usage.map((u) => ({
        request_id: u.requestId,
        key_id: u.keyId,
        app_id: u.appId,
        endpoint: u.endpoint,
        state: u.state,
        queue_ms: u.queueMs,
        run_ms: u.runMs,
        billable_units: u.billableUnits,
        // HIT or JOINED: a reused result, which ran nothing (docs/result-reuse.md).
        cache: u.cache ?? null,
        finished_at: new Date(u.finishedAt).toISOString(),
      })),
      summary: Object.fromEntries(totals),
    };
  });

  app.get("/v1/ops", async (request) => {
    requireAdmin(request);
    const depths = await ctx.store.queueDepths();
    return {
      uptime_s: Math.round((Date.now() - ctx.startedAt) / 1000),
      spare_runners: ctx.scheduler.spareRunners(),
      apps: ctx.scheduler.snapshot().map((s) => ({ ...s, queue_depth: depths.get(s.app) ?? 0 })),
    };
  });
}
