/**
 * fal's sync host (`fal.run`): `POST /{id}[/path]` waits for the output; `/stream` sends server-sent
 * events. Both go through the durable queue (so the scheduler and its limits stay in charge) but are
 * not retried, as fal does not retry sync calls.
 * @module
 */
import { PlatformError } from "../../core/errors.js";
import { isTerminal, type AppManifest, type EndpointManifest, type RequestRecord } from "../../core/types.js";
import { requirePrincipal, type GatewayContext } from "../context.js";
import { hangUpSignal } from "../app-call.js";
import { admitCall, assertAppAllowed, assertAppWithinLimits, assertAvailable, findApp, findEndpoint, validateAppInput, type FalCall } from "../fal-call.js";
import { outputTtlOf, parseStartDeadline } from "../fal-headers.js";
import { FalHost, appIdOf, appRoutes, restOf } from "../fal-host.js";
import { openApiDocument } from "../openapi.js";
import { openSse, type SseStream } from "../sse.js";
import { baseUrlOf, sendOutcome } from "../wire.js";
import { cacheModeOf } from "../../reuse/cache-mode.js";
import { cacheHeadersOf } from "../cache-headers.js";

interface Target {
  app: AppManifest;
  endpoint: EndpointManifest;
  /** Respond with server-sent events. */
  stream: boolean;
}

function resolveTarget(ctx: GatewayContext, appId: string, path: string): Target {
  const app = findApp(ctx, appId);
  const exact = findEndpoint(app, path, ["http", "stream"]);
  if (exact) return { app, endpoint: exact, stream: exact.kind === "stream" };
  // `/stream` on an ordinary endpoint streams its progress, partial results and output.
  if (path === "stream" || path.endsWith("/stream")) {
    const base = findEndpoint(app, path.slice(0, -"stream".length).replace(/\/$/, ""), ["http"]);
    if (base) return { app, endpoint: base, stream: true };
  }
  throw new PlatformError("ERR_PATH_NOT_FOUND", { message: `Path /${path} not found` });
}

/** fal's JS client can send a run as GET with the input in the query string. */
function inputOf(call: FalCall): unknown {
  if (call.method.toUpperCase() === "GET") {
    const input: Record<string, string> = {};
    for (const [k, v] of call.query) if (!k.startsWith("fal_")) input[k] = v;
    return input;
  }
  return call.request.body === undefined ? {} : call.request.body;
}

async function run(ctx: GatewayContext, call: FalCall, appId: string, path: string): Promise<void> {
  const { request, reply } = call;
  const principal = requirePrincipal(request);
  const target = resolveTarget(ctx, appId, path);
  assertAppAllowed(call, target.app);
  assertAppWithinLimits(call, target.app);
  assertAvailable(target.app);
  const input = inputOf(call);
  const cacheMode = cacheModeOf(request.headers["x-darkroom-cache"]);
  await validateAppInput(ctx, target.endpoint, input);
  // Last of the checks: only a call that is otherwise accepted counts against the rate.
  const admitting = admitCall(ctx, principal);
  if (admitting) await admitting;
  const submitted = await ctx.scheduler.submitReusing({
    id: crypto.randomUUID(),
    appId: target.app.id,
    endpoint: target.endpoint.path,
    input,
    priority: "normal",
    mode: target.stream ? "stream" : "sync",
    startDeadline: parseStartDeadline(request, Date.now()),
    maxAttempts: 1,
    webhookUrl: null,
    keyId: principal.keyId,
    tenant: principal.tenant,
    weight: principal.weight,
    baseUrl: baseUrlOf(request, ctx.config.publicUrl),
    outputTtlSeconds: outputTtlOf(request),
  }, cacheMode);
  const { record } = submitted;
  const cacheHeaders = cacheHeadersOf(submitted);
  reply.headers(cacheHeaders);
  // A sync caller that hangs up no longer wants the work: cancel it so the runner is freed.
  const disconnected = hangUpSignal(reply);
  disconnected.addEventListener("abort", () => void ctx.scheduler.cancel(record.id).catch(() => undefined), { once: true });
  if (target.stream) return streamRun(ctx, call, record, target, disconnected, cacheHeaders);
  let done: RequestRecord;
  try {
    done = await ctx.scheduler.waitForTerminal(record.id, disconnected);
  } catch {
    return; // the client is gone
  }
  await sendOutcome(reply, done);
}

/**
 * Sends partial results as events. The SSE response starts with the first event, so a request that
 * fails before producing anything still gets a plain error response that fal's client maps to ApiError.
 */
async function streamRun(ctx: GatewayContext, call: FalCall, record: RequestRecord, target: Target, signal: AbortSignal, headers: Record<string, string>): Promise<void> {
  let sse: SseStream | null = null;
  const open = (): SseStream => (sse ??= openSse(call.reply, { "x-fal-request-id": record.id, ...headers }));
  let lastPartial: unknown;
  let sentPartial = false;
  const unsubscribe = ctx.scheduler.events.subscribe(record.id, (event) => {
    if (event.type === "partial") {
      lastPartial = event.data;
      sentPartial = true;
      open().send(event.data);
    } else if (event.type === "progress" && target.endpoint.kind === "http") {
      open().send({ status: "IN_PROGRESS", progress: event.progress });
    }
  });
  let done: RequestRecord;
  try {
    done = await ctx.scheduler.waitForTerminal(record.id, signal);
  } catch {
    unsubscribe();
    return;
  } finally {
    unsubscribe();
  }
  if (!isTerminal(done.state)) return;
  // A reused result has no events of its own: the stream still carries its output.
  if (done.state === "SUCCEEDED" && done.cache !== null) open();
  const stream = sse as SseStream | null;
  if (!stream) {
    await sendOutcome(call.reply, done);
    return;
  }
  if (done.state === "SUCCEEDED") {
    // fal's `done()` resolves with the last event: make sure it is the full output.
    if (!(sentPartial && JSON.stringify(lastPartial) === JSON.stringify(done.output))) stream.send(done.output);
  } else {
    stream.send({ ...(typeof done.output === "object" && done.output !== null ? done.output : {}), error: done.error, error_type: done.errorType, status_code: done.statusCode }, "error");
  }
  stream.close();
}

/** fal's sync host: run an app's endpoint and wait; read the app's OpenAPI document. */
export const runHost = new FalHost({
  hostnames: ["fal.run", "gateway.alpha.fal.ai"],
  prefix: "run",
  shape: "/{owner}/{alias}[/path]",
  routes: [
    ...appRoutes(["GET", "HEAD"], "/openapi.json", async (ctx, call, params) => openApiDocument(findApp(ctx, appIdOf(params)), baseUrlOf(call.request, ctx.config.publicUrl))),
    ...appRoutes(["GET", "POST"], "", (ctx, call, params) => run(ctx, call, appIdOf(params), "")),
    ...appRoutes(["GET", "POST"], "/*", (ctx, call, params) => run(ctx, call, appIdOf(params), restOf(params))),
  ],
});
