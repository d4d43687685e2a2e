/**
 * The body of a webhook delivery, byte for byte what fal sends (docs/api.md, Webhooks):
 *
 * ```json
 * {"request_id":"…","gateway_request_id":"…","status":"OK","payload":{…output…}}
 * {"request_id":"…","gateway_request_id":"…","status":"ERROR","error":"Invalid status code: 422","payload":{"detail":[…]}}
 * ```
 *
 * The body is built once when the request finishes and stored in the outbox as a string, because the
 * signature covers the exact bytes: every retry must send the same ones.
 * @module
 */
import type { RequestRecord } from "../core/types.js";

export interface WebhookBody {
  request_id: string;
  /**
   * fal has a gateway-level id besides the request id; Darkroom's gateway and queue share one id, so
   * both fields carry it.
   */
  gateway_request_id: string;
  status: "OK" | "ERROR";
  /** Present on ERROR only. */
  error?: string;
  /** The output on OK; the app's error body (or null) on ERROR. */
  payload: unknown;
  /** Set, with `payload: null`, when the output could not be turned into JSON. */
  payload_error?: string;
}

/** JSON-encodes `value`, or explains why that is impossible (cycles, BigInt, a bare undefined...). */
function toJsonValue(value: unknown): { ok: true; value: unknown } | { ok: false; reason: string } {
  try {
    const text = JSON.stringify(value);
    if (text === undefined) return { ok: false, reason: `output of type ${typeof value} is not JSON` };
    // Round-trip so that what we embed is exactly what JSON can carry (no functions, no toJSON surprises).
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    return { ok: false, reason: `output is not valid JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/**
 * fal reports an app that answered with an error status as `"Invalid status code: <n>"`; platform
 * failures (timeouts, lost runners, cancellation) carry an `error_type` and keep their own message.
 */
function errorText(record: RequestRecord): string {
  const status = record.statusCode;
  const isAppStatus = record.errorType === null && status !== null && (status < 200 || status > 299);
  if (isAppStatus) return `Invalid status code: ${status}`;
  if (record.error) return record.error;
  return record.state === "CANCELLED" ? "Request cancelled" : "Request failed";
}

/** Builds the webhook body of a finished request. Throws for a request that has not finished. */
export function buildWebhookBody(record: RequestRecord): WebhookBody {
  const base = { request_id: record.id, gateway_request_id: record.id };
  switch (record.state) {
    case "SUCCEEDED": {
      const json = toJsonValue(record.output);
      return json.ok
        ? { ...base, status: "OK", payload: json.value }
        : { ...base, status: "OK", payload: null, payload_error: json.reason };
    }
    case "FAILED":
    case "CANCELLED": {
      const error = errorText(record);
      if (record.output === null || record.output === undefined) return { ...base, status: "ERROR", error, payload: null };
      const json = toJsonValue(record.output);
      return json.ok
        ? { ...base, status: "ERROR", error, payload: json.value }
        : { ...base, status: "ERROR", error, payload: null, payload_error: json.reason };
    }
    default:
      throw new Error(`request ${record.id} is ${record.state}; webhooks are sent only for finished requests`);
  }
}

/** The exact body text to store and sign. Key order follows fal's examples. */
export function serializeWebhookBody(record: RequestRecord): string {
  return JSON.stringify(buildWebhookBody(record));
}
