/**
 * Builds the gateway's HTTP server: body parsing and limits, authentication, the one error handler
 * that gives every error fal's shape, and the route families (fal hosts, proxy, files, platform API,
 * operations, the playground).
 * @module
 */
import websocket from "@fastify/websocket";
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import pino, { type Logger } from "pino";
import { ERRORS, isPlatformError, PlatformError, type ErrorDefinition } from "../core/errors.js";
import { pathSegments } from "./app-path.js";
import type { GatewayContext } from "./context.js";
import { logRequestError } from "./error-log.js";
import { registerFilesOrigin } from "./files-origin.js";
import { parseJsonBody } from "./json-body.js";
import { InflightBodies } from "./inflight-bodies.js";
import { closeAfterReply } from "./lingering-close.js";
import { outageError } from "../core/outage-errors.js";
import { registerFileRoutes } from "./routes/files.js";
import { registerOpsRoutes } from "./routes/ops.js";
import { openApiFor, registerPlatformRoutes } from "./routes/platform.js";
import { registerPlaygroundRoutes } from "./routes/playground.js";
import { handleFalProxy } from "./routes/proxy.js";
import { handleQueueCall, type FalCall } from "./routes/queue.js";
import { realtimeHandler } from "./routes/realtime.js";
import { handleRestCall } from "./routes/rest.js";
import { handleRunCall } from "./routes/run.js";
import { registerRunnerApiRoutes } from "./routes/runner-api.js";
import { baseUrlOf } from "./wire.js";

export interface GatewayServerOptions {
  /** The server's pino logger; without one the gateway logs nothing. */
  loggerInstance?: Logger;
}

/** Maps any thrown value to the fal error shape. */
function toPlatformError(err: unknown): PlatformError {
  if (isPlatformError(err)) return err.code === "ERR_INTERNAL" ? (outageError(err.cause) ?? err) : err;
  const outage = outageError(err);
  if (outage) return outage;
  const e = err as FastifyError;
  switch (e.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new PlatformError("ERR_BODY_TOO_LARGE");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new PlatformError("ERR_UNSUPPORTED_MEDIA_TYPE");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new PlatformError("ERR_BAD_JSON");
  }
  if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500) {
    return new PlatformError("ERR_BAD_REQUEST", { message: e.message, status: e.statusCode });
  }
  return new PlatformError("ERR_INTERNAL", { cause: err });
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** The route takes a body without credentials (signed upload URLs, which verify before reading it). */
    anonymousBody?: boolean;
  }
}

/** Whether the request announces a body (a length above zero, or chunked). */
function carriesBody(request: FastifyRequest): boolean {
  const length = request.headers["content-length"];
  return (length !== undefined && length !== "0") || request.headers["transfer-encoding"] !== undefined;
}


function sendError(reply: FastifyReply, error: PlatformError): FastifyReply {
  for (const [k, v] of Object.entries(error.headers)) reply.header(k, v);
  if (error.errorType) reply.header("x-fal-error-type", error.errorType);
  // fal's optional hint for clients deciding whether to retry.
  const definition: ErrorDefinition = ERRORS[error.code];
  reply.header("x-fal-retryable", definition.retryable === true ? "true" : "false");
  // Darkroom's own registry code, for its runners and CLI (several codes share an error_type).
  reply.header("x-darkroom-error-code", error.code);
  if (error.code === "ERR_VALIDATION") reply.header("x-fal-billable-units", "0");
  return reply.code(error.status).type("application/json").send(error.toBody());
}

function call(request: FastifyRequest, reply: FastifyReply, prefix: string): FalCall {
  const url = new URL(request.url, "http://internal");
  const segments = pathSegments(url.pathname);
  if (segments[0] === prefix) segments.shift();
  return { method: request.method, segments, query: url.searchParams, request, reply };
}

/** proxy-addr's test for "the nearest `hops` proxies": the address at hop `i` is trusted below it. */
function trustHops(hops: number): (address: string, hop: number) => boolean {
  return (_address, hop) => hop < hops;
}

export async function createGatewayServer(ctx: GatewayContext, options: GatewayServerOptions = {}): Promise<FastifyInstance> {
  // Typed as the default instance: route modules do not care which pino logger is behind it.
  const app: FastifyInstance = Fastify({
    loggerInstance: options.loggerInstance ?? pino({ level: "silent" }),
    bodyLimit: ctx.config.limits.maxBodyBytes,
    // Request ids in logs follow fal's header when a client sends one.
    requestIdHeader: "x-request-id",
    // Only then is `request.ip` the caller behind a proxy (auth failure budgets are per address).
    trustProxy: typeof ctx.config.trustProxy === "number" ? trustHops(ctx.config.trustProxy) : ctx.config.trustProxy,
    // Per-request access logs would dominate at thousands of requests a second; requests are in the store.
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1000 },
    // Headers must arrive within 20 s (Node's default is 60 s): a slow-header connection is cheap to
    // hold but counts against the OS's file descriptors. Bodies are held to limits.bodyIdleMs below.
    http: { headersTimeout: 20_000 },
    // Errors Fastify raises before a route is chosen (a path that is not valid percent-encoding)
    // get fal's shape too.
    frameworkErrors: (error, _request, reply) => {
      void sendError(reply, new PlatformError("ERR_BAD_REQUEST", { message: error.code === "FST_ERR_BAD_URL" ? "The path is not valid URL encoding" : error.message }));
    },
    // Bytes that are not HTTP at all: answered in fal's shape and closed, as Node does with its own.
    clientErrorHandler: (error, socket) => {
      if (!socket.writable || (error as NodeJS.ErrnoException).code === "ECONNRESET") return void socket.destroy();
      const status = (error as NodeJS.ErrnoException).code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
      const body = JSON.stringify({ detail: status === 431 ? "Request headers too large" : "Malformed HTTP request", error_type: "bad_request" });
      socket.end(
        `HTTP/1.1 ${status} ${status === 431 ? "Request Header Fields Too Large" : "Bad Request"}\r\ncontent-type: application/json\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\nx-fal-error-type: bad_request\r\nconnection: close\r\n\r\n${body}`,
      );
    },
  }) as unknown as FastifyInstance;
  await app.register(websocket, { options: { maxPayload: 16 * 1024 * 1024 } });

  // fal's clients send `Content-Type: application/json` on bodyless GET and PUT: an empty body is no input.
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (_request: FastifyRequest, body: Buffer, done: (error: Error | null, value?: unknown) => void) => parseJsonBody(body, done));
  // Everything else stays an unread stream: upload routes pipe it straight into storage.
  app.addContentTypeParser("*", (_request, _payload, done) => done(null, undefined));

  const inflight = new InflightBodies(ctx.config.limits.maxInflightBodyBytes);
  app.decorateRequest("principal", null);
  // Before authentication: the files host refuses what it does not serve before a key is checked.
  if (ctx.config.filesUrl) registerFilesOrigin(app, ctx.config.filesUrl);
  app.addHook("onRequest", async (request, reply) => {
    if (carriesBody(request) && !request.raw.complete) {
      // A body that stops arriving is dropped: no connection is held open by a trickle. (Most
      // bodies came in the packet with the headers and are complete by now: no timer for those.)
      // Watched on the socket: a data listener on the request itself would consume the body.
      const raw = request.raw;
      const socket = raw.socket;
      const idle = setTimeout(() => socket.destroy(), ctx.config.limits.bodyIdleMs);
      idle.unref();
      const onData = (): void => void idle.refresh();
      const stop = (): void => {
        clearTimeout(idle);
        socket.off("data", onData);
      };
      socket.on("data", onData);
      raw.once("end", stop);
      raw.once("close", stop);
    }
    const authorization = request.headers.authorization;
    if (!authorization) {
      // Nobody reads, let alone parses, a body that comes without credentials: refused before a byte
      // of it is taken, so anonymous callers cannot make the gateway read and parse 32 MiB each.
      if (carriesBody(request) && !request.routeOptions.config.anonymousBody) throw new PlatformError("ERR_UNAUTHORIZED");
      return;
    }
    const key = await ctx.keys.verify(authorization, { client: request.ip });
    // A wrong key is refused outright rather than treated as anonymous.
    if (!key) throw new PlatformError("ERR_UNAUTHORIZED", { message: "Invalid API key or token" });
    // A runner token serves apps and nothing else: it must not read other people's requests.
    if (key.scope === "runner" && !request.url.startsWith("/runner/v1/")) {
      throw new PlatformError("ERR_FORBIDDEN", { message: "Runner tokens are accepted only by the runner API" });
    }
    request.principal = { keyId: key.id, scope: key.scope, allowedApps: key.via === "token" ? (key.token?.allowed_apps ?? []) : null };
    // JSON bodies are read whole and held while the request is served: reserve them against the
    // gateway's budget before reading (uploads stream to storage and are not counted).
    if (carriesBody(request) && String(request.headers["content-type"] ?? "").toLowerCase().startsWith("application/json")) {
      const announced = Number(request.headers["content-length"] ?? ctx.config.limits.maxBodyBytes);
      const release = inflight.reserve(Math.min(Number.isFinite(announced) ? announced : ctx.config.limits.maxBodyBytes, ctx.config.limits.maxBodyBytes));
      request.raw.once("close", release);
      reply.raw.once("close", release);
      reply.raw.once("finish", release);
    }
  });

  app.setErrorHandler((err, request, reply) => {
    const error = toPlatformError(err);
    logRequestError(request, error, err);
    // An error answered before the body was all read (401 first, 413, a disk that filled mid-upload):
    // the rest is not worth reading, and the connection cannot be reused while it still arrives.
    // Answer, then close without a reset.
    if (carriesBody(request) && !request.raw.readableEnded) closeAfterReply(reply);
    return sendError(reply, error);
  });
  app.setNotFoundHandler((request, reply) => {
    const error = new PlatformError("ERR_PATH_NOT_FOUND", { message: `Path ${new URL(request.url, "http://x").pathname} not found` });
    logRequestError(request, error);
    return sendError(reply, error);
  });

  const onRealtime = realtimeHandler(ctx);
  const notFound = async (request: FastifyRequest): Promise<never> => {
    throw new PlatformError("ERR_PATH_NOT_FOUND", { message: `Path ${new URL(request.url, "http://x").pathname} not found` });
  };

  // fal.run: sync runs, /stream, realtime upgrades, and each app's OpenAPI document.
  app.route({
    method: "GET",
    url: "/run/*",
    handler: async (request, reply) => {
      const c = call(request, reply, "run");
      if (c.segments.at(-1) === "openapi.json" && c.segments.length === 3) {
        return openApiFor(ctx, `${c.segments[0]}/${c.segments[1]}`, baseUrlOf(request, ctx.config.publicUrl));
      }
      return handleRunCall(ctx, c);
    },
    wsHandler: onRealtime,
  });
  app.post("/run/*", (request, reply) => handleRunCall(ctx, call(request, reply, "run")));
  // queue.fal.run and rest.fal.ai
  app.route({ method: ["GET", "POST", "PUT", "HEAD"], url: "/queue/*", handler: (request, reply) => handleQueueCall(ctx, call(request, reply, "queue")) });
  app.route({ method: ["GET", "POST", "PUT", "DELETE"], url: "/rest/*", handler: (request, reply) => handleRestCall(ctx, call(request, reply, "rest")) });
  // The official proxy protocol: the real target is in `x-fal-target-url`.
  for (const url of ["/api/fal/proxy", "/api/fal/proxy/*"]) {
    app.route({ method: ["GET", "POST", "PUT", "DELETE", "HEAD"], url, handler: (request, reply) => handleFalProxy(ctx, request, reply) });
  }
  // Realtime at fal's own path shape, `wss://fal.run/{id}/realtime`.
  app.route({ method: "GET", url: "/:owner/:alias/realtime", handler: notFound, wsHandler: onRealtime });
  app.route({ method: "GET", url: "/:owner/:alias/*", handler: notFound, wsHandler: onRealtime });

  registerFileRoutes(app, ctx);
  registerPlatformRoutes(app, ctx);
  registerOpsRoutes(app, ctx);
  registerRunnerApiRoutes(app, ctx);
  registerPlaygroundRoutes(app, { publicUrl: ctx.config.publicUrl, filesUrl: ctx.config.filesUrl });
  return app;
}

export { handleQueueCall, handleRestCall, handleRunCall };
