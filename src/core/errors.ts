/**
 * The one error registry. Every error a client can see has a code here, an HTTP status, and the
 * fal `error_type` that goes into `{detail, error_type}` and the `X-Fal-Error-Type` header.
 * `docs/errors.md` lists the same codes; a test keeps the two in sync.
 * @module
 */

export interface ErrorDefinition {
  /** HTTP status sent to the client. */
  readonly status: number;
  /** fal's `error_type` (docs/errors.md); undefined for plain app/HTTP errors that fal sends without one. */
  readonly errorType?: string;
  /** Default human message. */
  readonly message: string;
  /** Whether a queue retry may help (fal's `X-Fal-Retryable`). */
  readonly retryable?: boolean;
  /**
   * Whether the scheduler runs the request again, while it has attempts left, when its run ends
   * with this error (src/scheduler/run-outcome.ts). Not the same as `retryable`, the client's hint.
   */
  readonly requeue?: boolean;
}

export const ERRORS = {
  // Client input
  ERR_BAD_JSON: { status: 400, errorType: "bad_request", message: "Malformed JSON body" },
  ERR_BAD_REQUEST: { status: 400, errorType: "bad_request", message: "Bad request" },
  ERR_VALIDATION: { status: 422, message: "Input validation failed" },
  ERR_BODY_TOO_LARGE: { status: 413, errorType: "bad_request", message: "Request body too large" },
  ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, errorType: "bad_request", message: "Unsupported content type" },
  // Auth
  ERR_UNAUTHORIZED: { status: 401, errorType: "unauthorized", message: "Missing or invalid credentials" },
  ERR_FORBIDDEN: { status: 403, errorType: "forbidden", message: "This key may not do that" },
  ERR_AUTH_THROTTLED: { status: 429, errorType: "rate_limited", message: "Too many failed key checks; try again later" },
  ERR_RATE_LIMITED: { status: 429, errorType: "rate_limited", message: "Too many requests this minute; try again later", retryable: true },
  ERR_BUDGET_EXHAUSTED: { status: 403, errorType: "budget_exhausted", message: "The monthly budget is spent" },
  // Lookup
  ERR_APP_NOT_FOUND: { status: 404, errorType: "not_found", message: "Application not found" },
  ERR_PATH_NOT_FOUND: { status: 404, errorType: "not_found", message: "Path not found" },
  ERR_MODEL_NOT_FOUND: { status: 404, errorType: "model_not_found", message: "Model not found" },
  ERR_REQUEST_NOT_FOUND: { status: 404, errorType: "not_found", message: "Request not found" },
  ERR_FILE_NOT_FOUND: { status: 404, errorType: "not_found", message: "File not found" },
  ERR_KEY_NOT_FOUND: { status: 404, errorType: "not_found", message: "Key not found" },
  ERR_TENANT_NOT_FOUND: { status: 404, errorType: "not_found", message: "Tenant not found" },
  ERR_WORKFLOW_NOT_FOUND: { status: 404, errorType: "not_found", message: "Workflow not found" },
  // Queue
  ERR_STILL_IN_PROGRESS: { status: 400, errorType: "bad_request", message: "Request is still in progress" },
  ERR_ALREADY_COMPLETED: { status: 400, errorType: "bad_request", message: "Request already completed" },
  ERR_QUEUE_FULL: { status: 429, errorType: "queue_full", message: "Queue is full", retryable: true },
  ERR_IDEMPOTENCY_KEY_REUSED: { status: 422, errorType: "idempotency_key_reused", message: "This Idempotency-Key was used with a different request" },
  ERR_IDEMPOTENCY_IN_PROGRESS: { status: 409, errorType: "idempotency_in_progress", message: "A request with this Idempotency-Key is still being submitted", retryable: true },
  ERR_APP_UNAVAILABLE: { status: 503, errorType: "app_unavailable", message: "Application is unavailable" },
  // Storage and outbound fetches
  ERR_SIGNATURE_INVALID: { status: 403, errorType: "forbidden", message: "Signed URL is invalid or expired" },
  ERR_UPLOAD_URL_USED: { status: 409, errorType: "bad_request", message: "This upload URL has already been used: each signed upload URL writes its file once" },
  ERR_FETCH_REFUSED: { status: 422, errorType: "bad_request", message: "URL refused" },
  ERR_FETCH_FAILED: { status: 422, errorType: "bad_request", message: "Could not fetch URL" },
  ERR_FILE_TOO_LARGE: { status: 413, errorType: "bad_request", message: "File too large" },
  ERR_STORAGE_QUOTA: { status: 413, errorType: "quota_exceeded", message: "This key's storage quota is used up" },
  ERR_RANGE_NOT_SATISFIABLE: { status: 416, errorType: "bad_request", message: "Range not satisfiable" },
  // Runtime (fal's request error types, docs/errors.md)
  ERR_REQUEST_TIMEOUT: { status: 504, errorType: "request_timeout", message: "Request timed out", retryable: true, requeue: true },
  ERR_STARTUP_TIMEOUT: { status: 504, errorType: "startup_timeout", message: "Runner startup timed out", retryable: true },
  ERR_RUNNER_SCHEDULING: { status: 503, errorType: "runner_scheduling_failure", message: "No runner could be scheduled", retryable: true },
  ERR_RUNNER_DISCONNECTED: { status: 503, errorType: "runner_disconnected", message: "Runner disconnected", retryable: true, requeue: true },
  ERR_RUNNER_SERVER_ERROR: { status: 500, errorType: "runner_server_error", message: "Internal Server Error" },
  ERR_RUNNER_INCOMPLETE: { status: 502, errorType: "runner_incomplete_response", message: "Runner returned an incomplete response" },
  ERR_LEASE_LOST: { status: 409, errorType: "lease_lost", message: "The runner no longer holds this request" },
  ERR_CLIENT_CANCELLED: { status: 499, errorType: "client_cancelled", message: "Request cancelled by client" },
  ERR_CLIENT_DISCONNECTED: { status: 499, errorType: "client_disconnected", message: "Client disconnected" },
  ERR_APP_ERROR: { status: 500, message: "Application error" },
  ERR_INTERNAL: { status: 500, errorType: "internal_error", message: "Internal error" },
  // Outages of what the gateway stands on: nothing the client did, and worth retrying.
  ERR_INSUFFICIENT_STORAGE: { status: 507, errorType: "insufficient_storage", message: "The server's disk is full", retryable: true },
  ERR_GATEWAY_BUSY: { status: 503, errorType: "service_unavailable", message: "The gateway is busy with other large requests", retryable: true },
  // A run that could not start for it (its stored input unreadable) goes back to the queue.
  ERR_STORE_UNAVAILABLE: { status: 503, errorType: "service_unavailable", message: "The database or file storage cannot be reached", retryable: true, requeue: true },
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof ERRORS;

const PLATFORM_ERROR_MARK = Symbol.for("darkroom.PlatformError");

/** A field error in FastAPI/Pydantic shape, as fal's 422 bodies carry them. */
export interface FieldError {
  loc: (string | number)[];
  msg: string;
  type: string;
  input?: unknown;
  ctx?: Record<string, unknown>;
}

export interface PlatformErrorOptions {
  message?: string;
  cause?: unknown;
  /** For ERR_VALIDATION: the `detail[]` entries. */
  fieldErrors?: FieldError[];
  /** Override the registry's HTTP status (e.g. an app error's own status code). */
  status?: number;
  /** Extra response headers (e.g. `X-Fal-Request-Timeout-Type`). */
  headers?: Record<string, string>;
}

/**
 * The platform's error type. It crosses process boundaries as {@link SerializedError}; `instanceof`
 * works across module copies through a `Symbol.for` marker.
 */
export class PlatformError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly errorType: string | undefined;
  readonly fieldErrors: FieldError[] | undefined;
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, options: PlatformErrorOptions = {}) {
    const def: ErrorDefinition = ERRORS[code];
    super(options.message ?? def.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PlatformError";
    this.code = code;
    this.status = options.status ?? def.status;
    this.errorType = def.errorType;
    this.fieldErrors = options.fieldErrors;
    this.headers = options.headers ?? {};
    Object.defineProperty(this, PLATFORM_ERROR_MARK, { value: true });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && PLATFORM_ERROR_MARK in value;
  }

  /** The JSON body fal's clients expect for this error. */
  toBody(): Record<string, unknown> {
    if (this.fieldErrors) return { detail: this.fieldErrors };
    return this.errorType ? { detail: this.message, error_type: this.errorType } : { detail: this.message };
  }
}

export function isPlatformError(value: unknown): value is PlatformError {
  return value instanceof PlatformError;
}

/** The wire form of an error that crosses from a runner to the scheduler. */
export interface SerializedError {
  code: ErrorCode;
  message: string;
  status?: number;
  fieldErrors?: FieldError[];
}

export function serializeError(err: unknown): SerializedError {
  if (isPlatformError(err)) {
    return {
      code: err.code,
      message: err.message,
      status: err.status,
      ...(err.fieldErrors ? { fieldErrors: err.fieldErrors } : {}),
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: "ERR_APP_ERROR", message };
}

export function deserializeError(s: SerializedError): PlatformError {
  const code: ErrorCode = s.code in ERRORS ? s.code : "ERR_INTERNAL";
  return new PlatformError(code, {
    message: s.message,
    ...(s.status !== undefined ? { status: s.status } : {}),
    ...(s.fieldErrors ? { fieldErrors: s.fieldErrors } : {}),
  });
}

/** Shortcut for a 422 with one field error, as app handlers raise it. */
export function fieldError(field: string | (string | number)[], msg: string, type = "value_error"): PlatformError {
  const loc = ["body", ...(Array.isArray(field) ? field : [field])];
  return new PlatformError("ERR_VALIDATION", { message: msg, fieldErrors: [{ loc, msg, type }] });
}
