/**
 * Builds the gateway's HTTP server: body parsing and limits, authentication, the one error handler
 * that gives every error fal's shape, and the route families (fal hosts, proxy, files, platform API,
 * operations, the playground).
 * @module
 */
import websocket from "@fastify/websocket";
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Readable } from "node:stream";
import pino, { type Logger } from "pino";
import { PlatformError } from "../core/errors.js";
import { principalOf, type GatewayContext } from "./context.js";
import { sendError, sendNotFound, toPlatformError } from "./error-reply.js";
import { logRequestError } from "./error-log.js";
import { falCallOf } from "./fal-call.js";
import { FAL_HOST_METHODS, type FalHost } from "./fal-host.js";
import { registerFilesOrigin } from "./files-origin.js";
import { readWholeBody } from "./body-reader.js";
import { parseJsonBody } from "./json-body.js";
import { InflightBodies } from "./inflight-bodies.js";
import { closeAfterReply } from "./lingering-close.js";
import { registerFileRoutes } from "./routes/files.js";
import { registerKeyRoutes } from "./routes/keys.js";
import { registerOpsRoutes } from "./routes/ops.js";
import { registerPlatformRoutes } from "./routes/platform.js";
import { registerPlaygroundRoutes } from "./routes/playground.js";
import { registerPricingRoutes } from "./routes/pricing.js";
import { registerFalProxyRoutes } from "./routes/proxy.js";
import { registerPythonMultipartRoutes } from "./routes/python-multipart.js";
import { registerOpenAiRoutes } from "./routes/openai.js";
import { registerReplicateRoutes } from "./routes/replicate.js";
import { queueHost } from "./routes/queue.js";
import { realtimeHandler } from "./routes/realtime.js";
import { restHost } from "./routes/rest.js";
import { runHost } from "./routes/run.js";
import { registerRunnerApiRoutes } from "./routes/runner-api.js";
import { registerTenantRoutes } from "./routes/tenants.js";
import { registerWorkflowRoutes } from "./routes/workflows.js";
import { registerUsageRoutes } from "./routes/usage.js";

export interface GatewayServerOptions {
  /** The server's pino logger; without one the gateway logs nothing. */
  loggerInstance?: Logger;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** The route takes a body without credentials (signed upload URLs, which verify before reading it). */
    anonymousBody?: boolean;
    /** The route's JSON body is an app's input (fal's run and queue calls): a large one is checked and stored unparsed (json-body.ts). */
    appInput?: boolean;
    /** The route reads a multipart form whole, up to this many bytes (OpenAI's uploads): held against the same budget as JSON bodies. */
    wholeFormBytes?: number;
  }
}

/** Whether the request announces a body (a length above zero, or chunked). */
function carriesBody(request: FastifyRequest): boolean {
  const length = request.headers["content-length"];
  return (length !== undefined && length !== "0") || request.headers["transfer-encoding"] !== undefined;
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
  app.addContentTypeParser("application/json", (request: FastifyRequest, payload: Readable, done: (error: Error | null, value?: unknown) => void) =>
    readWholeBody(payload, request.headers["content-length"], request.routeOptions.bodyLimit, (error, body) => {
      if (error || !body) return done(error);
      parseJsonBody(body, { appInput: request.routeOptions.config.appInput === true, unparsedOver: ctx.config.limits.inputSpillBytes }, done);
    }),
  );
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
    // A runner token serves apps and nothing else: it must not read other people's requests. The
    // runner API's routes say they are its own (routes/runner-api.ts); every other route refuses one.
    if (key.scope === "runner" && !request.routeOptions.config.runnerApi) {
      throw new PlatformError("ERR_FORBIDDEN", { message: "Runner tokens are accepted only by the runner API" });
    }
    request.principal = await principalOf(ctx.keys, key);
    // JSON bodies are read whole and held while the request is served: reserve them against the
    // gateway's budget before reading (uploads stream to storage and are not counted).
    const contentType = String(request.headers["content-type"] ?? "").toLowerCase();
    const wholeForm = request.routeOptions.config.wholeFormBytes;
    const heldAtMost = contentType.startsWith("application/json") ? ctx.config.limits.maxBodyBytes : wholeForm !== undefined && contentType.startsWith("multipart/form-data") ? wholeForm : null;
    if (carriesBody(request) && heldAtMost !== null) {
      const announced = Number(request.headers["content-length"] ?? heldAtMost);
      const release = inflight.reserve(Math.min(Number.isFinite(announced) ? announced : heldAtMost, heldAtMost));
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
  app.setNotFoundHandler(sendNotFound);

  const onRealtime = realtimeHandler(ctx);
  const notFound = async (request: FastifyRequest): Promise<never> => {
    throw new PlatformError("ERR_PATH_NOT_FOUND", { message: `Path ${new URL(request.url, "http://x").pathname} not found` });
  };

  // A fal host's calls on its own path prefix here (`/queue/...` for queue.fal.run), looked up in the
  // host's table as the proxy's are.
  const onHost = (host: FalHost) => (request: FastifyRequest, reply: FastifyReply) =>
    host.serve(ctx, falCallOf(new URL(request.url, "http://internal"), request, reply, host.prefix));
  // fal.run: sync runs, /stream, each app's OpenAPI document, and realtime upgrades.
  // Each takes every method the proxy does, so that what a table lacks gets the table's own 404.
  app.route({ method: "GET", url: "/run/*", handler: onHost(runHost), wsHandler: onRealtime });
  app.route({ method: ["POST", "PUT", "DELETE"], url: "/run/*", config: { appInput: true }, handler: onHost(runHost) });
  app.route({ method: FAL_HOST_METHODS, url: "/queue/*", config: { appInput: true }, handler: onHost(queueHost) });
  app.route({ method: FAL_HOST_METHODS, url: "/rest/*", handler: onHost(restHost) });
  // The official proxy protocol: the real target is in `x-fal-target-url`.
  registerFalProxyRoutes(app, ctx, [runHost, queueHost, restHost]);
  // Realtime at fal's own path shape, `wss://fal.run/{id}/realtime`.
  app.route({ method: "GET", url: "/:owner/:alias/realtime", handler: notFound, wsHandler: onRealtime });
  app.route({ method: "GET", url: "/:owner/:alias/*", handler: notFound, wsHandler: onRealtime });

  registerFileRoutes(app, ctx);
  registerPythonMultipartRoutes(app, ctx);
  registerPlatformRoutes(app, ctx);
  registerPricingRoutes(app, ctx);
  registerUsageRoutes(app, ctx);
  registerKeyRoutes(app, ctx);
  registerTenantRoutes(app, ctx);
  registerWorkflowRoutes(app, ctx);
  registerOpenAiRoutes(app, ctx);
  registerReplicateRoutes(app, ctx);
  registerOpsRoutes(app, ctx);
  registerRunnerApiRoutes(app, ctx);
  registerPlaygroundRoutes(app, { publicUrl: ctx.config.publicUrl, filesUrl: ctx.config.filesUrl });
  return app;
}
