/**
 * Errors in OpenAI's shape (`{error: {message, type, param, code}}`) and with OpenAI's statuses, so
 * that the `openai` SDK raises its own classes: a bad parameter is 400 (`BadRequestError`), not fal's
 * 422; an unknown model 404; a missing key 401; a refused rate 429 with `Retry-After`.
 * @module
 */
import type { FastifyReply } from "fastify";
import type { PlatformError } from "../../core/errors.js";

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

function typeOf(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

export function openAiError(error: PlatformError): { status: number; body: OpenAiErrorBody } {
  // OpenAI answers a parameter it does not take with 400; fal's 422 carries the same field errors.
  const status = error.status === 422 ? 400 : error.status;
  const field = error.fieldErrors?.[0];
  const param = field ? String(field.loc.filter((part) => part !== "body").join(".")) || null : null;
  const message = field ? `${param ? `${param}: ` : ""}${field.msg}` : error.message;
  return { status, body: { error: { message, type: typeOf(status), param, code: error.errorType ?? null } } };
}

export function sendOpenAiError(reply: FastifyReply, error: PlatformError): FastifyReply {
  const { status, body } = openAiError(error);
  for (const [name, value] of Object.entries(error.headers ?? {})) reply.header(name, value);
  return reply.code(status).type("application/json").send(JSON.stringify(body));
}
