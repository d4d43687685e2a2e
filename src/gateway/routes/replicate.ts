/**
 * Replicate's HTTP API at `/replicate/v1` (docs/api.md, "Replicate"), on the same apps, keys,
 * limits, usage and storage as fal's: code written for the `replicate` SDK runs here with only its
 * base URL changed. A prediction is a request of its app in the durable queue (app-call.ts): its id
 * is the request's id, and it shows in `/v1/requests` and usage like any other.
 *
 *   POST /predictions                        {version: "owner/name" | "owner/name:revision" | revision, input}
 *   POST /models/{owner}/{name}/predictions  {input}
 *   GET  /predictions, /predictions/{id}     POST /predictions/{id}/cancel
 *   GET  /models/{owner}/{name}              with latest_version.openapi_schema
 *
 * `Prefer: wait[=n]` waits up to n seconds (60 by default, at most 60) for the end before answering
 * with the prediction as it stands; `Cancel-After: 90s | 5m | 1h` cancels it if it has not ended by
 * then (kept by the gateway that took it).
 * @module
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { PlatformError } from "../../core/errors.js";
import { isTerminal, type AppManifest, type EndpointManifest, type RequestRecord } from "../../core/types.js";
import { registerApiScope } from "../api-scope.js";
import { submitAppCall } from "../app-call.js";
import { canSeeRequest, requirePrincipal, seesAllRequests, type GatewayContext } from "../context.js";
import { openApiDocument } from "../openapi.js";
import { predictionOf } from "../replicate/prediction.js";
import { followPredictionWebhooks } from "../replicate/prediction-webhooks.js";
import { openSse } from "../sse.js";
import { baseUrlOf } from "../wire.js";
import { validatedBody } from "../validated-body.js";

const MAX_WAIT_SECONDS = 60;
const STREAM_URL_SECONDS = 24 * 3600;
const ALL_EVENTS = ["start", "output", "logs", "completed"] as const;
const PAGE_SIZE = 100;

const PredictionBody = z
  .object({
    version: z.string().min(1).max(300).optional(),
    input: z.record(z.string(), z.unknown()).default({}),
    webhook: z.string().max(2048).optional(),
    webhook_events_filter: z.array(z.enum(["start", "output", "logs", "completed"])).optional(),
    stream: z.boolean().optional(),
  })
  .strict();

/** Replicate's errors: a problem document (`{title, detail, status}`), which its SDK reports as ApiError. */
function sendProblem(reply: FastifyReply, error: PlatformError): FastifyReply {
  for (const [name, value] of Object.entries(error.headers ?? {})) reply.header(name, value);
  const detail = error.fieldErrors ? error.fieldErrors.map((f) => `${f.loc.filter((p) => p !== "body").join(".")}: ${f.msg}`).join("; ") : error.message;
  return reply
    .code(error.status)
    .type("application/problem+json")
    .send(JSON.stringify({ title: error.errorType ?? "error", detail, status: error.status }));
}

/** A webhook must be an absolute http(s) URL (where it may go is the outbox's SSRF policy's call). */
function webhookUrlOf(value: string): string {
  const parsed = URL.canParse(value) ? new URL(value) : null;
  if (parsed?.protocol !== "http:" && parsed?.protocol !== "https:") {
    throw new PlatformError("ERR_VALIDATION", { fieldErrors: [{ loc: ["body", "webhook"], msg: "an absolute http(s) URL", type: "url" }] });
  }
  return parsed.href;
}

/** `90s`, `5m`, `1h` (or a bare number of seconds) → ms. */
export function parseCancelAfter(value: string | string[] | undefined): number | null {
  if (value === undefined) return null;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(Array.isArray(value) ? (value[0] ?? "") : value);
  if (!match) throw new PlatformError("ERR_BAD_REQUEST", { message: "Cancel-After must be a duration such as 90s, 5m or 1h" });
  const n = Number(match[1]);
  const unit = (match[2] ?? "s").toLowerCase();
  const ms = n * (unit === "ms" ? 1 : unit === "s" ? 1000 : unit === "m" ? 60_000 : 3_600_000);
  if (ms < 1000 || ms > 7 * 24 * 3_600_000) throw new PlatformError("ERR_BAD_REQUEST", { message: "Cancel-After must be between 1 s and 7 days" });
  return ms;
}

/** `Prefer: wait` (60 s) or `wait=n`: seconds to wait, or null. */
export function parsePreferWait(value: string | string[] | undefined): number | null {
  if (value === undefined) return null;
  const match = /(?:^|[,;\s])wait(?:\s*=\s*(\d+))?(?:$|[,;\s])/i.exec(Array.isArray(value) ? value.join(",") : value);
  if (!match) return null;
  return Math.min(MAX_WAIT_SECONDS, Math.max(1, Number(match[1] ?? MAX_WAIT_SECONDS)));
}

export function registerReplicateRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const apiBase = (request: FastifyRequest): string => `${baseUrlOf(request, ctx.config.publicUrl)}/replicate/v1`;

  const sources = { store: ctx.store, appOf: (id: string) => ctx.scheduler.app(id), revisionOf: (a: AppManifest) => ctx.scheduler.revisionOf(a) };
  // The stream URL is a capability, as Replicate's are (its SDK fetches it without the key): signed, for a day.
  const streamKey = (id: string): string => `replicate-stream:${id}`;
  const streamUrl = (base: string, id: string): string => `${base}/predictions/${id}/stream?${ctx.urlSigner.sign("GET", streamKey(id), Math.floor(Date.now() / 1000) + STREAM_URL_SECONDS)}`;
  const prediction = (record: RequestRecord, base: string, withLogs = true): Promise<Record<string, unknown>> =>
    predictionOf(sources, record, base, { logs: withLogs, streamUrl: streamUrl(base, record.id) });

  /** The app and endpoint a `version` or model names: `owner/name`, `owner/name:revision`, or a revision alone. */
  const targetOf = (ref: string): { app: AppManifest; endpoint: EndpointManifest } => {
    const [model = "", revision] = ref.includes("/") ? ref.split(":") : ["", ref];
    const app = model ? ctx.scheduler.app(model) : ctx.scheduler.apps.find((a) => ctx.scheduler.revisionOf(a) === revision);
    if (!app || app.workflow) throw new PlatformError("ERR_MODEL_NOT_FOUND", { message: `No model or version ${ref} here` });
    if (model && revision !== undefined && revision !== ctx.scheduler.revisionOf(app)) {
      throw new PlatformError("ERR_MODEL_NOT_FOUND", { message: `${model} has no version ${revision} here; its version is ${ctx.scheduler.revisionOf(app)}` });
    }
    const endpoint = app.endpoints.find((e) => e.path === "" && e.kind !== "realtime");
    if (!endpoint) throw new PlatformError("ERR_MODEL_NOT_FOUND", { message: `${app.id} has no root endpoint to predict with` });
    return { app, endpoint };
  };

  const loadVisible = async (request: FastifyRequest, id: string): Promise<RequestRecord> => {
    const principal = requirePrincipal(request);
    const record = await ctx.store.get(id);
    if (!record || !canSeeRequest(principal, record)) throw new PlatformError("ERR_REQUEST_NOT_FOUND", { message: `Prediction ${id} not found` });
    return record;
  };

  const create = async (request: FastifyRequest, reply: FastifyReply, ref: string): Promise<unknown> => {
    const principal = requirePrincipal(request);
    const body = validatedBody(PredictionBody, request.body);
    const { app, endpoint } = targetOf(ref);
    const waitSeconds = parsePreferWait(request.headers["prefer"]);
    const cancelAfter = parseCancelAfter(request.headers["cancel-after"]);
    const id = crypto.randomUUID();
    const baseUrl = baseUrlOf(request, ctx.config.publicUrl);
    // What its webhooks should say, kept before the request exists: the outbox reads it when the request ends.
    const hook = body.webhook ? { requestId: id, url: webhookUrlOf(body.webhook), events: body.webhook_events_filter ?? [...ALL_EVENTS], tenant: principal.tenant, createdAt: Date.now() } : null;
    if (hook) await ctx.store.savePredictionWebhook(hook);
    const { record } = await submitAppCall(ctx, { app, endpoint, input: body.input, principal, baseUrl, mode: "queue", maxAttempts: 3, id, webhookUrl: hook?.url ?? null });
    if (hook) followPredictionWebhooks({ store: ctx.store, sources, subscribe: (requestId, listener) => ctx.scheduler.events.subscribe(requestId, listener) }, record, hook, `${baseUrl}/replicate/v1`);
    if (cancelAfter !== null) setTimeout(() => void ctx.scheduler.cancel(record.id).catch(() => undefined), cancelAfter).unref();
    let current = record;
    if (waitSeconds !== null && !isTerminal(current.state)) {
      try {
        current = await ctx.scheduler.waitForTerminal(record.id, AbortSignal.timeout(waitSeconds * 1000));
      } catch {
        current = (await ctx.store.get(record.id)) ?? record; // not done in time: as it stands
      }
    }
    return reply.code(201).send(await prediction(current, apiBase(request)));
  };

  registerApiScope(app, { prefix: "/replicate/v1", name: "Replicate", sendError: sendProblem }, (scope) => {
    scope.post("/predictions", async (request, reply) => {
      const version = (request.body as { version?: unknown } | undefined)?.version;
      if (typeof version !== "string") throw new PlatformError("ERR_VALIDATION", { fieldErrors: [{ loc: ["body", "version"], msg: "version is required", type: "missing" }] });
      return create(request, reply, version);
    });

    scope.post("/models/:owner/:name/predictions", async (request, reply) => {
      const { owner, name } = request.params as { owner: string; name: string };
      return create(request, reply, `${owner}/${name}`);
    });

    scope.get("/predictions/:id", async (request) => prediction(await loadVisible(request, (request.params as { id: string }).id), apiBase(request)));

    // Replicate's server-sent events: `output` (each partial result, then the output), `logs`, then
    // `done` ({} or {"reason": "canceled"}) or `error`.
    scope.get("/predictions/:id/stream", async (request, reply) => {
      const { id } = request.params as { id: string };
      let record: RequestRecord | null;
      if (request.principal) record = await loadVisible(request, id);
      else {
        ctx.urlSigner.verify("GET", streamKey(id), request.query as Record<string, string>);
        record = await ctx.store.get(id);
        if (!record) throw new PlatformError("ERR_REQUEST_NOT_FOUND", { message: `Prediction ${id} not found` });
      }
      streamPrediction(ctx, reply, record);
    });

    scope.post("/predictions/:id/cancel", async (request) => {
      const record = await loadVisible(request, (request.params as { id: string }).id);
      if (!isTerminal(record.state)) await ctx.scheduler.cancel(record.id);
      // A queued one ends at once; a running one once its runner stops: answer with where it is now.
      const now = (await ctx.store.get(record.id)) ?? record;
      return prediction(now, apiBase(request));
    });

    scope.get("/predictions", async (request) => {
      const principal = requirePrincipal(request);
      const cursor = Number((request.query as { cursor?: string }).cursor ?? NaN);
      const records = await ctx.store.list({ ...(seesAllRequests(principal) ? {} : { keyId: principal.keyId }), limit: PAGE_SIZE, ...(Number.isFinite(cursor) ? { before: cursor } : {}) });
      const base = apiBase(request);
      const last = records.at(-1);
      return {
        results: await Promise.all(records.filter((r) => canSeeRequest(principal, r)).map((r) => prediction(r, base, false))),
        next: records.length === PAGE_SIZE && last ? `${base}/predictions?cursor=${last.createdAt}` : null,
        previous: null,
      };
    });

    // The secret a tenant's webhooks are signed with (Standard Webhooks; one per tenant).
    scope.get("/webhooks/default/secret", async (request) => ({ key: ctx.webhookSecretOf(requirePrincipal(request).tenant) }));

    scope.get("/models/:owner/:name", async (request) => {
      requirePrincipal(request);
      const { owner, name } = request.params as { owner: string; name: string };
      const { app } = targetOf(`${owner}/${name}`);
      const base = baseUrlOf(request, ctx.config.publicUrl);
      return {
        url: `${base}/models/${app.id}`,
        owner,
        name,
        description: app.metadata.description,
        visibility: "public",
        github_url: null,
        paper_url: null,
        license_url: null,
        run_count: 0,
        cover_image_url: app.metadata.thumbnail_url ?? null,
        default_example: null,
        latest_version: { id: ctx.scheduler.revisionOf(app), created_at: null, cog_version: null, openapi_schema: openApiDocument(app, base) },
      };
    });
  });
}

/** Writes a prediction's events as Replicate's server-sent events until it ends or the client leaves. */
function streamPrediction(ctx: GatewayContext, reply: FastifyReply, record: RequestRecord): void {
  const sse = openSse(reply);
  // An output (JSON already), a log line and an error go as the text they are; `done` as JSON.
  let lastOutput: string | null = null;
  const end = (done: RequestRecord): void => {
    if (sse.closed) return;
    if (done.state === "SUCCEEDED") {
      const output = JSON.stringify(done.output ?? null);
      if (output !== lastOutput) sse.sendText(output, "output");
      sse.send({}, "done");
    } else if (done.state === "CANCELLED") sse.send({ reason: "canceled" }, "done");
    else sse.sendText(done.error ?? "Prediction failed", "error");
    sse.close();
  };
  const unsubscribe = ctx.scheduler.events.subscribe(record.id, (event) => {
    if (event.type === "partial") {
      lastOutput = JSON.stringify(event.data ?? null);
      sse.sendText(lastOutput, "output");
    } else if (event.type === "log") sse.sendText(event.log.message, "logs");
    else if (event.type === "state" && isTerminal(event.record.state)) end(event.record);
  });
  const left = new AbortController();
  sse.onClose(() => {
    unsubscribe();
    left.abort();
  });
  // Subscribed first, then read: an end between the two is not missed.
  void ctx.scheduler.waitForTerminal(record.id, left.signal).then(end, () => undefined);
}
