/**
 * How CLI commands reach a server: URL and key from flags or environment, one place that turns
 * transport failures and error answers into one-line messages with the documented exit codes.
 * @module
 */
import { readFileSync } from "node:fs";
import path from "node:path";

/** Exit codes of every client command; docs/cli.md documents them. */
export const EXIT = {
  OK: 0,
  /** The request failed, or the server refused it (404, 422, 4xx/5xx other than auth). */
  FAILED: 1,
  /** Bad command line: unknown flag, malformed --input, missing file. Nothing was sent. */
  USAGE: 2,
  /** The server cannot be reached, or it refused the key (401/403). */
  UNREACHABLE: 3,
  /** `run --timeout` passed; the request was cancelled (as `timeout(1)` does). */
  TIMEOUT: 124,
  /** Interrupted (Ctrl-C); the request was cancelled. 128 + SIGINT. */
  INTERRUPTED: 130,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.FAILED,
  ) {
    super(message);
  }
}

/** Options every client command accepts, for `util.parseArgs`. */
export const CLIENT_OPTIONS = {
  url: { type: "string" },
  "data-dir": { type: "string" },
  json: { type: "boolean", default: false },
} as const;

export interface ClientOptions {
  url: string;
  key: string | null;
  /** Where the key came from, named in 401 messages so the wrong one is easy to spot. */
  keySource: string | null;
}

export function clientOptions(flags: { url?: string | undefined; "data-dir"?: string | undefined }): ClientOptions {
  const url = (flags.url ?? process.env["DARKROOM_URL"] ?? "http://127.0.0.1:8787").replace(/\/+$/, "");
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    parsed = null;
  }
  if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
    throw new CliError(`--url / DARKROOM_URL must be an http(s) URL, got '${url}'`, EXIT.USAGE);
  }
  for (const name of ["DARKROOM_KEY", "FAL_KEY"] as const) {
    const value = process.env[name]?.trim();
    if (value) return { url, key: value, keySource: name };
  }
  // Same fallback as `darkroom serve` uses to store its generated key: on the server's own machine
  // the CLI works with no setup.
  const keyFile = path.join(path.resolve(flags["data-dir"] ?? process.env["DARKROOM_DATA_DIR"] ?? "./.darkroom"), "admin-key");
  try {
    const key = readFileSync(keyFile, "utf8").trim();
    if (key) return { url, key, keySource: keyFile };
  } catch {
    // No key file: requests go out without credentials and the server decides.
  }
  return { url, key: null, keySource: null };
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

function unreachable(client: ClientOptions, err: unknown): CliError {
  // Node's fetch (undici) wraps the socket error in TypeError("fetch failed") and keeps it in `cause`.
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
  return new CliError(
    `cannot reach the server at ${client.url} (${why}). Is it running? Start it with 'darkroom serve' or set --url / DARKROOM_URL.`,
    EXIT.UNREACHABLE,
  );
}

export function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError");
}

/** A raw call to the server (JSON body when given); only transport failures throw. */
export async function send(client: ClientOptions, method: string, route: string, options: RequestOptions = {}): Promise<Response> {
  const { body, headers = {}, signal } = options;
  try {
    return await fetch(`${client.url}${route}`, {
      method,
      headers: {
        accept: "application/json",
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...(client.key ? { authorization: `Key ${client.key}` } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    if (isAbort(err)) throw err;
    throw unreachable(client, err);
  }
}

export interface Reply {
  status: number;
  headers: Headers;
  /** Parsed JSON, or the text when it is not JSON, or null when empty. */
  body: unknown;
}

export async function readReply(res: Response): Promise<Reply> {
  const text = await res.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, body };
}

interface FieldError {
  loc?: unknown[];
  msg?: string;
}

/** `sleep_ms: must be integer` lines from a FastAPI-style `detail[]`. */
export function fieldErrors(detail: unknown): string[] {
  if (!Array.isArray(detail)) return [];
  return detail.map((d: FieldError) => {
    const loc = (d.loc ?? []).filter((p, i) => !(i === 0 && p === "body")).join(".");
    return `${loc || "input"}: ${d.msg ?? "invalid"}`;
  });
}

/** The human message of an error body: fal's `detail` (string or field list), else the raw text. */
export function errorDetail(body: unknown): string {
  const detail = (body as { detail?: unknown } | null)?.detail;
  if (Array.isArray(detail)) return fieldErrors(detail).join("; ");
  if (typeof detail === "string") return detail;
  if (body === null || body === undefined || body === "") return "no details";
  return typeof body === "string" ? body : JSON.stringify(body);
}

/** Turns a non-2xx answer into the CLI's message and exit code. */
export function replyError(client: ClientOptions, reply: Reply): CliError {
  const { status, body } = reply;
  if (status === 401) {
    const which = client.keySource ? `the key from ${client.keySource}` : "the request (no key was sent)";
    return new CliError(`the server at ${client.url} refused ${which} (401: ${errorDetail(body)}). Set DARKROOM_KEY=id:secret (or FAL_KEY).`, EXIT.UNREACHABLE);
  }
  if (status === 403) return new CliError(`forbidden (403): ${errorDetail(body)}`, EXIT.UNREACHABLE);
  if (status === 422) {
    const lines = fieldErrors((body as { detail?: unknown } | null)?.detail);
    return new CliError(lines.length > 0 ? `invalid input (422):\n  ${lines.join("\n  ")}` : `invalid input (422): ${errorDetail(body)}`);
  }
  return new CliError(`HTTP ${status}: ${errorDetail(body)}`);
}

/** A JSON call that must succeed: any non-2xx becomes a CliError. */
export async function api<T>(client: ClientOptions, method: string, route: string, body?: unknown, options: Omit<RequestOptions, "body"> = {}): Promise<T> {
  const reply = await readReply(await send(client, method, route, { ...options, ...(body !== undefined ? { body } : {}) }));
  if (reply.status < 200 || reply.status >= 300) throw replyError(client, reply);
  return reply.body as T;
}

/** Writes `value` as indented JSON, the `--json` output of every command. */
export function printJson(value: unknown, stream: NodeJS.WritableStream = process.stdout): void {
  stream.write(`${JSON.stringify(value, null, 2)}\n`);
}
