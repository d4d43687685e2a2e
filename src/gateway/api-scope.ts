/**
 * Another API's routes under their own prefix (OpenAI's at /openai/v1, Replicate's at
 * /replicate/v1): every error there, an unknown route's included, is answered in that API's shape,
 * so that its SDK raises its own errors; thrown ones are logged as the fal routes' are.
 * @module
 */
import type { FastifyInstance, FastifyReply } from "fastify";
import { PlatformError } from "../core/errors.js";
import { logRequestError } from "./error-log.js";
import { toPlatformError } from "./error-reply.js";

export interface ApiScope {
  /** The path the API's routes are under, e.g. `/openai/v1`. */
  prefix: string;
  /** The API's name as an unknown route's message gives it, e.g. `OpenAI`. */
  name: string;
  /** Sends `error` in the API's shape. */
  sendError: (reply: FastifyReply, error: PlatformError) => FastifyReply;
}

/** Registers the routes `routes` adds to the scope under `api.prefix`, with the API's error answers. */
export function registerApiScope(app: FastifyInstance, api: ApiScope, routes: (scope: FastifyInstance) => void): void {
  void app.register(
    async (scope) => {
      scope.setErrorHandler((err, request, reply) => {
        const error = toPlatformError(err);
        logRequestError(request, error, err);
        return api.sendError(reply, error);
      });
      scope.setNotFoundHandler((request, reply) =>
        api.sendError(reply, new PlatformError("ERR_PATH_NOT_FOUND", { message: `Unknown ${api.name} route ${request.method} ${new URL(request.url, "http://x").pathname}` })),
      );
      routes(scope);
    },
    { prefix: api.prefix },
  );
}
