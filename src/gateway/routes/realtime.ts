/**
 * fal's realtime WebSocket: `/{id}/realtime` (and under `/run/`). Binary msgpack frames both ways;
 * control frames as JSON text (`x-fal-error`, `x-fal-message`). Each message is a non-durable call
 * on a warm runner; results echo the input's `request_id`.
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import type { FastifyRequest } from "fastify";
import type { WebSocket } from "ws";
import { isPlatformError, PlatformError } from "../../core/errors.js";
import type { AppManifest, EndpointManifest } from "../../core/types.js";
import { parseAppPath, pathSegments } from "../app-path.js";
import { principalOf, type GatewayContext, type Principal } from "../context.js";
import { assertAppWithinLimitsOf, assertWithinBudget, countAgainstRequestRate } from "../fal-call.js";
import { MAX_JSON_DEPTH } from "../json-body.js";
import { baseUrlOf } from "../wire.js";

/** Most messages a connection may have waiting; older ones are dropped, as fal's `buffering` does. */
const MAX_BUFFERED = 16;

/**
 * Results are encoded with room for the deepest input a message may have: msgpack's default limit
 * (100) would fail the echo of an input that passed the depth check below, as an INTERNAL_ERROR.
 * A little slack covers an app that wraps what it got in an object or two.
 */
const ENCODE_MAX_DEPTH = MAX_JSON_DEPTH + 8;

/**
 * Whether a decoded message nests deeper than HTTP bodies may (json-body.ts). Measured without
 * recursion, so a hostile message cannot overflow this stack either. Deeper messages must be turned
 * away here: past this point they overflow the structured clone that hands them to a runner, which
 * then reads as the server's fault (INTERNAL_ERROR) rather than the message's.
 */
function nestedTooDeep(value: unknown, maxDepth: number): boolean {
  const stack: { v: unknown; depth: number }[] = [{ v: value, depth: 1 }];
  for (let item = stack.pop(); item; item = stack.pop()) {
    // msgpack `bin` decodes to a Uint8Array: bytes are a leaf, and listing them would cost a walk of every byte.
    if (typeof item.v !== "object" || item.v === null || ArrayBuffer.isView(item.v)) continue;
    if (item.depth > maxDepth) return true;
    for (const child of Array.isArray(item.v) ? item.v : Object.values(item.v)) {
      if (typeof child === "object" && child !== null) stack.push({ v: child, depth: item.depth + 1 });
    }
  }
  return false;
}

function sendControl(socket: WebSocket, error: string, reason: string): void {
  if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ type: "x-fal-error", error, reason }));
}

function resolveRealtime(ctx: GatewayContext, url: string): { app: AppManifest; endpoint: EndpointManifest } {
  const segments = pathSegments(new URL(url, "http://x").pathname);
  if (segments[0] === "run") segments.shift();
  const parsed = parseAppPath(segments);
  if (!parsed) throw new PlatformError("ERR_PATH_NOT_FOUND");
  const app = ctx.scheduler.app(parsed.appId);
  if (!app) throw new PlatformError("ERR_APP_NOT_FOUND", { message: `Application '${parsed.appId}' not found` });
  const path = parsed.rest.join("/");
  const endpoint = app.endpoints.find((e) => e.kind === "realtime" && e.path === path);
  if (!endpoint) throw new PlatformError("ERR_PATH_NOT_FOUND", { message: `No realtime endpoint at /${path}` });
  return { app, endpoint };
}

async function authenticate(ctx: GatewayContext, request: FastifyRequest, app: AppManifest): Promise<Principal | null> {
  const query = request.query as Record<string, string | undefined>;
  const token = query["fal_jwt_token"];
  const header = token ? `Bearer ${token}` : request.headers.authorization;
  // Throttled (too many wrong secrets from this address) counts as unauthorised on a socket.
  const key = await ctx.keys.verify(header, { app: app.id, client: request.ip }).catch(() => null);
  return key ? principalOf(ctx.keys, key) : null;
}

/**
 * The limits a socket is held to when it opens: the key's and tenant's `apps` and monthly budget. A
 * refusal is the error's detail, sent as an `x-fal-error` frame before the socket closes.
 */
async function refusalAtOpen(ctx: GatewayContext, principal: Principal, app: AppManifest): Promise<string | null> {
  try {
    assertAppWithinLimitsOf(principal, app);
    await assertWithinBudget(ctx, principal);
    return null;
  } catch (err) {
    if (isPlatformError(err)) return err.message;
    throw err;
  }
}

/** The WebSocket handler for realtime routes (the server mounts it beside the HTTP handlers). */
export function realtimeHandler(ctx: GatewayContext): (socket: WebSocket, request: FastifyRequest) => Promise<void> {
  return async (socket: WebSocket, request: FastifyRequest): Promise<void> => {
    let target: { app: AppManifest; endpoint: EndpointManifest };
    try {
      target = resolveRealtime(ctx, request.url);
    } catch (err) {
      sendControl(socket, "NOT_FOUND", err instanceof Error ? err.message : "not found");
      socket.close(1000);
      return;
    }
    const principal = await authenticate(ctx, request, target.app);
    if (!principal) {
      // fal's client drops its token and retries on this exact body.
      socket.send(JSON.stringify({ status: "error", error: "Unauthorized" }));
      socket.close(1000);
      return;
    }
    const refused = await refusalAtOpen(ctx, principal, target.app);
    if (refused !== null) {
      sendControl(socket, "FORBIDDEN", refused);
      socket.close(1000);
      return;
    }
    if (target.app.unavailable) {
      sendControl(socket, "APP_UNAVAILABLE", target.app.unavailable.reason);
      socket.close(1000);
      return;
    }
    const baseUrl = baseUrlOf(request, ctx.config.publicUrl);
    const pending: unknown[] = [];
    let busy = false;

    const runNext = async (): Promise<void> => {
      if (busy) return;
      const input = pending.shift();
      if (input === undefined) return;
      busy = true;
      const requestId = typeof input === "object" && input !== null ? (input as Record<string, unknown>)["request_id"] : undefined;
      const started = performance.now();
      try {
        ctx.validator.validate(target.endpoint.input, input);
        const output = await ctx.scheduler.invokeEphemeral(target.app.id, target.endpoint.path, input, baseUrl);
        const result = typeof output === "object" && output !== null ? { ...output } : { output };
        if (typeof requestId === "string") (result as Record<string, unknown>)["request_id"] = requestId;
        if (socket.readyState === socket.OPEN) {
          socket.send(encode(result, { maxDepth: ENCODE_MAX_DEPTH }));
          socket.send(JSON.stringify({ type: "x-fal-message", action: "timings", timing: (performance.now() - started) / 1000 }));
        }
      } catch (err) {
        const reason = isPlatformError(err) && err.fieldErrors ? JSON.stringify(err.fieldErrors) : err instanceof Error ? err.message : String(err);
        const code = isPlatformError(err) ? err.code : null;
        sendControl(socket, code === "ERR_VALIDATION" ? "VALIDATION_ERROR" : code === "ERR_APP_UNAVAILABLE" ? "APP_UNAVAILABLE" : "INTERNAL_ERROR", reason);
      } finally {
        busy = false;
        void runNext();
      }
    };

    socket.on("message", (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      let input: unknown;
      try {
        const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
        input = isBinary ? decode(bytes) : JSON.parse(bytes.toString("utf8"));
      } catch {
        sendControl(socket, "BAD_MESSAGE", "Messages must be msgpack (binary) or JSON (text)");
        return;
      }
      if (nestedTooDeep(input, MAX_JSON_DEPTH)) {
        sendControl(socket, "BAD_MESSAGE", `Message is nested deeper than ${MAX_JSON_DEPTH} levels`);
        return;
      }
      // Each message is a call: it counts against the key's and tenant's requests per minute.
      try {
        countAgainstRequestRate(ctx, principal);
      } catch (err) {
        if (!isPlatformError(err)) throw err;
        sendControl(socket, "RATE_LIMITED", err.message);
        return;
      }
      pending.push(input);
      if (pending.length > MAX_BUFFERED) pending.shift();
      void runNext();
    });
  };

}
