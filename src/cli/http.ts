/**
 * How CLI commands reach a server: URL and key from flags or environment, errors turned into
 * one-line messages.
 * @module
 */
import { readFileSync } from "node:fs";
import path from "node:path";

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  url: string;
  key: string | null;
}

export function clientOptions(flags: { url?: string | undefined; "data-dir"?: string | undefined }): ClientOptions {
  const url = (flags.url ?? process.env["DARKROOM_URL"] ?? "http://127.0.0.1:8787").replace(/\/+$/, "");
  let key = process.env["DARKROOM_KEY"] ?? process.env["FAL_KEY"] ?? null;
  if (!key) {
    const dataDir = path.resolve(flags["data-dir"] ?? process.env["DARKROOM_DATA_DIR"] ?? "./.darkroom");
    try {
      key = readFileSync(path.join(dataDir, "admin-key"), "utf8").trim();
    } catch {
      key = null;
    }
  }
  return { url, key };
}

export async function api<T>(client: ClientOptions, method: string, route: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${client.url}${route}`, {
      method,
      headers: {
        accept: "application/json",
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...(client.key ? { authorization: `Key ${client.key}` } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err instanceof Error ? err.message : String(err));
    throw new CliError(`cannot reach the server at ${client.url} (${cause}). Is it running? Start it with 'darkroom serve' or set --url / DARKROOM_URL.`);
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  if (!res.ok) {
    if (res.status === 401) throw new CliError("the server refused the key (401). Set DARKROOM_KEY=id:secret (or FAL_KEY).");
    const detail = (json as { detail?: unknown } | null)?.detail;
    const message = Array.isArray(detail)
      ? detail.map((d: { loc?: unknown[]; msg?: string }) => `${(d.loc ?? []).slice(1).join(".") || "input"}: ${d.msg}`).join("; ")
      : typeof detail === "string"
        ? detail
        : text;
    throw new CliError(`HTTP ${res.status}: ${message}`);
  }
  return json as T;
}
