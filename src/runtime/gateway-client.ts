/**
 * The runner side's HTTP client for the runner protocol: JSON calls to one of several gateways, with
 * failover. A gateway that cannot be reached (or answers 502/503/504) is left for the next one in
 * the list; since gateways keep no runner state, the runner simply carries on there.
 * @module
 */
import { Readable } from "node:stream";
import { PlatformError, ERRORS, type ErrorCode } from "../core/errors.js";

export interface GatewayClientOptions {
  /** Gateway base URLs, e.g. ["http://10.0.0.5:8787", "http://10.0.0.6:8787"]. */
  gateways: string[];
  /** Runner token (or admin key, `id:secret`). */
  token: string;
  /** Called after the client moved to another gateway. */
  onSwitch?: (gateway: string) => void;
  /** Per-call timeout when the call sets none, ms. */
  timeoutMs?: number;
}

export interface CallOptions {
  /** Keep retrying transient failures (unreachable, 5xx) until this many ms have passed. */
  retryForMs?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
}

const TRANSIENT_STATUSES = new Set([502, 503, 504]);

/** A failure to reach any gateway, as opposed to an answer that refused the call. */
export class GatewayUnreachableError extends Error {}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

export class GatewayClient {
  readonly #gateways: string[];
  #current = 0;
  #token: string;
  readonly #options: GatewayClientOptions;

  constructor(options: GatewayClientOptions) {
    if (options.gateways.length === 0) throw new Error("at least one gateway URL is needed");
    this.#gateways = options.gateways.map((g) => g.replace(/\/+$/, ""));
    this.#token = options.token;
    this.#options = options;
  }

  get gateway(): string {
    return this.#gateways[this.#current] as string;
  }

  get token(): string {
    return this.#token;
  }

  set token(token: string) {
    this.#token = token;
  }

  #authorization(): string {
    // `id:secret` is an API key (fal's form); anything else a bearer token.
    return /^[^.:\s]+:[^\s]+$/.test(this.#token) ? `Key ${this.#token}` : `Bearer ${this.#token}`;
  }

  #switch(): void {
    if (this.#gateways.length < 2) return;
    this.#current = (this.#current + 1) % this.#gateways.length;
    this.#options.onSwitch?.(this.gateway);
  }

  /** A JSON call. Throws PlatformError for a refusal (4xx, 500) and GatewayUnreachableError when no gateway answered in time. */
  async json<T>(method: string, path: string, body?: unknown, options: CallOptions = {}): Promise<T> {
    const res = await this.request(method, path, {
      ...(body !== undefined ? { body: JSON.stringify(body), headers: { "content-type": "application/json" } } : {}),
      ...options,
    });
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** A raw call with failover; resolves with a 2xx response, throws otherwise. A streamed body cannot be replayed, so it is tried once. */
  async request(
    method: string,
    path: string,
    init: { body?: string | Readable; headers?: Record<string, string> } & CallOptions = {},
  ): Promise<Response> {
    const deadline = Date.now() + (init.retryForMs ?? 0);
    const replayable = !(init.body instanceof Readable);
    let delay = 100;
    for (let tried = 0; ; tried++) {
      const gateway = this.gateway;
      let res: Response | null = null;
      let failure: unknown = null;
      try {
        const timeout = AbortSignal.timeout(init.timeoutMs ?? this.#options.timeoutMs ?? 60_000);
        res = await fetch(`${gateway}${path}`, {
          method,
          headers: { authorization: this.#authorization(), ...init.headers },
          ...(init.body !== undefined ? { body: init.body instanceof Readable ? (Readable.toWeb(init.body) as ReadableStream) : init.body, duplex: "half" } : {}),
          signal: init.signal ? AbortSignal.any([init.signal, timeout]) : timeout,
        });
      } catch (err) {
        failure = err;
      }
      if (init.signal?.aborted) throw init.signal.reason instanceof Error ? init.signal.reason : new Error("aborted");
      if (res && !TRANSIENT_STATUSES.has(res.status)) {
        if (res.ok) return res;
        throw await errorFrom(res);
      }
      // Unreachable or overloaded: try the next gateway, with a growing pause once all were tried.
      if (res) await res.body?.cancel().catch(() => undefined);
      this.#switch();
      if (!replayable || Date.now() >= deadline) {
        throw new GatewayUnreachableError(`${method} ${path}: ${res ? `HTTP ${res.status}` : failure instanceof Error ? (failure.cause instanceof Error ? failure.cause.message : failure.message) : String(failure)} from ${gateway}`);
      }
      if ((tried + 1) % this.#gateways.length === 0) {
        await sleep(delay, init.signal);
        delay = Math.min(delay * 2, 2000);
      }
    }
  }
}

/** Turns a gateway's fal-shaped error body into a PlatformError with the registry's code where one matches. */
async function errorFrom(res: Response): Promise<PlatformError> {
  let detail: unknown = null;
  let errorType: string | null = res.headers.get("x-fal-error-type");
  try {
    const body = (await res.json()) as { detail?: unknown; error_type?: string };
    detail = body.detail;
    errorType = body.error_type ?? errorType;
  } catch {
    // not JSON
  }
  const message = typeof detail === "string" ? detail : detail === null ? `HTTP ${res.status}` : JSON.stringify(detail);
  const named = res.headers.get("x-darkroom-error-code");
  const code =
    named && named in ERRORS
      ? (named as ErrorCode)
      : ((Object.keys(ERRORS) as ErrorCode[]).find((c) => ERRORS[c].status === res.status && (ERRORS[c] as { errorType?: string }).errorType === errorType) ?? "ERR_BAD_REQUEST");
  return new PlatformError(code, { message, status: res.status });
}
