/**
 * The official fal proxy protocol: `@fal-ai/client` with `proxyUrl` sends every call to one URL and
 * names the real target in `x-fal-target-url`. The target's host picks one of the fal host tables the
 * direct routes use (server.ts hands them over), so no request is forwarded anywhere.
 * @module
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { PlatformError } from "../../core/errors.js";
import type { GatewayContext } from "../context.js";
import { falCallOf } from "../fal-call.js";
import { FAL_HOST_METHODS, type FalHost } from "../fal-host.js";

async function handleFalProxy(ctx: GatewayContext, hostsByName: ReadonlyMap<string, FalHost>, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const header = request.headers["x-fal-target-url"];
  const target = Array.isArray(header) ? header[0] : header;
  if (!target) throw new PlatformError("ERR_BAD_REQUEST", { message: "Missing the x-fal-target-url header" });
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new PlatformError("ERR_BAD_REQUEST", { message: "x-fal-target-url is not a URL" });
  }
  const host = hostsByName.get(url.hostname);
  if (!host) throw new PlatformError("ERR_BAD_REQUEST", { message: `x-fal-target-url host ${url.hostname} is not served here` });
  return host.serve(ctx, falCallOf(url, request, reply));
}

export function registerFalProxyRoutes(app: FastifyInstance, ctx: GatewayContext, hosts: readonly FalHost[]): void {
  const hostsByName = new Map(hosts.flatMap((host) => host.hostnames.map((name) => [name, host] as const)));
  for (const url of ["/api/fal/proxy", "/api/fal/proxy/*"]) {
    app.route({ method: FAL_HOST_METHODS, url, config: { appInput: true }, handler: (request, reply) => handleFalProxy(ctx, hostsByName, request, reply) });
  }
}
