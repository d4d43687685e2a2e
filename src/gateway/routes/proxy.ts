/**
 * The official fal proxy protocol: `@fal-ai/client` with `proxyUrl` sends every call to one URL and
 * names the real target in `x-fal-target-url`. We dispatch on the target's host to the same handlers
 * the direct routes use, so no request is forwarded anywhere.
 * @module
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { PlatformError } from "../../core/errors.js";
import { pathSegments } from "../app-path.js";
import type { GatewayContext } from "../context.js";
import { handleQueueCall, type FalCall } from "./queue.js";
import { handleRestCall } from "./rest.js";
import { handleRunCall } from "./run.js";

const RUN_HOSTS = new Set(["fal.run", "gateway.alpha.fal.ai"]);
const QUEUE_HOSTS = new Set(["queue.fal.run", "queue.falrun.com"]);
const REST_HOSTS = new Set(["rest.fal.ai", "rest.alpha.fal.ai"]);

export async function handleFalProxy(ctx: GatewayContext, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const header = request.headers["x-fal-target-url"];
  const target = Array.isArray(header) ? header[0] : header;
  if (!target) throw new PlatformError("ERR_BAD_REQUEST", { message: "Missing the x-fal-target-url header" });
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new PlatformError("ERR_BAD_REQUEST", { message: "x-fal-target-url is not a URL" });
  }
  const call: FalCall = { method: request.method, segments: pathSegments(url.pathname), query: url.searchParams, request, reply };
  if (QUEUE_HOSTS.has(url.hostname)) return handleQueueCall(ctx, call);
  if (RUN_HOSTS.has(url.hostname)) return handleRunCall(ctx, call);
  if (REST_HOSTS.has(url.hostname)) return handleRestCall(ctx, call);
  throw new PlatformError("ERR_BAD_REQUEST", { message: `x-fal-target-url host ${url.hostname} is not served here` });
}
