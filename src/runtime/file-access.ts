/**
 * `ctx.files` inside a runner: output files go to the storage driver (or inline as data URIs in
 * sync mode); inputs are read from data URIs, from this server's own `/files/` URLs straight out of
 * storage, or from outside URLs through the SSRF guard.
 * @module
 */
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { PlatformError } from "../core/errors.js";
import type { AllowList } from "../net/allow-list.js";
import { safeFetchBuffer } from "../net/safe-fetch.js";
import { isDataUri, parseDataUri, toDataUri } from "../storage/data-uri.js";
import { ownFileKey } from "../storage/own-files.js";
import { isSpilledInputKey } from "../storage/spilled-inputs.js";
import type { ObjectAccess } from "../storage/storage.js";
import type { ToRunner } from "./protocol.js";
import type { FileAccess, FileRef, PutFileOptions } from "./sdk.js";

export interface FileAccessOptions {
  /** Only put (outputs) and get (this server's own files) are used. */
  storage: ObjectAccess;
  allow: AllowList;
  requestId: string;
  /** Origin the client used, e.g. "http://127.0.0.1:8787". */
  baseUrl: string;
  /** Other origins that also mean "this server" (public URL, listen address). */
  ownOrigins: string[];
  /**
   * The server's `--files-url`: output URLs are built on it instead of `baseUrl`, so that stored
   * files never share an origin with the Playground. Its URLs are this server's files too.
   */
  filesUrl?: string | undefined;
  syncMode: boolean;
  maxFileBytes: number;
  fetchTimeoutMs: number;
  /** Seconds until output files expire; undefined keeps them. */
  outputTtlSeconds?: number;
}

const EXTENSIONS: Record<string, string> = {
  "image/png": "png",
  "image/jpeg": "jpg",
  "image/webp": "webp",
  "image/gif": "gif",
  "audio/wav": "wav",
  "audio/mpeg": "mp3",
  "audio/ogg": "ogg",
  "video/mp4": "mp4",
  "video/webm": "webm",
  "application/json": "json",
  "text/plain": "txt",
};

function safeFileName(name: string | undefined, contentType: string): string {
  const cleaned = (name ?? "").replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "").slice(0, 100);
  if (cleaned) return cleaned;
  return `output.${EXTENSIONS[contentType] ?? "bin"}`;
}

async function collect(body: Buffer | Uint8Array | Readable, maxBytes: number): Promise<Buffer> {
  if (!(body instanceof Readable)) return Buffer.from(body);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buf.length;
    if (size > maxBytes) throw new PlatformError("ERR_FILE_TOO_LARGE", { message: `Output exceeds ${maxBytes} bytes` });
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

/** What a runner knows of its server, whichever transport: the options every run's file access shares. */
export type RunnerFileSettings = Omit<FileAccessOptions, "requestId" | "baseUrl" | "syncMode">;

/** The file access of one run: its request, origin, sync mode and output lifetime over the runner's settings. */
export function fileAccessForRun(run: Extract<ToRunner, { t: "run" }>, settings: RunnerFileSettings): FileAccess {
  const outputTtlSeconds = run.outputTtlSeconds ?? settings.outputTtlSeconds;
  return createFileAccess({
    ...settings,
    requestId: run.requestId,
    baseUrl: run.baseUrl,
    filesUrl: run.filesUrl ?? settings.filesUrl,
    syncMode: run.syncMode === true,
    ...(outputTtlSeconds !== undefined ? { outputTtlSeconds } : {}),
  });
}

export function createFileAccess(options: FileAccessOptions): FileAccess {
  const origins = [options.baseUrl, ...options.ownOrigins, ...(options.filesUrl ? [options.filesUrl] : [])].map((o) => new URL(o).origin);
  const filesBase = (options.filesUrl ?? options.baseUrl).replace(/\/+$/, "");
  return {
    async put(body, put: PutFileOptions): Promise<FileRef> {
      const fileName = safeFileName(put.fileName, put.contentType);
      const dims = {
        ...(put.width !== undefined ? { width: put.width } : {}),
        ...(put.height !== undefined ? { height: put.height } : {}),
      };
      if (options.syncMode) {
        // fal's sync_mode: media comes back inline and is not kept in storage.
        const data = await collect(body, options.maxFileBytes);
        return { url: toDataUri(data, put.contentType), content_type: put.contentType, file_name: fileName, file_size: data.length, ...dims };
      }
      // The random part makes output URLs unguessable capabilities, like fal's CDN URLs.
      const key = `outputs/${options.requestId}/${randomBytes(9).toString("base64url")}/${fileName}`;
      const meta = await options.storage.put(key, body, {
        contentType: put.contentType,
        fileName,
        maxBytes: options.maxFileBytes,
        ...(options.outputTtlSeconds !== undefined ? { expiresInSeconds: options.outputTtlSeconds } : {}),
      });
      return {
        url: `${filesBase}/files/${key}`,
        content_type: put.contentType,
        file_name: fileName,
        file_size: meta.size,
        ...dims,
      };
    },

    async read(url, readOptions = {}) {
      const maxBytes = readOptions.maxBytes ?? options.maxFileBytes;
      // URL schemes are case-insensitive (RFC 3986): `DATA:` is a data URI too.
      if (isDataUri(url)) return parseDataUri(url, maxBytes);
      const key = ownFileKey(url, origins);
      if (key !== null) {
        // Our own files are read from storage, never fetched over the network; requests' stored
        // inputs (spilled-inputs.ts) are not files, and the gateway would not serve them either.
        const object = isSpilledInputKey(key) ? null : await options.storage.get(key);
        if (!object) throw new PlatformError("ERR_FILE_NOT_FOUND", { message: `File not found: ${url}` });
        if (object.meta.size > maxBytes) throw new PlatformError("ERR_FILE_TOO_LARGE", { message: `File exceeds ${maxBytes} bytes` });
        return { data: await collect(object.body, maxBytes), contentType: object.meta.contentType };
      }
      const res = await safeFetchBuffer(url, { allow: options.allow, maxBytes, timeoutMs: options.fetchTimeoutMs });
      if (res.status < 200 || res.status >= 300) {
        throw new PlatformError("ERR_FETCH_FAILED", { message: `Fetching ${url} returned HTTP ${res.status}` });
      }
      return { data: res.data, contentType: res.contentType };
    },
  };
}
