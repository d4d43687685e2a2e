/**
 * How the gateway logs a request that ended in an error. A client's mistake (any 4xx) or an
 * expected refusal (an app that cannot run on this machine, no runner free, a timeout) is an answer
 * the server meant to give: it is logged at info or warn with its code and message, and without a
 * stack, which would only point at the line that raised it. Anything else is a fault of the server
 * or of an app, and is logged at error with the stack of what was thrown.
 * @module
 */
import type { FastifyRequest } from "fastify";
import { ERRORS, type ErrorCode, type ErrorDefinition, type PlatformError } from "../core/errors.js";

export type RequestErrorLevel = "info" | "warn" | "error";

/**
 * 5xx answers that describe the state of the platform rather than a bug: the registry marks most
 * of them `retryable` (no runner could be scheduled, the runner went away, a timeout); an app
 * unavailable here says what to install, and its 503 is the whole report.
 */
const EXPECTED_SERVER_ERRORS: ReadonlySet<ErrorCode> = new Set(["ERR_APP_UNAVAILABLE"]);

export function requestErrorLevel(error: PlatformError): RequestErrorLevel {
  const definition: ErrorDefinition = ERRORS[error.code];
  // Retryable answers (a full queue, no runner) are worth an operator's look even below 500.
  if (definition.retryable === true) return "warn";
  if (error.status < 500) return "info";
  return EXPECTED_SERVER_ERRORS.has(error.code) ? "warn" : "error";
}

/**
 * Logs `error`, the answer sent for `request`, on the request's logger (which adds its id).
 * `thrown` is what the handler threw: for an internal error, the original exception, whose stack is
 * the one worth having.
 */
export function logRequestError(request: FastifyRequest, error: PlatformError, thrown: unknown = error): void {
  const log = request.log;
  // The path without its query: signed file URLs carry their signature there.
  const fields = { code: error.code, status: error.status, method: request.method, path: request.url.split("?")[0] };
  const level = requestErrorLevel(error);
  if (level === "error") {
    log.error({ ...fields, err: thrown }, "request failed");
    return;
  }
  // Which fields a 422 refused, not their values (inputs may be private).
  const refused = error.fieldErrors?.map((f) => f.loc.join("."));
  log[level]({ ...fields, ...(refused?.length ? { fields: refused } : {}) }, error.message);
}
