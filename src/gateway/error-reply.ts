/**
 * Errors in fal's shape: any thrown value as a PlatformError, and the answer that carries it (fal's
 * body and headers, and Darkroom's own code).
 * @module
 */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { ERRORS, isPlatformError, PlatformError, type ErrorDefinition } from "../core/errors.js";
import { outageError } from "../core/outage-errors.js";
import { logRequestError } from "./error-log.js";

/** Maps any thrown value to the fal error shape. */
export function toPlatformError(err: unknown): PlatformError {
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

export function sendError(reply: FastifyReply, error: PlatformError): FastifyReply {
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

/** The answer for a path that no route serves, logged like every error. */
export function sendNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const error = new PlatformError("ERR_PATH_NOT_FOUND", { message: `Path ${new URL(request.url, "http://x").pathname} not found` });
  logRequestError(request, error);
  return sendError(reply, error);
}
