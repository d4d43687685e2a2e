/**
 * Builds a request's input from the command line: `--input JSON`, `--input-file F` and
 * `key=value` pairs, with `key=@path` uploading a local file through the storage API.
 * @module
 */
import { openAsBlob } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { api, CliError, EXIT, type ClientOptions } from "./http.js";

/**
 * A `key=value` value: JSON when it parses (`3`, `true`, `null`, `[1,2]`, `{"a":1}`, `"007"`),
 * else the text itself. Quoting as a JSON string keeps a value that would parse as a string.
 */
export function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

export interface Assignment {
  key: string;
  /** The parsed value, or the local path to upload for `key=@path`. */
  value: unknown;
  file: string | null;
}

export function parseAssignment(arg: string): Assignment {
  const eq = arg.indexOf("=");
  if (eq <= 0) throw new CliError(`expected key=value, got '${arg}'`, EXIT.USAGE);
  const key = arg.slice(0, eq);
  const raw = arg.slice(eq + 1);
  if (raw.startsWith("@") && raw.length > 1) return { key, value: null, file: raw.slice(1) };
  return { key, value: parseValue(raw), file: null };
}

function asObject(value: unknown, from: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new CliError(`${from} must be a JSON object`, EXIT.USAGE);
  }
  return value as Record<string, unknown>;
}

function parseJson(text: string, from: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new CliError(`${from} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`, EXIT.USAGE);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function readInputFile(file: string): Promise<string> {
  if (file === "-") return readStdin();
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new CliError(`cannot read --input-file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, EXIT.USAGE);
  }
}

const CONTENT_TYPES: Record<string, string> = {
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".webp": "image/webp",
  ".gif": "image/gif",
  ".bmp": "image/bmp",
  ".tif": "image/tiff",
  ".tiff": "image/tiff",
  ".svg": "image/svg+xml",
  ".wav": "audio/wav",
  ".mp3": "audio/mpeg",
  ".ogg": "audio/ogg",
  ".flac": "audio/flac",
  ".m4a": "audio/mp4",
  ".mp4": "video/mp4",
  ".webm": "video/webm",
  ".mov": "video/quicktime",
  ".json": "application/json",
  ".txt": "text/plain",
  ".pdf": "application/pdf",
};

export function contentTypeFor(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? "application/octet-stream";
}

/** Uploads a local file as fal's clients do (initiate, then PUT to the signed URL); returns its URL. */
export async function uploadFile(client: ClientOptions, file: string): Promise<string> {
  let size: number;
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new CliError(`@${file} is not a file`, EXIT.USAGE);
    size = info.size;
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`cannot read @${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, EXIT.USAGE);
  }
  const contentType = contentTypeFor(file);
  const { upload_url: uploadUrl, file_url: fileUrl } = await api<{ upload_url: string; file_url: string }>(client, "POST", "/rest/storage/upload/initiate", {
    content_type: contentType,
    file_name: path.basename(file),
  });
  // A file-backed Blob streams from disk and gives fetch a Content-Length, which the server checks
  // against its size limit before reading.
  const body = await openAsBlob(file, { type: contentType });
  let res: Response;
  try {
    // The upload URL is pre-signed: no Authorization, exactly as fal's clients send it.
    res = await fetch(uploadUrl, { method: "PUT", headers: { "content-type": contentType }, body });
  } catch (err) {
    throw new CliError(`upload of ${file} to ${new URL(uploadUrl).origin} failed: ${String((err as { cause?: unknown }).cause ?? err)}`, EXIT.UNREACHABLE);
  }
  if (!res.ok) {
    const text = await res.text();
    throw new CliError(`upload of ${file} (${size} bytes) failed: HTTP ${res.status} ${text}`);
  }
  await res.body?.cancel();
  return fileUrl;
}

export interface InputSources {
  input?: string | undefined;
  inputFile?: string | undefined;
  assignments: readonly string[];
}

/** Parses everything before anything is uploaded, so a usage error never leaves stray uploads. */
export async function buildInput(
  client: ClientOptions,
  sources: InputSources,
  onUpload: (file: string, url: string) => void = () => undefined,
): Promise<Record<string, unknown>> {
  if (sources.input !== undefined && sources.inputFile !== undefined) {
    throw new CliError("use either --input or --input-file, not both", EXIT.USAGE);
  }
  let input: Record<string, unknown> = {};
  if (sources.input !== undefined) input = asObject(parseJson(sources.input, "--input"), "--input");
  if (sources.inputFile !== undefined) {
    input = asObject(parseJson(await readInputFile(sources.inputFile), `--input-file ${sources.inputFile}`), `--input-file ${sources.inputFile}`);
  }
  const assignments = sources.assignments.map(parseAssignment);
  const uploaded = new Map<Assignment, string>();
  for (const a of assignments) {
    if (a.file === null) continue;
    const url = await uploadFile(client, a.file);
    onUpload(a.file, url);
    uploaded.set(a, url);
  }
  // In command-line order, so a later pair wins over an earlier one and over --input.
  for (const a of assignments) input[a.key] = uploaded.get(a) ?? a.value;
  return input;
}
