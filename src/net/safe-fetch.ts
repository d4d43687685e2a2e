/**
 * HTTP(S) fetches of user-supplied URLs (input image URLs, webhooks) that cannot be turned against
 * the server's own network (SSRF).
 *
 * The address check runs inside the socket's DNS `lookup`, so it judges the very addresses the
 * connection is made to: there is no window between "checked" and "connected" for a DNS rebinding
 * answer to slip through. IP-literal hosts never reach `lookup`, so they are checked up front.
 * Redirects are followed by hand so that every hop goes through the same checks.
 *
 * Every request gets its own connection (`agent: false`): a pooled socket opened for a caller with a
 * wider allow list must not be reused for one with a narrower list.
 * @module
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { Transform, type Readable } from "node:stream";
import { DEFAULT_LIMITS } from "../core/config.js";
import { PlatformError, isPlatformError } from "../core/errors.js";
import { addressRefusalReason } from "./address-policy.js";
import type { AllowList } from "./allow-list.js";

/** Abort reasons are `any`; callers always get an Error. */
function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

export interface SafeFetchOptions {
  allow: AllowList;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Whole fetch, all redirects and the body included; default DEFAULT_LIMITS.fetchTimeoutMs. */
  timeoutMs?: number;
  /** Largest response body; default DEFAULT_LIMITS.maxFileBytes. */
  maxBytes?: number;
  /** default 5 */
  maxRedirects?: number;
}

export interface SafeResponse {
  status: number;
  headers: Record<string, string>;
  /** final URL, after redirects */
  url: string;
  /** Errors with ERR_FILE_TOO_LARGE past maxBytes, ERR_FETCH_FAILED on timeout or a broken connection. */
  body: Readable;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const DEFAULT_MAX_REDIRECTS = 5;
const USER_AGENT = "darkroom";

function refused(reason: string): PlatformError {
  return new PlatformError("ERR_FETCH_REFUSED", { message: `refused: ${reason}` });
}

function failed(message: string, cause?: unknown): PlatformError {
  return new PlatformError("ERR_FETCH_FAILED", { message, ...(cause === undefined ? {} : { cause }) });
}

function tooLarge(maxBytes: number): PlatformError {
  return new PlatformError("ERR_FILE_TOO_LARGE", { message: `response body exceeds ${maxBytes} bytes` });
}

/**
 * Fetches `url`, following redirects, and resolves once the final response's headers arrive; the
 * body streams afterwards under the same timeout and size limit. Non-2xx statuses are returned, not
 * thrown: what they mean is the caller's business.
 */
export async function safeFetch(url: string, options: SafeFetchOptions): Promise<SafeResponse> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_LIMITS.fetchTimeoutMs;
  const maxBytes = options.maxBytes ?? DEFAULT_LIMITS.maxFileBytes;
  const maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;

  // One deadline for the whole fetch; aborting the controller tears down whatever stage is running.
  const controller = new AbortController();
  // setTimeout fires at once for delays past 2^31-1 ms, so a huge timeout is clamped, not inverted.
  const timer = setTimeout(() => controller.abort(failed(`fetch timed out after ${timeoutMs} ms`)), Math.min(timeoutMs, 2 ** 31 - 1));
  const stopTimer = (): void => clearTimeout(timer);

  try {
    let target = parseUrl(url);
    let method = (options.method ?? "GET").toUpperCase();
    let body = options.body;
    let headers: Record<string, string> = { ...options.headers };

    for (let hop = 0; ; hop++) {
      const res = await requestOnce(target, method, headers, body, options.allow, controller.signal);
      const status = res.statusCode ?? 0;
      const location = res.headers.location;

      if (REDIRECT_STATUSES.has(status) && location) {
        res.destroy();
        if (hop >= maxRedirects) throw failed(`too many redirects (more than ${maxRedirects})`);
        let next: URL;
        try {
          next = new URL(location, target);
        } catch {
          throw refused(`malformed redirect location ${JSON.stringify(location)}`);
        }
        assertScheme(next);
        // 301/302/303 become a body-less GET, as browsers do; 307/308 replay the request as it was.
        if (status <= 303 && method !== "HEAD") {
          method = "GET";
          body = undefined;
          headers = withoutHeaders(headers, ["content-type", "content-length"]);
        }
        // Credentials meant for one origin must not follow a redirect to another.
        if (next.origin !== target.origin) headers = withoutHeaders(headers, ["authorization", "cookie"]);
        target = next;
        continue;
      }

      // A HEAD response declares the size of a body it does not send.
      const declared = Number(res.headers["content-length"]);
      if (method !== "HEAD" && Number.isFinite(declared) && declared > maxBytes) {
        res.destroy();
        throw tooLarge(maxBytes);
      }
      return {
        status,
        headers: flattenHeaders(res),
        url: target.href,
        body: limitBody(res, maxBytes, controller.signal, stopTimer),
      };
    }
  } catch (err) {
    stopTimer();
    throw err;
  }
}

/** {@link safeFetch} with the body read into memory (bounded by maxBytes). */
export async function safeFetchBuffer(
  url: string,
  options: SafeFetchOptions,
): Promise<{ status: number; headers: Record<string, string>; url: string; data: Buffer; contentType: string }> {
  const res = await safeFetch(url, options);
  const chunks: Buffer[] = [];
  for await (const chunk of res.body) chunks.push(chunk as Buffer);
  return {
    status: res.status,
    headers: res.headers,
    url: res.url,
    data: Buffer.concat(chunks),
    contentType: res.headers["content-type"] ?? "application/octet-stream",
  };
}

function parseUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw refused("malformed URL");
  }
  assertScheme(parsed);
  return parsed;
}

function assertScheme(url: URL): void {
  if (url.protocol !== "http:" && url.protocol !== "https:") throw refused(`scheme ${url.protocol} is not http or https`);
}

/** Why the address may not be connected to, or null; the allow list overrides the default policy. */
function addressRefusal(ip: string, allow: AllowList): string | null {
  return allow.allowsAddress(ip) ? null : addressRefusalReason(ip);
}

/**
 * A DNS lookup that refuses the whole name when any answer is refused. Picking only the acceptable
 * answers would let a name that mixes public and private records reach the private ones by retry.
 * The refusal is also handed to `onRefused` because the socket layer may wrap the error it gets.
 */
function guardedLookup(allow: AllowList, onRefused: (err: PlatformError) => void): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, "", 0);
      if (addresses.length === 0) {
        return callback(Object.assign(new Error(`no addresses for ${hostname}`), { code: "ENOTFOUND" }), "", 0);
      }
      for (const { address } of addresses) {
        const reason = addressRefusal(address, allow);
        if (reason !== null) {
          const error = refused(`${hostname} resolves to ${reason}`);
          onRefused(error);
          return callback(error, "", 0);
        }
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0] as LookupAddress;
      return callback(null, first.address, first.family);
    });
  };
}

function requestOnce(
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: string | Buffer | undefined,
  allow: AllowList,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  const hostAllowed = allow.allowsHost(host, port);

  // Names the operator allow-listed resolve normally; everything else goes through the guard.
  let refusal: PlatformError | null = null;
  if (!hostAllowed && isIP(host) !== 0) {
    const reason = addressRefusal(host, allow);
    if (reason !== null) return Promise.reject(refused(reason));
  }
  if (signal.aborted) return Promise.reject(asError(signal.reason));

  const finalHeaders: Record<string, string> = { "user-agent": USER_AGENT, ...lowerKeys(headers) };
  if (body !== undefined && finalHeaders["content-length"] === undefined) {
    finalHeaders["content-length"] = String(Buffer.byteLength(body));
  }

  const requestOptions: http.RequestOptions = {
    method,
    host,
    port,
    path: `${url.pathname}${url.search}`,
    headers: finalHeaders,
    agent: false,
    ...(url.username || url.password
      ? { auth: `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` }
      : {}),
    ...(hostAllowed ? {} : { lookup: guardedLookup(allow, (err) => (refusal = err)) }),
  };

  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = (url.protocol === "https:" ? https : http).request(requestOptions);
    const onAbort = (): void => {
      req.destroy(signal.reason as Error);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    req.on("response", (res) => {
      signal.removeEventListener("abort", onAbort);
      resolve(res);
    });
    req.on("error", (err) => {
      signal.removeEventListener("abort", onAbort);
      if (refusal) reject(refusal);
      else if (signal.aborted) reject(asError(signal.reason));
      else if (isPlatformError(err)) reject(err);
      else reject(failed(`fetch of ${url.origin} failed: ${err.message}`, err));
    });
    req.end(body);
  });
}

/**
 * The response body behind a byte counter: it errors with ERR_FILE_TOO_LARGE past `maxBytes` (a
 * server may omit or understate content-length), and with ERR_FETCH_FAILED on timeout or when the
 * connection dies before the body is complete, so a truncated download never looks finished.
 */
function limitBody(res: IncomingMessage, maxBytes: number, signal: AbortSignal, done: () => void): Readable {
  let seen = 0;
  const body = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > maxBytes) callback(tooLarge(maxBytes));
      else callback(null, chunk);
    },
  });
  const onAbort = (): void => {
    body.destroy(signal.reason as Error);
  };
  signal.addEventListener("abort", onAbort, { once: true });

  res.on("error", (err) => body.destroy(failed(`response body failed: ${err.message}`, err)));
  res.on("close", () => {
    if (!res.complete) body.destroy(failed("connection closed before the response body was complete"));
  });
  res.on("end", done);
  body.on("close", () => {
    signal.removeEventListener("abort", onAbort);
    done();
    // Whoever stops reading early (or the size limit) must not leave the socket open.
    res.destroy();
  });
  res.pipe(body);
  return body;
}

function flattenHeaders(res: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined) continue;
    out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

function lowerKeys(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = value;
  return out;
}

function withoutHeaders(headers: Record<string, string>, names: string[]): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !names.includes(name.toLowerCase())));
}
