/**
 * The runner protocol over HTTP (`/runner/v1/`), for runners on other machines (`darkroom runner`,
 * the Python SDK). See docs/runner-protocol.md.
 *
 * Every call is stateless on the gateway: leases, attempts and cancellation live in the store under
 * the runner's id, so a runner may talk to any gateway, and switch when one goes away. A report on a
 * request is accepted only from the runner that holds its lease at that attempt (ERR_LEASE_LOST
 * otherwise), which is what keeps an outcome from being written twice.
 * @module
 */
import { randomUUID } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { ERRORS, PlatformError, type ErrorCode } from "../../core/errors.js";
import { DEFAULT_KNOBS, type RequestRecord } from "../../core/types.js";
import { RUNNER_PROTOCOL_VERSION } from "../../runtime/protocol.js";
import { manifestOfRunnerApp, RunnerApp } from "../../runtime/runner-app.js";
import { remoteRunnerRecord } from "../../reuse/provenance.js";
import { OUTPUT_KEY_SHAPE, requestOfOutputKey, storedContentType, storedFileName } from "../../storage/output-keys.js";
import { inputOfRetrying } from "../../storage/spilled-inputs.js";
import type { ModelManager } from "../../models/manager.js";
import type { EphemeralCall } from "../../scheduler/pool.js";
import type { GatewayContext, Principal } from "../context.js";
import { sendNotFound } from "../error-reply.js";
import { parseRange } from "../http-range.js";
import { takeRawBodies } from "../raw-bodies.js";
import { serveFile } from "../serve-file.js";
import { closingOnQuota, storageQuotaOf } from "../upload-quota.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** The route is the runner API's: the only routes that take runner tokens (server.ts refuses them elsewhere). */
    runnerApi?: boolean;
  }
}

/** Longest a lease call waits for work before answering with no runs. */
const MAX_POLL_WAIT_MS = 30_000;
/** How often a waiting lease call looks at the queue even without a wake-up (one may be missed). */
const POLL_RECHECK_MS = 1_000;
const MAX_SLOTS = 64;
const MAX_EVENTS_PER_CALL = 500;

const RUNNER_ID = /^rr-[A-Za-z0-9_-]{8,64}$/;
const RunnerId = z.string().regex(RUNNER_ID, "runner_id must look like rr-<8 to 64 letters, digits, _ or ->");

const StartMs = z.number().min(0).max(24 * 3600 * 1000);

const RegisterBody = z.object({
  protocol: z.number().int(),
  runner_id: RunnerId.optional(),
  app: RunnerApp,
  runner: z.object({ hostname: z.string().max(255).optional(), pid: z.number().int().optional(), slots: z.number().int().min(1).max(MAX_SLOTS).default(1) }).default({ slots: 1 }),
  // The runner's own start, phase by phase in milliseconds of its clock, on its first registration
  // only: the gateway reports it as a cold start of the app (`/v1/ops`, `/metrics`).
  start: z
    .object({ runtime_ms: StartMs, import_ms: StartMs, setup_ms: StartMs, ready_ms: StartMs })
    .optional(),
});

const LeaseBody = z.object({
  runner_id: RunnerId,
  app_id: z.string().min(1).max(200),
  slots: z.number().int().min(1).max(MAX_SLOTS),
  wait_ms: z.number().int().min(0).max(MAX_POLL_WAIT_MS).default(MAX_POLL_WAIT_MS),
});

const HeartbeatBody = z.object({
  runner_id: RunnerId,
  requests: z.array(z.object({ request_id: z.string().min(1).max(200), attempt: z.number().int().min(1) })).max(MAX_SLOTS * 4),
});

const Held = z.object({ runner_id: RunnerId, attempt: z.number().int().min(1) });

const RunnerEvent = z.discriminatedUnion("type", [
  z.object({ type: z.literal("log"), level: z.enum(["DEBUG", "INFO", "WARN", "WARNING", "ERROR", "STDOUT", "STDERR"]).default("INFO"), message: z.string().max(64 * 1024), timestamp: z.string().max(64).optional() }),
  z.object({ type: z.literal("progress"), step: z.number().min(0).optional(), total: z.number().min(0).optional(), fraction: z.number().min(0).max(1).optional(), message: z.string().max(1000).optional() }),
  z.object({ type: z.literal("partial"), data: z.unknown() }),
]);

const EventsBody = Held.extend({ events: z.array(RunnerEvent).min(1).max(MAX_EVENTS_PER_CALL) });
const ResultBody = Held.extend({ output: z.unknown(), billable_units: z.number().min(0).optional() });
const ErrorBody = Held.extend({
  error: z.object({
    code: z.string().max(64),
    message: z.string().max(64 * 1024),
    status: z.number().int().min(400).max(599).optional(),
    field_errors: z.array(z.object({ loc: z.array(z.union([z.string(), z.number()])), msg: z.string(), type: z.string() })).optional(),
  }),
});

function parse<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    throw new PlatformError("ERR_VALIDATION", {
      fieldErrors: parsed.error.issues.map((issue) => ({ loc: ["body", ...issue.path.map((p) => (typeof p === "symbol" ? String(p) : p))], msg: issue.message, type: issue.code })),
    });
  }
  return parsed.data;
}

/** Runner tokens and admin keys may serve apps; a runner token only the apps it names. */
function requireRunner(request: FastifyRequest, appId?: string): Principal {
  const principal = request.principal;
  if (!principal) throw new PlatformError("ERR_UNAUTHORIZED");
  if (principal.scope === "admin" && principal.allowedApps === null) return principal;
  if (principal.scope !== "runner") throw new PlatformError("ERR_FORBIDDEN", { message: "The runner API needs a runner token or an admin key" });
  if (appId !== undefined && !(principal.allowedApps ?? []).includes(appId)) {
    throw new PlatformError("ERR_FORBIDDEN", { message: `This runner token may not serve ${appId}` });
  }
  return principal;
}

/**
 * Claimed requests with their inputs as the runner must get them: a spilled input read back from
 * storage (spilled-inputs.ts). A request whose input cannot be read fails here and is left out.
 */
async function withInputs(ctx: GatewayContext, records: RequestRecord[], runnerId: string): Promise<RequestRecord[]> {
  const loaded = await Promise.all(
    records.map(async (record) => {
      try {
        const input = await inputOfRetrying(ctx.storage, record);
        return input === record.input ? record : { ...record, input };
      } catch (err) {
        const error = err instanceof PlatformError ? err : new PlatformError("ERR_INTERNAL", { cause: err });
        // Should the store not take the failure either, the lease runs out and the request is retried.
        await ctx.scheduler.remoteOutcome(record.id, { owner: runnerId, attempt: record.attempt }, { ok: false, error }).catch(() => null);
        return null;
      }
    }),
  );
  return loaded.filter((record): record is RequestRecord => record !== null);
}

/** The request, if `runnerId` holds it at `attempt`; ERR_LEASE_LOST otherwise. */
async function heldRecord(ctx: GatewayContext, request: FastifyRequest, requestId: string, runnerId: string, attempt: number): Promise<RequestRecord> {
  const record = await ctx.store.get(requestId);
  if (!record) throw new PlatformError("ERR_REQUEST_NOT_FOUND");
  requireRunner(request, record.appId);
  if (record.state !== "RUNNING" || record.leaseOwner !== runnerId || record.attempt !== attempt) {
    throw new PlatformError("ERR_LEASE_LOST", { message: `Runner ${runnerId} does not hold request ${requestId} at attempt ${attempt} (state ${record.state}, attempt ${record.attempt})` });
  }
  return record;
}

function runOf(record: RequestRecord, filesUrl: string | null): Record<string, unknown> {
  const input = record.input as Record<string, unknown> | null;
  return {
    request_id: record.id,
    endpoint: record.endpoint,
    input: record.input,
    attempt: record.attempt,
    base_url: record.baseUrl,
    // Output URLs go on the files origin; left out without one, as runners before it expect.
    ...(filesUrl ? { files_url: filesUrl } : {}),
    sync_mode: typeof input === "object" && input !== null && input["sync_mode"] === true,
    cancel_requested: record.cancelRequested,
    ...(record.outputTtlSeconds !== null ? { output_ttl_seconds: record.outputTtlSeconds } : {}),
  };
}

/** A realtime message as a lease entry: a run like a request's, answered inline (sync mode), never stored. */
function callRunOf(call: EphemeralCall, filesUrl: string | null): Record<string, unknown> {
  return {
    request_id: call.id,
    endpoint: call.endpoint,
    input: call.input,
    attempt: 1,
    base_url: call.baseUrl,
    ...(filesUrl ? { files_url: filesUrl } : {}),
    sync_mode: true,
    cancel_requested: false,
    ephemeral: true,
  };
}

/**
 * Whether the client of a long poll hung up. The request stream is no signal: Node ends it (and
 * emits its "close") as soon as the body has been read. The response closing before it was sent is.
 */
function hangUpWatch(reply: FastifyReply): { gone: () => boolean; onGone: (fn: () => void) => () => void } {
  let gone = false;
  const listeners = new Set<() => void>();
  reply.raw.once("close", () => {
    if (reply.raw.writableEnded) return;
    gone = true;
    for (const fn of listeners) fn();
  });
  return {
    gone: () => gone,
    onGone: (fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}

/** Waits until the app's queue may have work, `ms` pass or the client hangs up. */
function waitForWork(ctx: GatewayContext, appId: string, ms: number, hangUp: ReturnType<typeof hangUpWatch>): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stopWatching();
      stopHangUp();
      resolve();
    };
    const timer = setTimeout(finish, ms);
    const stopWatching = ctx.scheduler.watchQueue(appId, finish);
    const stopHangUp = hangUp.onGone(finish);
  });
}

/** Where the runner API lives. */
const RUNNER_API_PREFIX = "/runner/v1";

/** The runner API under its prefix, and the admin route that mints runner tokens. */
export function registerRunnerApiRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.register(async (runnerApi) => registerRunnerApi(runnerApi, ctx), { prefix: RUNNER_API_PREFIX });
  registerRunnerTokenMinting(app, ctx);
}

function registerRunnerApi(app: FastifyInstance, ctx: GatewayContext): void {
  const leaseMs = (): number => ctx.config.leaseMs;

  // A runner token serves apps and nothing else: it must not read other people's requests. Every
  // route of this scope, and no other, accepts one (server.ts's authentication hook reads this flag).
  app.addHook("onRoute", (route) => {
    route.config = { ...route.config, runnerApi: true };
  });
  // Every path under the prefix is the API's, those that name no route too: a runner asking for
  // one (a newer runner, an older gateway) gets a 404 like anyone, not the refusal of its token.
  // Routes rather than a not-found handler, which takes no route config; and fal's realtime routes
  // (`/:owner/:alias/*`) would otherwise take GETs under the prefix.
  for (const url of ["/", "/*"]) app.all(url, (request, reply) => sendNotFound(request, reply));

  app.post("/register", async (request) => {
    requireRunner(request);
    const body = parse(RegisterBody, request.body);
    requireRunner(request, body.app.id);
    if (body.protocol !== RUNNER_PROTOCOL_VERSION) {
      throw new PlatformError("ERR_BAD_REQUEST", { message: `This gateway speaks runner protocol ${RUNNER_PROTOCOL_VERSION}; the runner sent ${body.protocol}` });
    }
    let manifest = ctx.scheduler.app(body.app.id);
    // A remote app is described again on every registration: its runner may have been upgraded.
    if (!manifest || manifest.remote === true) {
      // An app the gateway does not load (a Python app): its runner describes it.
      const described = manifestOfRunnerApp(body.app, "", { remote: true });
      await ctx.scheduler.registerRemoteApp(described);
      manifest = ctx.scheduler.app(body.app.id);
    }
    const runnerId = body.runner_id ?? `rr-${randomUUID()}`;
    request.log.info({ app: body.app.id, runner: runnerId, hostname: body.runner.hostname, slots: body.runner.slots }, "remote runner registered");
    if (body.start) ctx.scheduler.remoteRunnerStarted(body.app.id, runnerId, body.start);
    // What this runner is, for the manifests of the results it makes (src/reuse/provenance.ts).
    if (manifest) await ctx.store.recordRunner(remoteRunnerRecord(manifest, ctx.scheduler.revisionOf(manifest), { id: runnerId, hostname: body.runner.hostname ?? "unknown", pid: body.runner.pid ?? null }));
    return {
      protocol: RUNNER_PROTOCOL_VERSION,
      runner_id: runnerId,
      lease_ms: leaseMs(),
      // A third of the lease: two heartbeats may be lost before the lease is.
      heartbeat_ms: Math.max(200, Math.floor(leaseMs() / 3)),
      poll_wait_ms: MAX_POLL_WAIT_MS,
      knobs: manifest?.knobs ?? DEFAULT_KNOBS,
    };
  });

  app.post("/lease", async (request, reply) => {
    requireRunner(request);
    const body = parse(LeaseBody, request.body);
    requireRunner(request, body.app_id);
    if (!ctx.scheduler.app(body.app_id)) throw new PlatformError("ERR_APP_NOT_FOUND", { message: `Unknown app ${body.app_id}: register it first` });
    const deadline = Date.now() + body.wait_ms;
    const hangUp = hangUpWatch(reply);
    for (;;) {
      if (hangUp.gone()) return { runs: [] };
      // Realtime messages first, at once: a client waits on each (scheduler/remote-calls.ts).
      const calls = ctx.scheduler.takeRemoteCalls(body.app_id, body.runner_id, body.slots);
      if (calls.length > 0) return { runs: calls.map((call) => callRunOf(call, ctx.config.filesUrl)) };
      const claimed = await withInputs(ctx, await ctx.scheduler.claimForRemote(body.app_id, body.runner_id, body.slots, leaseMs()), body.runner_id);
      if (claimed.length > 0 && hangUp.gone()) {
        // The runner hung up (a drain, a lost connection) while the claim ran: nobody will work on
        // these. Hand them back at once, at the same attempt, rather than let their leases run out.
        await ctx.scheduler.releaseRemote(claimed, body.runner_id);
        return { runs: [] };
      }
      const left = deadline - Date.now();
      if (claimed.length > 0 || left <= 0 || ctx.scheduler.stopping) return { runs: claimed.map((record) => runOf(record, ctx.config.filesUrl)) };
      await waitForWork(ctx, body.app_id, Math.min(left, POLL_RECHECK_MS), hangUp);
    }
  });

  app.post("/heartbeat", async (request) => {
    requireRunner(request);
    const body = parse(HeartbeatBody, request.body);
    const results = await Promise.all(
      body.requests.map(async ({ request_id, attempt }) => {
        const call = ctx.scheduler.remoteCall(request_id, body.runner_id);
        if (call) {
          requireRunner(request, call.appId);
          return { request_id, status: "ok" as const };
        }
        const record = await ctx.store.get(request_id);
        if (!record || record.state !== "RUNNING" || record.leaseOwner !== body.runner_id || record.attempt !== attempt) {
          return { request_id, status: "lost" as const };
        }
        requireRunner(request, record.appId);
        const renewed = await ctx.store.heartbeat(request_id, body.runner_id, leaseMs());
        if (!renewed) return { request_id, status: "lost" as const };
        return { request_id, status: record.cancelRequested ? ("cancel" as const) : ("ok" as const) };
      }),
    );
    return { lease_ms: leaseMs(), requests: results };
  });

  app.post("/requests/:id/events", async (request, reply) => {
    const { id } = request.params as { id: string };
    requireRunner(request);
    const body = parse(EventsBody, request.body);
    const call = ctx.scheduler.remoteCall(id, body.runner_id);
    if (call) {
      // A realtime message: its partial outputs go to the client; logs and progress have nowhere to go.
      requireRunner(request, call.appId);
      for (const event of body.events) if (event.type === "partial") ctx.scheduler.remoteCallPartial(id, body.runner_id, event.data);
      return reply.code(204).send();
    }
    await heldRecord(ctx, request, id, body.runner_id, body.attempt);
    for (const event of body.events) {
      if (event.type === "log") {
        const level = event.level === "WARNING" ? "WARN" : event.level;
        await ctx.scheduler.remoteEvent(id, { type: "log", log: { message: event.message, level, source: "USER", timestamp: event.timestamp ?? new Date().toISOString() } });
      } else if (event.type === "progress") {
        const fraction = event.fraction ?? (event.step !== undefined && event.total !== undefined && event.total > 0 ? Math.min(1, event.step / event.total) : undefined);
        const progress = {
          ...(event.step !== undefined ? { step: event.step } : {}),
          ...(event.total !== undefined ? { total: event.total } : {}),
          ...(fraction !== undefined ? { fraction } : {}),
          ...(event.message ? { message: event.message } : {}),
        };
        await ctx.scheduler.remoteEvent(id, { type: "progress", progress });
      } else {
        await ctx.scheduler.remoteEvent(id, { type: "partial", data: event.data });
      }
    }
    return reply.code(204).send();
  });

  app.post("/requests/:id/result", async (request) => {
    const { id } = request.params as { id: string };
    requireRunner(request);
    const body = parse(ResultBody, request.body);
    const call = ctx.scheduler.remoteCall(id, body.runner_id);
    if (call) {
      requireRunner(request, call.appId);
      ctx.scheduler.remoteCallAnswered(id, body.runner_id, { ok: true, output: body.output });
      return { state: "COMPLETED" };
    }
    await heldRecord(ctx, request, id, body.runner_id, body.attempt);
    const record = await ctx.scheduler.remoteOutcome(id, { owner: body.runner_id, attempt: body.attempt }, { ok: true, output: body.output, billableUnits: body.billable_units });
    if (!record) throw new PlatformError("ERR_LEASE_LOST");
    return { state: record.state };
  });

  app.post("/requests/:id/error", async (request) => {
    const { id } = request.params as { id: string };
    requireRunner(request);
    const body = parse(ErrorBody, request.body);
    const code: ErrorCode = body.error.code in ERRORS ? (body.error.code as ErrorCode) : "ERR_APP_ERROR";
    const error = new PlatformError(code, {
      message: body.error.message,
      ...(body.error.status !== undefined ? { status: body.error.status } : {}),
      ...(body.error.field_errors ? { fieldErrors: body.error.field_errors } : {}),
    });
    const call = ctx.scheduler.remoteCall(id, body.runner_id);
    if (call) {
      requireRunner(request, call.appId);
      ctx.scheduler.remoteCallAnswered(id, body.runner_id, { ok: false, error });
      return { state: error.code === "ERR_CLIENT_CANCELLED" ? "CANCELLED" : "FAILED" };
    }
    await heldRecord(ctx, request, id, body.runner_id, body.attempt);
    const record = await ctx.scheduler.remoteOutcome(id, { owner: body.runner_id, attempt: body.attempt }, { ok: false, error });
    if (!record) throw new PlatformError("ERR_LEASE_LOST");
    return { state: record.state };
  });

  // Input files a request names by this gateway's /files/ URL, read by a runner on another machine.
  // Not through /files/ itself: that route refuses runner tokens like every route outside this API,
  // and with --files-url it redirects to a public origin the runner may not reach.
  app.route({
    method: ["GET", "HEAD"],
    url: "/files/*",
    handler: async (request, reply) => {
      requireRunner(request);
      await serveFile(ctx, request, reply, (request.params as { "*": string })["*"]);
    },
  });

  // Output files. The body streams into storage under the request's own prefix; the content type
  // travels in a header so that a JSON output is not parsed as a request body.
  app.register(async (uploads) => {
    takeRawBodies(uploads);
    uploads.put("/files/*", async (request, reply) => {
      const key = (request.params as { "*": string })["*"];
      // The runner picks the key (its ctx.files builds the URL from it), but only under the
      // request's own output prefix: outputs/<request id>/<random>/<file name>.
      const requestId = requestOfOutputKey(key);
      if (requestId === null) throw new PlatformError("ERR_BAD_REQUEST", { message: OUTPUT_KEY_SHAPE });
      const headers = request.headers;
      const runnerId = String(headers["x-darkroom-runner-id"] ?? "");
      const attempt = Number(headers["x-darkroom-attempt"] ?? NaN);
      if (!RUNNER_ID.test(runnerId) || !Number.isInteger(attempt)) {
        throw new PlatformError("ERR_BAD_REQUEST", { message: "x-darkroom-runner-id and x-darkroom-attempt headers are required" });
      }
      const record = await heldRecord(ctx, request, requestId, runnerId, attempt);
      const length = headers["content-length"] === undefined ? null : Number(headers["content-length"]);
      if (length !== null && length > ctx.config.limits.maxFileBytes) {
        throw new PlatformError("ERR_FILE_TOO_LARGE", { message: `Output files are limited to ${ctx.config.limits.maxFileBytes} bytes` });
      }
      const fileName = storedFileName(String(headers["x-darkroom-file-name"] ?? key.split("/").pop() ?? "output.bin"));
      const contentType = storedContentType(String(headers["x-darkroom-content-type"] ?? "application/octet-stream"));
      const ttlHeader = headers["x-darkroom-expires-in"];
      const ttl = ttlHeader !== undefined ? Number(ttlHeader) : record.outputTtlSeconds;
      const maxBytes = ctx.config.limits.maxFileBytes;
      // Charged to the key that submitted the request, like its uploads (its storage quota).
      const meta = await closingOnQuota(request, reply, () =>
        storageQuotaOf(ctx).charge(
          record.keyId,
          { announced: length, maxBytes },
          (limit) =>
            ctx.storage.put(key, limit(request.raw), {
              contentType,
              fileName,
              maxBytes,
              ...(ttl !== null && Number.isFinite(ttl) && ttl > 0 ? { expiresInSeconds: ttl } : {}),
            }),
          (stored) => ({ id: stored.key, bytes: stored.size, uploadId: null, expiresAt: stored.expiresAt }),
          (stored) => ctx.storage.delete(stored.key),
        ),
      );
      return { key: meta.key, size: meta.size, content_type: meta.contentType, file_name: meta.fileName };
    });
  });

  // Model weights for runners on other machines (`darkroom models pull gateway:<name>`): the file
  // list with hashes, then each blob by hash, with ranges so an interrupted download resumes.
  // One manager for the gateway's life, made on the first weights request (most gateways get none).
  let manager: Promise<ModelManager> | undefined;
  const models = (): Promise<ModelManager> =>
    (manager ??= import("../../models/manager.js").then(({ createModelManager }) => createModelManager({ dataDir: ctx.config.dataDir })));
  const modelError = (err: unknown): never => {
    const code = (err as { code?: string } | null)?.code;
    if (code === "ERR_MODEL_NOT_FOUND" || code === "ERR_MODEL_NAME_INVALID") throw new PlatformError("ERR_FILE_NOT_FOUND", { message: (err as Error).message });
    throw err;
  };

  app.get("/models/:name", async (request) => {
    requireRunner(request);
    const { name } = request.params as { name: string };
    const files = await (await models()).files(name).catch(modelError);
    return { name, files: files.map((f) => ({ path: f.path, sha256: f.sha256, size: f.size })) };
  });

  app.get("/models/blobs/:sha256", async (request, reply) => {
    requireRunner(request);
    const { sha256 } = request.params as { sha256: string };
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new PlatformError("ERR_FILE_NOT_FOUND");
    const manager = await models();
    let blob = await manager.openBlob(sha256).catch(modelError);
    const size = blob.size;
    const range = request.headers.range ? parseRange(request.headers.range, size) : null;
    if (range) {
      blob.stream.destroy();
      blob = await manager.openBlob(sha256, { start: range.start, end: range.end }).catch(modelError);
    }
    reply.header("content-type", "application/octet-stream").header("accept-ranges", "bytes");
    if (range) reply.code(206).header("content-range", `bytes ${range.start}-${range.end}/${size}`).header("content-length", String(range.end - range.start + 1));
    else reply.header("content-length", String(size));
    return reply.send(blob.stream);
  });

  // A runner trades its token for a fresh one before it expires, so runner tokens can stay short-lived.
  app.post("/token", async (request) => {
    const principal = requireRunner(request);
    if (principal.scope !== "runner") throw new PlatformError("ERR_BAD_REQUEST", { message: "Only runner tokens are refreshed; an admin key does not expire" });
    const issued = ctx.tokens.issue({ keyId: principal.keyId, scope: "runner", allowedApps: principal.allowedApps ?? [] });
    return { token: issued.token, expires_at: new Date(issued.claims.exp * 1000).toISOString() };
  });
}

/** Admins mint runner tokens for the apps a machine will serve (a platform route: runner tokens are refused here). */
function registerRunnerTokenMinting(app: FastifyInstance, ctx: GatewayContext): void {
  app.post("/v1/runner-tokens", async (request, reply) => {
    const principal = request.principal;
    if (!principal) throw new PlatformError("ERR_UNAUTHORIZED");
    if (principal.scope !== "admin" || principal.allowedApps !== null) throw new PlatformError("ERR_FORBIDDEN", { message: "Runner tokens are issued for admin keys" });
    const body = parse(z.object({ apps: z.array(z.string().min(1).max(200)).min(1).max(100), ttl_seconds: z.number().int().positive().optional() }), request.body);
    const issued = ctx.tokens.issue({ keyId: principal.keyId, scope: "runner", allowedApps: body.apps, ...(body.ttl_seconds !== undefined ? { ttlSec: body.ttl_seconds } : {}) });
    return reply.code(201).send({ token: issued.token, apps: issued.claims.allowed_apps, expires_at: new Date(issued.claims.exp * 1000).toISOString() });
  });
}
