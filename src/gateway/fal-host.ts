/**
 * One route table per fal host (`fal.run`, `queue.fal.run`, `rest.fal.ai`), matched by find-my-way,
 * the router Fastify itself runs on. A host's direct routes here (`/queue/...`) and the proxy's
 * `x-fal-target-url` look a call up in the same table, so both know the same paths and answer
 * everything else with the same 404.
 * @module
 */
import FindMyWay, { type HTTPMethod } from "find-my-way";
import { PlatformError } from "../core/errors.js";
import { APP_NAMESPACES } from "./app-path.js";
import type { GatewayContext } from "./context.js";
import type { FalCall } from "./fal-call.js";

/** A matched route's path parameters, decoded. */
export type FalRouteParams = Readonly<Record<string, string | undefined>>;

/** The methods a fal host's routes (and the proxy) take; a table answers those it has no route for with its 404. */
export const FAL_HOST_METHODS: HTTPMethod[] = ["GET", "HEAD", "POST", "PUT", "DELETE"];

export type FalRouteHandler = (ctx: GatewayContext, call: FalCall, params: FalRouteParams) => Promise<unknown>;

export interface FalRoute {
  method: HTTPMethod | HTTPMethod[];
  /** A find-my-way path: `/tokens`, `/:owner/:alias/requests/:id/status`, a trailing `*`. */
  path: string;
  handler: FalRouteHandler;
}

export interface FalHostSpec {
  /** The host names fal's clients call, as the proxy's `x-fal-target-url` names them. */
  hostnames: readonly string[];
  /** The first path segment of the host's direct routes here: `queue` for `/queue/...`. */
  prefix: string;
  /** What a path on this host looks like, told in its 404 (`/{owner}/{alias}[/path]`). */
  shape?: string;
  routes: readonly FalRoute[];
}

/**
 * Routes for every way fal's clients name an app: `/{owner}/{alias}{suffix}`, and the same under
 * each namespace (`/workflows/{owner}/{alias}{suffix}`). The handler reads the app from
 * `owner`/`alias` (appIdOf); a namespace does not change which app is called.
 */
export function appRoutes(method: HTTPMethod | HTTPMethod[], suffix: string, handler: FalRouteHandler): FalRoute[] {
  return ["", ...APP_NAMESPACES.map((namespace) => `/${namespace}`)].map((namespace) => ({ method, path: `${namespace}/:owner/:alias${suffix}`, handler }));
}

/** The app an `appRoutes` route names: `owner/alias`. */
export function appIdOf(params: FalRouteParams): string {
  return `${params["owner"] ?? ""}/${params["alias"] ?? ""}`;
}

/** The path after the app in an `appRoutes` route that ends in `/*` (empty for the bare app). */
export function restOf(params: FalRouteParams): string {
  return params["*"] ?? "";
}

export class FalHost {
  readonly hostnames: readonly string[];
  readonly prefix: string;
  readonly #shape: string | undefined;
  readonly #router = FindMyWay({ maxParamLength: 1000 });

  constructor(spec: FalHostSpec) {
    this.hostnames = spec.hostnames;
    this.prefix = spec.prefix;
    this.#shape = spec.shape;
    // The handler travels as the route's store: find-my-way's own handler signature is Node's (req, res).
    for (const route of spec.routes) this.#router.on(route.method, route.path, () => undefined, route.handler);
  }

  /** Serves a call made on this host, or throws its 404. */
  async serve(ctx: GatewayContext, call: FalCall): Promise<unknown> {
    // Matched on the decoded segments put back together: `//` and a trailing `/` change nothing, and
    // an encoded `/` inside a segment stays inside it (find-my-way decodes each parameter once).
    const path = `/${call.segments.map(encodeURIComponent).join("/")}`;
    const method = call.method.toUpperCase();
    const found = this.#router.find(method as HTTPMethod, path);
    if (!found) {
      const shape = this.#shape ? ` (expected ${this.#shape})` : "";
      throw new PlatformError("ERR_PATH_NOT_FOUND", { message: `${method} ${path} not found on ${this.hostnames[0]}${shape}` });
    }
    return (found.store as FalRouteHandler)(ctx, call, found.params);
  }
}
