/**
 * The official fal proxy protocol: `@fal-ai/client` with `proxyUrl` sends every call to one URL and
 * names the real target in `x-fal-target-url`. We dispatch on the target's host to the same handlers
 * the direct routes use (server.ts hands them over), so no request is forwarded anywhere.
 * @module
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { PlatformError } from "../../core/errors.js";
import type { GatewayContext } from "../context.js";
import { falCallOf, type FalCallHandler } from "../fal-call.js";

/** The handlers of fal's hosts, by the family of host names each serves. */
export interface FalHostHandlers {
  run: FalCallHandler;
  queue: FalCallHandler;
  rest: FalCallHandler;
}

const HOST_FAMILIES: ReadonlyMap<string, keyof FalHostHandlers> = new Map([
  ["fal.run", "run"],
  ["gateway.alpha.fal.ai", "run"],
  ["queue.fal.run", "queue"],
  ["queue.falrun.com", "queue"],
  ["rest.fal.ai", "rest"],
  ["rest.alpha.fal.ai", "rest"],
]);

async function handleFalProxy(ctx: GatewayContext, hosts: FalHostHandlers, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const header = request.headers["x-fal-target-url"];
  const target = Array.isArray(header) ? header[0] : header;
  if (!target) throw new PlatformError("ERR_BAD_REQUEST", { message: "Missing the x-fal-target-url header" });
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new PlatformError("ERR_BAD_REQUEST", { message: "x-fal-target-url is not a URL" });
  }
  const family = HOST_FAMILIES.get(url.hostname);
  if (!family) throw new PlatformError("ERR_BAD_REQUEST", { message: `x-fal-target-url host ${url.hostname} is not served here` });
  return hosts[family](ctx, falCallOf(url, request, reply));
}

export function registerFalProxyRoutes(app: FastifyInstance, ctx: GatewayContext, hosts: FalHostHandlers): void {
  for (const url of ["/api/fal/proxy", "/api/fal/proxy/*"]) {
    app.route({ method: ["GET", "POST", "PUT", "DELETE", "HEAD"], url, config: { appInput: true }, handler: (request, reply) => handleFalProxy(ctx, hosts, request, reply) });
  }
}
