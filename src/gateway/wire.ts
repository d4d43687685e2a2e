/**
 * The fal wire shapes of the queue API: status bodies, request URLs, result replies.
 * @module
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { isTerminal, type Progress, type RequestLog, type RequestRecord } from "../core/types.js";
import { billableUnitsOf, runMsOf } from "../pricing/billable-units.js";

export type WireStatus = "IN_QUEUE" | "IN_PROGRESS" | "COMPLETED";

export function wireStatus(record: RequestRecord): WireStatus {
  if (record.state === "QUEUED") return "IN_QUEUE";
  if (record.state === "RUNNING") return "IN_PROGRESS";
  return "COMPLETED";
}

/** Absolute base URL the client used, from the Host header (or the configured public URL). */
export function baseUrlOf(request: FastifyRequest, publicUrl: string | null): string {
  if (publicUrl) return publicUrl.replace(/\/+$/, "");
  // Fastify's host and protocol: X-Forwarded-Host and -Proto when the peer is a proxy that
  // --trust-proxy names, else the request's own Host (a caller elsewhere cannot set them).
  return `${request.protocol}://${request.host}`;
}

/**
 * Base of the URLs that serve stored files: `--files-url` when set (an origin of their own, so a
 * stored page never shares one with the Playground's key), else the base URL the client used.
 */
export function filesBaseOf(request: FastifyRequest, config: { publicUrl: string | null; filesUrl: string | null }): string {
  return config.filesUrl ?? baseUrlOf(request, config.publicUrl);
}

export interface RequestUrls {
  response_url: string;
  status_url: string;
  cancel_url: string;
}

/** Queue URLs are addressed by `{ns?}/{owner}/{alias}` only (docs/api.md). */
export function requestUrls(baseUrl: string, appId: string, requestId: string): RequestUrls {
  const response = `${baseUrl}/queue/${appId}/requests/${requestId}`;
  return { response_url: response, status_url: `${response}/status`, cancel_url: `${response}/cancel` };
}

export interface StatusBodyOptions {
  /** Logs to include; null omits them (the key stays, as Python's client requires). */
  logs: RequestLog[] | null;
  queuePosition: number | null;
  progress?: Progress | undefined;
}

export function statusBody(record: RequestRecord, options: StatusBodyOptions): Record<string, unknown> {
  const status = wireStatus(record);
  const body: Record<string, unknown> = {
    status,
    request_id: record.id,
    ...requestUrls(record.baseUrl, record.appId, record.id),
  };
  if (status === "IN_QUEUE") {
    body["queue_position"] = options.queuePosition ?? 0;
    return body;
  }
  body["logs"] = options.logs;
  if (status === "IN_PROGRESS") {
    if (options.progress) body["progress"] = options.progress;
    return body;
  }
  const inference = record.startedAt !== null && record.finishedAt !== null ? (record.finishedAt - record.startedAt) / 1000 : null;
  body["metrics"] = { inference_time: inference };
  if (record.state !== "SUCCEEDED") {
    body["error"] = record.error ?? "Request failed";
    body["error_type"] = errorTypeOf(record);
  }
  return body;
}

/**
 * fal's `error_type` of a failed request. Platform failures record theirs; an app's own error (an
 * exception, or an error status it chose) records none, and is typed by its status the way fal's
 * gateway sees a runner's answer: 5xx is the runner's server error, anything else a bad request. The
 * status payload and the result's `X-Fal-Error-Type` both use this, so they always agree.
 */
export function errorTypeOf(record: RequestRecord): string {
  if (record.errorType) return record.errorType;
  return (record.statusCode ?? 500) >= 500 ? "runner_server_error" : "bad_request";
}

/** True when the request ended because its x-fal-request-timeout start deadline passed. */
export function isUserStartTimeout(record: RequestRecord): boolean {
  return record.errorType === "request_timeout" && record.startDeadline !== null && record.startedAt === null;
}

/** Sends a terminal request's outcome as the model returned it: status, body, fal headers. */
export function sendOutcome(reply: FastifyReply, record: RequestRecord): FastifyReply {
  if (!isTerminal(record.state)) throw new Error("sendOutcome on a request that is not finished");
  reply.header("x-fal-request-id", record.id);
  if (record.cache) reply.header("x-darkroom-cache-status", record.cache);
  if (record.state !== "SUCCEEDED") reply.header("x-fal-error-type", errorTypeOf(record));
  if (isUserStartTimeout(record)) reply.header("x-fal-request-timeout-type", "user");
  // On every outcome, as fal sends it: what the request bills (0 for failures, 1 for a success whose
  // app billed nothing), the same units its usage is costed by.
  reply.header("x-fal-billable-units", String(billableUnitsOf({ state: record.state, billableUnits: record.billableUnits, runMs: runMsOf(record) })));
  // Platform outcomes written by the store (a queued request cancelled, a start deadline) carry no
  // body, only error and error_type: clients still need fal's `{detail, error_type}` error shape.
  const body =
    record.state !== "SUCCEEDED" && (record.output === null || record.output === undefined)
      ? { detail: record.error ?? "Request failed", ...(record.errorType ? { error_type: record.errorType } : {}) }
      : (record.output ?? null);
  return reply.code(record.statusCode ?? 200).type("application/json").send(JSON.stringify(body));
}
