/**
 * fal's queue API (`queue.fal.run`): submit, status, status stream, result, cancel.
 * @module
 */
import type { FastifyRequest } from "fastify";
import { PlatformError } from "../../core/errors.js";
import { isTerminal, type AppManifest, type EndpointManifest, type RequestLog, type RequestRecord } from "../../core/types.js";
import { canSeeRequest, requirePrincipal, type GatewayContext, type Principal } from "../context.js";
import { admitCall, assertAppAllowed, assertAppWithinLimits, assertAvailable, findApp, findEndpoint, validateAppInput, type FalCall } from "../fal-call.js";
import { FalHost, appIdOf, appRoutes, restOf } from "../fal-host.js";
import { outputTtlOf, parsePriority, parseStartDeadline } from "../fal-headers.js";
import { fingerprintOf, idempotencyKeyOf, takeIdempotencyKey, type IdempotentSubmit } from "../idempotency.js";
import { openSse } from "../sse.js";
import { cacheModeOf, type CacheMode } from "../../reuse/cache-mode.js";
import { cacheHeadersOf } from "../cache-headers.js";
import { baseUrlOf, requestUrls, sendOutcome, statusBody } from "../wire.js";

const DEFAULT_MAX_ATTEMPTS = 3;

function parseWebhook(query: URLSearchParams): string | null {
  const url = query.get("fal_webhook");
  if (!url) return null;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PlatformError("ERR_BAD_REQUEST", { message: "fal_webhook must be an absolute http(s) URL" });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new PlatformError("ERR_BAD_REQUEST", { message: "fal_webhook must be an absolute http(s) URL" });
  }
  return parsed.href;
}

function bodyOf(request: FastifyRequest): unknown {
  return request.body === undefined ? {} : request.body;
}

async function submit(ctx: GatewayContext, call: FalCall, app: AppManifest, endpointPath: string): Promise<void> {
  const { request } = call;
  const principal = requirePrincipal(request);
  assertAppAllowed(call, app);
  assertAppWithinLimits(call, app);
  assertAvailable(app);
  const endpoint = findEndpoint(app, endpointPath, ["http", "stream"]);
  if (!endpoint) throw new PlatformError("ERR_PATH_NOT_FOUND", { message: `Path /${endpointPath} not found` });
  const input = bodyOf(request);
  const webhookUrl = parseWebhook(call.query);
  const cacheMode = cacheModeOf(request.headers["x-darkroom-cache"]);
  const requestId = crypto.randomUUID();
  const idempotencyKey = idempotencyKeyOf(request);
  let idempotent: IdempotentSubmit | null = null;
  if (idempotencyKey !== null) {
    const fingerprint = fingerprintOf({ appId: app.id, endpoint: endpoint.path, input, webhookUrl });
    idempotent = await takeIdempotencyKey(ctx.store, { keyId: principal.keyId, key: idempotencyKey, fingerprint, requestId });
    if (idempotent.kind === "replay") return replayed(ctx, call, idempotent.record);
  }
  try {
    await enqueue(ctx, call, principal, { app, endpoint, input, webhookUrl, requestId, cacheMode });
  } catch (err) {
    // Refused or failed: a retry with the same key is a new submit.
    if (idempotent?.kind === "new") await idempotent.release().catch(() => undefined);
    throw err;
  }
}

/** A retried submit: the first one's request as it stands now, marked as a replay. */
async function replayed(ctx: GatewayContext, call: FalCall, record: RequestRecord): Promise<void> {
  const position = record.state === "QUEUED" ? await ctx.store.queuePosition(record.id) : null;
  call.reply.header("x-fal-request-id", record.id).header("idempotent-replayed", "true");
  const body = statusBody(record, { logs: null, queuePosition: position });
  await call.reply.code(200).send({ ...body, gateway_request_id: record.id });
}

async function enqueue(
  ctx: GatewayContext,
  call: FalCall,
  principal: Principal,
  submit: { app: AppManifest; endpoint: EndpointManifest; input: unknown; webhookUrl: string | null; requestId: string; cacheMode: CacheMode | null },
): Promise<void> {
  const { request, reply } = call;
  const { app, endpoint, input, webhookUrl } = submit;
  await validateAppInput(ctx, endpoint, input);
  const now = Date.now();
  const priority = parsePriority(request);
  const startDeadline = parseStartDeadline(request, now);
  const maxQueue = call.query.get("fal_max_queue_length");
  if (maxQueue !== null) {
    const limit = Number(maxQueue);
    const depth = (await ctx.store.queueDepths()).get(app.id) ?? 0;
    if (Number.isFinite(limit) && depth >= limit) {
      throw new PlatformError("ERR_QUEUE_FULL", { message: `Queue of ${app.id} holds ${depth} requests (fal_max_queue_length=${limit})` });
    }
  }
  const baseUrl = baseUrlOf(request, ctx.config.publicUrl);
  // Last of the checks: only a call that is otherwise accepted counts against the rate.
  const admitting = admitCall(ctx, principal);
  if (admitting) await admitting;
  const submitted = await ctx.scheduler.submitReusing({
    id: submit.requestId,
    appId: app.id,
    endpoint: endpoint.path,
    input,
    priority,
    mode: "queue",
    startDeadline,
    maxAttempts: DEFAULT_MAX_ATTEMPTS,
    webhookUrl,
    keyId: principal.keyId,
    tenant: principal.tenant,
    weight: principal.weight,
    baseUrl,
    outputTtlSeconds: outputTtlOf(request),
  }, submit.cacheMode);
  const { record, queuePosition } = submitted;
  reply.headers(cacheHeadersOf(submitted));
  // A reused result is finished (HIT) or waiting on another request (JOINED): its status as it stands.
  if (submitted.cacheStatus === "HIT" || submitted.cacheStatus === "JOINED") {
    reply.header("x-fal-request-id", record.id);
    await reply.code(200).send({ ...statusBody(record, { logs: null, queuePosition: null }), gateway_request_id: record.id });
    return;
  }
  // The record is durable at this point: only now does the client get its 200.
  reply.header("x-fal-request-id", record.id);
  await reply.code(200).send({
    status: "IN_QUEUE",
    request_id: record.id,
    gateway_request_id: record.id,
    ...requestUrls(baseUrl, app.id, record.id),
    queue_position: queuePosition ?? 0,
  });
}

async function loadRequest(ctx: GatewayContext, call: FalCall, appId: string, requestId: string): Promise<RequestRecord> {
  const record = await ctx.store.get(requestId);
  const principal = requirePrincipal(call.request);
  if (!record || record.appId !== appId || !canSeeRequest(principal, record)) {
    throw new PlatformError("ERR_REQUEST_NOT_FOUND", { message: `Request ${requestId} not found` });
  }
  return record;
}

function wantsLogs(query: URLSearchParams): boolean {
  const v = (query.get("logs") ?? "0").toLowerCase();
  return v === "1" || v === "true";
}

async function status(ctx: GatewayContext, call: FalCall, record: RequestRecord): Promise<void> {
  const withLogs = wantsLogs(call.query);
  const logs = withLogs && record.state !== "QUEUED" ? await ctx.store.getLogs(record.id) : null;
  const position = record.state === "QUEUED" ? await ctx.store.queuePosition(record.id) : null;
  call.reply.header("x-fal-request-id", record.id);
  await call.reply
    .code(isTerminal(record.state) ? 200 : 202)
    .send(statusBody(record, { logs: withLogs ? (logs ?? []) : null, queuePosition: position, progress: ctx.scheduler.progressOf(record.id) }));
}

async function statusStream(ctx: GatewayContext, call: FalCall, initial: RequestRecord): Promise<void> {
  const withLogs = wantsLogs(call.query);
  const sse = openSse(call.reply, { "x-fal-request-id": initial.id });
  let current = initial;
  let seenLogs = 0;
  let lastPosition: number | null = null;
  let finished = false;
  // Events that arrive while the first snapshot is read are replayed after it, in order.
  let buffered: (() => Promise<void>)[] | null = [];
  let chain = Promise.resolve();
  const enqueue = (fn: () => Promise<void>): void => {
    if (buffered) buffered.push(fn);
    else chain = chain.then(fn).catch(() => undefined);
  };

  const sendStatus = async (record: RequestRecord, logs: RequestLog[] | null, partial?: { data: unknown }): Promise<void> => {
    if (finished || sse.closed) return;
    const position = record.state === "QUEUED" ? await ctx.store.queuePosition(record.id) : null;
    if (record.state === "QUEUED") lastPosition = position;
    const body = statusBody(record, { logs: withLogs ? (logs ?? []) : null, queuePosition: position, progress: ctx.scheduler.progressOf(record.id) });
    // A Darkroom addition, like `progress`: what the handler emitted while running (fal's clients ignore it).
    if (partial && record.state === "RUNNING") body["partial"] = partial.data;
    sse.send(body);
    if (isTerminal(record.state)) {
      finished = true;
      sse.close();
    }
  };
  const newLogs = async (): Promise<RequestLog[] | null> => {
    if (!withLogs) return null;
    const logs = await ctx.store.getLogs(current.id, seenLogs);
    seenLogs += logs.length;
    return logs;
  };

  const unsubscribe = ctx.scheduler.events.subscribe(initial.id, (event) => {
    enqueue(async () => {
      if (event.type === "state") {
        current = event.record;
        await sendStatus(current, await newLogs());
      } else if (event.type === "log") {
        if (!withLogs || current.state !== "RUNNING") return;
        await sendStatus(current, await newLogs());
      } else if (event.type === "progress" && current.state === "RUNNING") {
        await sendStatus(current, withLogs ? [] : null);
      } else if (event.type === "partial" && current.state === "RUNNING") {
        await sendStatus(current, withLogs ? [] : null, { data: event.data });
      }
    });
  });
  // While queued, positions change without events of this request: poll them. On a shared store
  // (several gateways) state changes arrive as bus notifications, which can be lost while a listener
  // reconnects: every few ticks re-read the record too.
  let ticks = 0;
  const positionTimer = setInterval(() => {
    enqueue(async () => {
      ticks += 1;
      if (ctx.store.bus.distributed && ticks % 4 === 0 && !isTerminal(current.state)) {
        const latest = await ctx.store.get(current.id);
        if (latest && latest.state !== current.state) {
          current = latest;
          await sendStatus(current, await newLogs());
          return;
        }
      }
      if (current.state !== "QUEUED") return;
      const position = await ctx.store.queuePosition(current.id);
      if (position !== lastPosition) await sendStatus(current, null);
    });
  }, 500);
  sse.onClose(() => {
    unsubscribe();
    clearInterval(positionTimer);
  });

  current = (await ctx.store.get(initial.id)) ?? initial;
  // A stream opened while the request runs starts with its latest partial result, if any: previews
  // sent before the client connected are otherwise gone for it.
  const latestPartial = current.state === "RUNNING" ? ctx.scheduler.events.latestPartialOf(current.id) : undefined;
  await sendStatus(current, await newLogs(), latestPartial);
  const pending = buffered;
  buffered = null;
  for (const fn of pending) chain = chain.then(fn).catch(() => undefined);
}

async function result(call: FalCall, record: RequestRecord): Promise<void> {
  if (!isTerminal(record.state)) {
    call.reply.header("x-fal-request-id", record.id);
    throw new PlatformError("ERR_STILL_IN_PROGRESS");
  }
  await sendOutcome(call.reply, record);
}

async function cancel(ctx: GatewayContext, call: FalCall, appId: string, requestId: string): Promise<void> {
  const record = await ctx.store.get(requestId);
  const principal = requirePrincipal(call.request);
  if (!record || record.appId !== appId || !canSeeRequest(principal, record)) {
    await call.reply.code(404).header("x-fal-error-type", "not_found").send({ status: "NOT_FOUND", detail: `Request ${requestId} not found`, error_type: "not_found" });
    return;
  }
  // Only a stored id goes into the header: the raw path segment may hold characters a header cannot.
  call.reply.header("x-fal-request-id", record.id);
  const outcome = await ctx.scheduler.cancel(requestId);
  if (outcome === "removed" || outcome === "signalled") {
    await call.reply.code(202).send({ status: "CANCELLATION_REQUESTED" });
    return;
  }
  if (outcome === "already_completed") {
    await call.reply
      .code(400)
      .header("x-fal-error-type", "bad_request")
      .send({ status: "ALREADY_COMPLETED", detail: "Request already completed", error_type: "bad_request" });
    return;
  }
  await call.reply.code(404).header("x-fal-error-type", "not_found").send({ status: "NOT_FOUND", detail: `Request ${requestId} not found`, error_type: "not_found" });
}

/** fal's queue host: submit to an app (and one of its endpoints), then read or cancel the request. */
export const queueHost = new FalHost({
  hostnames: ["queue.fal.run", "queue.falrun.com"],
  prefix: "queue",
  shape: "/{owner}/{alias}[/path] or /{owner}/{alias}/requests/{id}[/status[/stream]|/cancel]",
  routes: [
    // A POST names an endpoint, whatever its path: `requests/...` included, as on fal.
    ...appRoutes("POST", "", (ctx, call, params) => submit(ctx, call, findApp(ctx, appIdOf(params)), "")),
    ...appRoutes("POST", "/*", (ctx, call, params) => submit(ctx, call, findApp(ctx, appIdOf(params)), restOf(params))),
    ...appRoutes(["GET", "HEAD"], "/requests/:id", async (ctx, call, params) => result(call, await loadRequest(ctx, call, appIdOf(params), params["id"] ?? ""))),
    ...appRoutes(["GET", "HEAD"], "/requests/:id/status", async (ctx, call, params) => status(ctx, call, await loadRequest(ctx, call, appIdOf(params), params["id"] ?? ""))),
    ...appRoutes(["GET", "HEAD"], "/requests/:id/status/stream", async (ctx, call, params) =>
      statusStream(ctx, call, await loadRequest(ctx, call, appIdOf(params), params["id"] ?? "")),
    ),
    ...appRoutes("PUT", "/requests/:id/cancel", (ctx, call, params) => cancel(ctx, call, appIdOf(params), params["id"] ?? "")),
  ],
});
