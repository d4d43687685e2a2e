/**
 * A call to one of fal's hosts (`fal.run`, `queue.fal.run`, `rest.fal.ai`), however it arrived: on
 * the host's own path prefix, or through the proxy's `x-fal-target-url`; and the app lookups the
 * hosts start with.
 * @module
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { PlatformError } from "../core/errors.js";
import type { AppManifest, EndpointManifest } from "../core/types.js";
import { UnparsedInput } from "../core/unparsed-input.js";
import { pathSegments } from "./app-path.js";
import { appAllowed, requirePrincipal, type GatewayContext } from "./context.js";
import { checkUnparsedInput } from "./json-body.js";

/** A fal API call, however it arrived: a direct route or the proxy's `x-fal-target-url`. */
export interface FalCall {
  method: string;
  segments: string[];
  query: URLSearchParams;
  request: FastifyRequest;
  reply: FastifyReply;
}

/** The call `url` makes on a fal host; `prefix`, the host's first path segment here, is dropped. */
export function falCallOf(url: URL, request: FastifyRequest, reply: FastifyReply, prefix?: string): FalCall {
  const segments = pathSegments(url.pathname);
  if (prefix !== undefined && segments[0] === prefix) segments.shift();
  return { method: request.method, segments, query: url.searchParams, request, reply };
}

export function findApp(ctx: GatewayContext, appId: string): AppManifest {
  const app = ctx.scheduler.app(appId);
  if (!app) throw new PlatformError("ERR_APP_NOT_FOUND", { message: `Application '${appId}' not found` });
  return app;
}

export function assertAvailable(app: AppManifest): void {
  if (app.unavailable) {
    throw new PlatformError("ERR_APP_UNAVAILABLE", { message: `${app.id} is unavailable: ${app.unavailable.reason}. Remedy: ${app.unavailable.remedy}` });
  }
}

export function assertAppAllowed(call: FalCall, app: AppManifest): void {
  if (!appAllowed(requirePrincipal(call.request), app.id)) {
    throw new PlatformError("ERR_FORBIDDEN", { message: `This token is not valid for ${app.id}` });
  }
}

export function findEndpoint(app: AppManifest, path: string, kinds: EndpointManifest["kind"][]): EndpointManifest | undefined {
  return app.endpoints.find((e) => e.path === path && kinds.includes(e.kind));
}

/**
 * Validates an app call's input against its endpoint's schema: at once when it was parsed, on a body
 * worker when it is a large input kept unparsed (json-body.ts). Throws fal's 422.
 */
export async function validateAppInput(ctx: GatewayContext, endpoint: EndpointManifest, input: unknown): Promise<void> {
  if (input instanceof UnparsedInput) return checkUnparsedInput(input, endpoint.input);
  ctx.validator.validate(endpoint.input, input);
}
