/**
 * The playground's HTTP client: the platform API, the queue, storage uploads and status streams,
 * all on the server that served the page, with the signed-in key.
 * @module
 */
import { errorMessageOf, errorTypeOf, fieldErrorsOf } from "./lib/fal-errors.js";
import { parseRetryAfter } from "./lib/limit-refusal.js";
import type { LimitsView } from "./lib/limits.js";
import type { FieldError, JsonSchema } from "./lib/schema-form.js";
import { SseParser } from "./lib/sse.js";

export interface ModelEndpoint {
  path: string;
  kind: "http" | "stream" | "realtime";
  input_schema: JsonSchema;
  output_schema: JsonSchema;
}

export interface ModelEntry {
  endpoint_id: string;
  metadata: {
    display_name: string;
    category: string;
    description: string;
    tags: string[];
    thumbnail_url: string | null;
    license: string | null;
  };
  availability: { available: true } | { available: false; reason: string; remedy: string };
  endpoints: ModelEndpoint[];
}

export interface LogLine {
  message: string;
  level: string;
  source?: string;
  timestamp: string;
}

export interface QueueStatus {
  status: "IN_QUEUE" | "IN_PROGRESS" | "COMPLETED";
  request_id: string;
  queue_position?: number | null;
  logs?: LogLine[] | null;
  progress?: { step: number; total: number; fraction: number; message?: string | null } | null;
  metrics?: { inference_time?: number | null } | null;
  error?: string | null;
  error_type?: string | null;
  /** Darkroom addition: the latest partial result the handler emitted while running. */
  partial?: unknown;
}

/** A registered workflow as `GET /v1/workflows/{owner}/{name}` answers (docs/workflows.md). */
export interface WorkflowView {
  id: string;
  name: string;
  title: string;
  description?: string;
  /** `{nodes, output?, schema?}` in fal's format. */
  contents: Record<string, unknown>;
  /** The registry's checks run again on read, since the apps it calls may have changed: `{loc, msg, type}`. */
  problems?: unknown[];
  created_at: string;
  updated_at: string;
}

export type RequestState = "QUEUED" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED";

export interface RequestSummary {
  request_id: string;
  endpoint_id: string;
  app_id: string;
  state: RequestState;
  mode: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  attempt: number;
  error: string | null;
  error_type: string | null;
}

export interface RequestDetail extends QueueStatus {
  app_id: string;
  endpoint: string;
  state: RequestState;
  input: unknown;
  output: unknown;
  status_code: number | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  billable_units: number | null;
  /** HIT or JOINED when the result was reused (docs/result-reuse.md). */
  cache?: "HIT" | "JOINED" | null;
  /** A workflow request's run nodes: each one's request id, and its state once submitted (null before). */
  workflow_nodes?: { node_id: string; app: string | null; request_id: string; state: RequestState | null }[];
}

export interface RunnerView {
  id: string;
  state: "starting" | "ready" | "draining";
  pid: number | null;
  in_flight: number;
  spawned_at: string | number | null;
  ready_at: string | number | null;
}

/** One runner start, phase by phase (null: not observed; a spare's spawn was paid before it was taken). */
export interface ColdStartView {
  runner: string;
  spare: boolean;
  began_at: number;
  spawn_ms: number | null;
  runtime_ms: number | null;
  import_ms: number | null;
  setup_ms: number;
  ready_ms: number;
  first_request_ms: number | null;
}

export interface AppOps {
  app: string;
  runners: RunnerView[];
  cold_starts: number;
  /** The latest starts, newest last (absent from servers older than this Playground). */
  recent_cold_starts?: ColdStartView[];
  setup_failures: number;
  last_setup_error: string | null;
  recent_errors: { at: string | number; request_id: string | null; message: string }[];
  queue_depth: number;
}

export interface SpareRunnersView {
  target: number;
  ready: number;
  starting: number;
}

export interface OpsSnapshot {
  uptime_s: number;
  spare_runners?: SpareRunnersView;
  apps: AppOps[];
}

export interface KeyView {
  id: string;
  name: string;
  scope: "admin" | "api";
  /** The tenant the key's calls count as: the key's own id when it names none. */
  tenant: string;
  limits: LimitsView;
  created_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
}

export interface TenantView {
  name: string;
  weight: number;
  limits: LimitsView;
  /** Active keys that belong to it. */
  keys: number;
  /** False for a tenant that keys name but nobody configured (weight 1, no limits). */
  configured: boolean;
  created_at: string | null;
  updated_at: string | null;
}

export class ApiError extends Error {
  readonly status: number;
  readonly body: unknown;
  readonly errorType: string | null;
  readonly fieldErrors: FieldError[];
  /** Seconds the server asked to wait (`Retry-After`), null when it did not. */
  readonly retryAfterSeconds: number | null;

  constructor(status: number, body: unknown, headers?: Headers) {
    super(errorMessageOf(body, status));
    this.name = "ApiError";
    this.status = status;
    this.body = body;
    this.errorType = errorTypeOf(body);
    this.fieldErrors = fieldErrorsOf(body);
    this.retryAfterSeconds = parseRetryAfter(headers?.get("retry-after"));
  }
}

export interface RawResponse {
  status: number;
  ok: boolean;
  body: unknown;
  headers: Headers;
}

async function readBody(res: Response): Promise<unknown> {
  const text = await res.text();
  if (text === "") return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Files above this go up in parts (fal's client switches at 90 MiB; smaller parts suit a browser on a slow link). */
export const MULTIPART_THRESHOLD = 8 * 1024 * 1024;
/** S3's smallest part size (only the last may be smaller). */
export const PART_SIZE = 5 * 1024 * 1024;
const PART_CONCURRENCY = 3;
/** As fal's client: three tries per part. */
const PART_TRIES = 3;

/**
 * Sends a body with XHR rather than fetch: only XHR reports upload progress. Resolves with the
 * parsed answer; HTTP errors reject with `ApiError`.
 */
function xhrSend(method: string, url: string, body: Blob, contentType: string, onProgress: (loaded: number) => void): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.setRequestHeader("content-type", contentType);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      let answer: unknown = xhr.responseText;
      try {
        answer = JSON.parse(xhr.responseText) as unknown;
      } catch {
        // not JSON
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(answer);
      else reject(new ApiError(xhr.status, answer));
    };
    xhr.onerror = () => reject(new Error("Upload failed: the server could not be reached"));
    xhr.send(body);
  });
}

/** `owner/alias` of an endpoint id: status, result and cancel are addressed by the app alone. */
export function appIdOf(endpointId: string): string {
  return endpointId.split("/").slice(0, 2).join("/");
}

export class Api {
  readonly #key: string;

  constructor(key: string) {
    this.#key = key;
  }

  #headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Key ${this.#key}`, ...extra };
  }

  /** Any call; HTTP errors come back as values, network errors throw. */
  async raw(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<RawResponse> {
    const res = await fetch(path, {
      method,
      headers: this.#headers(body !== undefined ? { "content-type": "application/json" } : {}),
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(signal ? { signal } : {}),
    });
    return { status: res.status, ok: res.ok, body: await readBody(res), headers: res.headers };
  }

  /** A call whose HTTP errors throw `ApiError`. */
  async json<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.raw(method, path, body, signal);
    if (!res.ok) throw new ApiError(res.status, res.body, res.headers);
    return res.body as T;
  }

  /** A download (the usage CSV export): its bytes and the server's headers; HTTP errors throw `ApiError`. */
  async blob(path: string, signal?: AbortSignal): Promise<{ blob: Blob; headers: Headers }> {
    const res = await fetch(path, { headers: this.#headers(), ...(signal ? { signal } : {}) });
    if (!res.ok) throw new ApiError(res.status, await readBody(res), res.headers);
    return { blob: await res.blob(), headers: res.headers };
  }

  async models(): Promise<ModelEntry[]> {
    const out: ModelEntry[] = [];
    let cursor: string | null = "0";
    // The list is paged; a server rarely has more than one page, but nothing is lost if it does.
    while (cursor !== null) {
      const page: { models: ModelEntry[]; next_cursor: string | null } = await this.json("GET", `/v1/models?limit=500&cursor=${encodeURIComponent(cursor)}`);
      out.push(...page.models);
      cursor = page.next_cursor;
    }
    return out;
  }

  /**
   * Uploads through the storage API as fal's clients do: initiate, then one PUT of the bytes to the
   * signed URL (which needs no key); files above MULTIPART_THRESHOLD go up in parts instead.
   */
  async upload(file: Blob & { name?: string }, onProgress?: (fraction: number) => void): Promise<string> {
    const contentType = file.type || "application/octet-stream";
    const body = { content_type: contentType, ...(file.name ? { file_name: file.name } : {}) };
    if (file.size > MULTIPART_THRESHOLD) return this.#uploadMultipart(file, body, onProgress);
    const initiated = await this.json<{ upload_url: string; file_url: string }>("POST", "/rest/storage/upload/initiate", body);
    await xhrSend("PUT", initiated.upload_url, file, contentType, (loaded) => onProgress?.(loaded / Math.max(1, file.size)));
    return initiated.file_url;
  }

  /**
   * fal's multipart protocol (docs/api.md, storage): initiate-multipart, each part PUT to
   * `{upload_url path}/{n}` (answering `{partNumber, etag}`), then `…/complete` with the list.
   * A few parts go at once, and a failed part is tried again on its own.
   */
  async #uploadMultipart(file: Blob, body: Record<string, string>, onProgress?: (fraction: number) => void): Promise<string> {
    const initiated = await this.json<{ upload_url: string; file_url: string }>("POST", "/rest/storage/upload/initiate-multipart", body);
    const target = new URL(initiated.upload_url, window.location.origin);
    const partUrl = (suffix: string): string => `${target.origin}${target.pathname}/${suffix}${target.search}`;
    const count = Math.ceil(file.size / PART_SIZE);
    const loaded = new Array<number>(count).fill(0);
    const report = (): void => onProgress?.(loaded.reduce((a, b) => a + b, 0) / file.size);
    const parts: { partNumber: number; etag: string }[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const index = next++;
        const chunk = file.slice(index * PART_SIZE, Math.min(file.size, (index + 1) * PART_SIZE));
        for (let attempt = 1; ; attempt++) {
          try {
            const answer = await xhrSend("PUT", partUrl(String(index + 1)), chunk, "application/octet-stream", (n) => {
              loaded[index] = n;
              report();
            });
            const etag = typeof answer === "object" && answer !== null ? (answer as { etag?: unknown }).etag : undefined;
            if (typeof etag !== "string") throw new Error(`Part ${index + 1} was stored without an etag`);
            parts.push({ partNumber: index + 1, etag });
            loaded[index] = chunk.size;
            report();
            break;
          } catch (err) {
            loaded[index] = 0;
            // A refused signature or size will not change on a retry; a dropped connection might.
            if (attempt >= PART_TRIES || (err instanceof ApiError && err.status < 500)) throw err;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PART_CONCURRENCY, count) }, worker));
    parts.sort((a, b) => a.partNumber - b.partNumber);
    const res = await fetch(partUrl("complete"), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ parts }) });
    const completed = await readBody(res);
    if (!res.ok) throw new ApiError(res.status, completed);
    return initiated.file_url;
  }

  /**
   * Follows a queued request through `status/stream?logs=1` until it completes, calling `onStatus`
   * for each event with the full log so far. A dropped stream is reopened: its first event carries
   * every line again, so the log is replaced rather than appended then.
   */
  async follow(endpointId: string, requestId: string, onStatus: (status: QueueStatus, logs: LogLine[]) => void, signal: AbortSignal): Promise<QueueStatus> {
    const base = `/queue/${appIdOf(endpointId)}/requests/${encodeURIComponent(requestId)}`;
    let failures = 0;
    for (;;) {
      let logs: LogLine[] = [];
      let first = true;
      try {
        const res = await fetch(`${base}/status/stream?logs=1`, { headers: this.#headers({ accept: "text/event-stream" }), signal });
        if (!res.ok || !res.body) throw new ApiError(res.status, await readBody(res));
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        const parser = new SseParser();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const event of parser.push(value)) {
            if (event.event !== "message") continue;
            const status = JSON.parse(event.data) as QueueStatus;
            if (status.logs) logs = first ? [...status.logs] : [...logs, ...status.logs];
            first = false;
            failures = 0;
            onStatus(status, logs);
            if (status.status === "COMPLETED") {
              await reader.cancel().catch(() => undefined);
              return status;
            }
          }
        }
      } catch (err) {
        if (signal.aborted) throw err;
        // 4xx will not get better by retrying; transport errors and 5xx might.
        if (err instanceof ApiError && err.status < 500) throw err;
        if (++failures > 30) throw err;
      }
      await new Promise((r) => setTimeout(r, Math.min(500 * failures, 3000)));
    }
  }

  async submit(endpointId: string, input: Record<string, unknown>): Promise<{ request_id: string; queue_position: number }> {
    return this.json("POST", `/queue/${endpointId}`, input);
  }

  async result(endpointId: string, requestId: string): Promise<RawResponse> {
    return this.raw("GET", `/queue/${appIdOf(endpointId)}/requests/${encodeURIComponent(requestId)}`);
  }

  async cancel(endpointId: string, requestId: string): Promise<RawResponse> {
    return this.raw("PUT", `/queue/${appIdOf(endpointId)}/requests/${encodeURIComponent(requestId)}/cancel`);
  }

  /** A registered workflow (`owner/name`); 404 as ApiError when there is none. */
  async workflow(id: string, signal?: AbortSignal): Promise<WorkflowView> {
    return this.json("GET", `/v1/workflows/${id.split("/").map(encodeURIComponent).join("/")}`, undefined, signal);
  }

  /** Registers (or replaces) a workflow; the answer as it came, since a 422 lists the problems to show. */
  async saveWorkflow(id: string, document: unknown): Promise<RawResponse> {
    return this.raw("PUT", `/v1/workflows/${id.split("/").map(encodeURIComponent).join("/")}`, document);
  }

  /** One status of a queued request (no stream): a workflow's nodes are polled, several at a time. */
  async status(endpointId: string, requestId: string): Promise<QueueStatus> {
    return this.json("GET", `/queue/${appIdOf(endpointId)}/requests/${encodeURIComponent(requestId)}/status`);
  }

  async request(requestId: string): Promise<RequestDetail> {
    return this.json("GET", `/v1/requests/${encodeURIComponent(requestId)}`);
  }
}
