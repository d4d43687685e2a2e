/**
 * HTTP for the model manager: retries with backoff for transient failures, the Hugging Face token
 * attached only for the Hub's own origin, and one place that turns error answers into ModelErrors.
 * @module
 */
import { ModelError } from "./errors.js";

export interface Transport {
  fetch: typeof fetch;
  /** Attempts per request (and per stalled download), counting the first. */
  attempts: number;
  /** First retry delay; it doubles up to 30 s. */
  retryDelayMs: number;
  /** `HF_TOKEN`; sent as a bearer token to `tokenOrigin` only. Never logged or put in messages. */
  token: string | null;
  tokenOrigin: string | null;
  sleep: (ms: number) => Promise<void>;
}

export const DEFAULT_ATTEMPTS = 5;

export function backoff(t: Transport, attempt: number): number {
  return Math.min(t.retryDelayMs * 2 ** (attempt - 1), 30_000);
}

export function authHeaders(t: Transport, url: string): Record<string, string> {
  if (!t.token || !t.tokenOrigin) return {};
  return new URL(url).origin === t.tokenOrigin ? { authorization: `Bearer ${t.token}` } : {};
}

/** Statuses where trying again later can help. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** The URL without query or credentials, for messages (signed CDN URLs carry secrets in the query). */
export function displayUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

export function statusError(url: string, status: number, hasToken: boolean): ModelError {
  if (status === 401 || status === 403) {
    const hint = hasToken ? "HF_TOKEN was sent and refused: check that it is valid and has access" : "set HF_TOKEN for a private or gated repository";
    return new ModelError("ERR_MODEL_AUTH", `${displayUrl(url)} answered ${status} (${hint})`);
  }
  if (status === 404) return new ModelError("ERR_MODEL_NOT_FOUND", `${displayUrl(url)} answered 404: no such repository, revision or file`);
  return new ModelError("ERR_MODEL_DOWNLOAD", `${displayUrl(url)} answered ${status}`);
}

/** Node's fetch (undici) wraps socket errors in TypeError("fetch failed") and keeps the cause. */
export function describeFailure(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } } | null)?.cause;
  return cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
}

/**
 * getaddrinfo's failures: no such name (ENOTFOUND), or no DNS server answering (EAI_AGAIN, what an
 * offline machine gets). They are not retried: a name that does not resolve now is a machine
 * offline or a wrong endpoint, and 15 s of backoff would only delay saying so. (Downloads, which
 * start after the name resolved, keep retrying them as a dropped connection.)
 */
const DNS_FAILURES: ReadonlySet<string> = new Set(["ENOTFOUND", "EAI_AGAIN"]);

/** When a request failed because a host name did not resolve: getaddrinfo's code and the name. */
function dnsFailure(err: unknown): { code: string; hostname: string | null } | null {
  const cause = (err as { cause?: { code?: unknown; hostname?: unknown } } | null)?.cause;
  if (typeof cause?.code !== "string" || !DNS_FAILURES.has(cause.code)) return null;
  return { code: cause.code, hostname: typeof cause.hostname === "string" ? cause.hostname : null };
}

const MAX_REDIRECTS = 10;

/**
 * One request, following redirects here rather than in fetch: the Hub answers LFS downloads with
 * a redirect to a CDN on another origin, and the token must not travel there. Redirects to plain
 * http are refused unless they stay on loopback.
 */
export async function fetchFollow(t: Transport, url: string, init: { method?: string; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await t.fetch(current, { ...init, headers: { ...init.headers, ...authHeaders(t, current) }, redirect: "manual" });
    const location = res.headers.get("location");
    if (res.status < 300 || res.status > 399 || res.status === 304 || !location) return res;
    await res.body?.cancel();
    const next = new URL(location, current);
    const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(next.hostname) || /^127\./.test(next.hostname);
    if (next.protocol !== "https:" && !(next.protocol === "http:" && loopback)) {
      throw new ModelError("ERR_MODEL_DOWNLOAD", `${displayUrl(current)} redirected to ${displayUrl(next.href)}, which is not https`);
    }
    current = next.href;
  }
  throw new ModelError("ERR_MODEL_DOWNLOAD", `${displayUrl(url)} redirected more than ${MAX_REDIRECTS} times`);
}

/** A request that is retried on network errors and transient statuses; other statuses are returned. */
export async function fetchWithRetry(t: Transport, url: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Response> {
  let lastError: unknown = null;
  for (let attempt = 1; attempt <= t.attempts; attempt++) {
    if (attempt > 1) await t.sleep(backoff(t, attempt - 1));
    try {
      const res = await fetchFollow(t, url, init);
      if (!isTransientStatus(res.status) || attempt === t.attempts) return res;
      await res.body?.cancel();
      lastError = new Error(`status ${res.status}`);
    } catch (err) {
      if ((err as { name?: string }).name === "AbortError" || err instanceof ModelError) throw err;
      const dns = dnsFailure(err);
      if (dns) {
        // The name that failed may be a redirect's, not the URL's own.
        const host = dns.hostname ?? new URL(url).hostname;
        throw new ModelError("ERR_MODEL_UNREACHABLE", `cannot reach ${displayUrl(url)}: ${host} does not resolve (${dns.code}; offline, or a DNS problem)`, { cause: err });
      }
      lastError = err;
    }
  }
  throw new ModelError("ERR_MODEL_UNREACHABLE", `cannot reach ${displayUrl(url)} after ${t.attempts} attempts (${describeFailure(lastError)})`, { cause: lastError });
}

export async function fetchJson<T>(t: Transport, url: string): Promise<{ body: T; response: Response }> {
  const response = await fetchWithRetry(t, url, { headers: { accept: "application/json" } });
  if (!response.ok) {
    await response.body?.cancel();
    throw statusError(url, response.status, authHeaders(t, url)["authorization"] !== undefined);
  }
  try {
    return { body: (await response.json()) as T, response };
  } catch (err) {
    throw new ModelError("ERR_MODEL_DOWNLOAD", `${displayUrl(url)} did not answer JSON`, { cause: err });
  }
}
