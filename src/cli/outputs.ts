/**
 * Finds the files in a result (fal's `File` shape: any object with a `url`) and saves them.
 * @module
 */
import { createWriteStream } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";

export interface FileRef {
  url: string;
  /** Where it sits in the result, e.g. `images[0]`. */
  at: string;
  fileName: string | null;
}

function isFileUrl(url: string): boolean {
  return /^https?:\/\//i.test(url) || /^data:/i.test(url);
}

/** Every object with a string `url` that is http(s) or a data: URI (`sync_mode` outputs), depth first. */
export function findFiles(value: unknown, at = ""): FileRef[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => findFiles(v, `${at}[${i}]`));
  if (value === null || typeof value !== "object") return [];
  const record = value as Record<string, unknown>;
  const url = record["url"];
  if (typeof url === "string" && isFileUrl(url)) {
    const name = record["file_name"];
    return [{ url, at: at || "(root)", fileName: typeof name === "string" && name ? name : null }];
  }
  return Object.entries(record).flatMap(([k, v]) => findFiles(v, at ? `${at}.${k}` : k));
}

const EXTENSIONS: Record<string, string> = {
  "image/png": ".png",
  "image/jpeg": ".jpg",
  "image/webp": ".webp",
  "image/gif": ".gif",
  "audio/wav": ".wav",
  "audio/x-wav": ".wav",
  "audio/mpeg": ".mp3",
  "video/mp4": ".mp4",
  "video/webm": ".webm",
  "application/json": ".json",
  "text/plain": ".txt",
};

/** A name safe to join onto the output folder: no separators, no leading dots. */
export function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "").slice(0, 120);
}

function nameFor(ref: FileRef, index: number, contentType: string | null): string {
  let base = ref.fileName ? safeName(ref.fileName) : "";
  if (!base && !ref.url.startsWith("data:")) {
    try {
      base = safeName(decodeURIComponent(new URL(ref.url).pathname.split("/").pop() ?? ""));
    } catch {
      base = "";
    }
  }
  if (!base) base = `file-${index + 1}`;
  const ext = contentType ? EXTENSIONS[contentType.split(";")[0]?.trim().toLowerCase() ?? ""] : undefined;
  return path.extname(base) || !ext ? base : `${base}${ext}`;
}

function uniqueName(name: string, taken: Set<string>): string {
  let candidate = name;
  for (let n = 2; taken.has(candidate); n++) {
    const ext = path.extname(name);
    candidate = `${name.slice(0, name.length - ext.length)}-${n}${ext}`;
  }
  taken.add(candidate);
  return candidate;
}

function decodeDataUri(uri: string): { contentType: string; bytes: Buffer } {
  const comma = uri.indexOf(",");
  if (comma < 0) throw new Error("malformed data: URI");
  const meta = uri.slice(5, comma);
  const payload = uri.slice(comma + 1);
  const base64 = /;base64$/i.test(meta);
  return {
    contentType: meta.replace(/;base64$/i, "").split(";")[0] || "text/plain",
    bytes: base64 ? Buffer.from(payload, "base64") : Buffer.from(decodeURIComponent(payload), "utf8"),
  };
}

export interface SavedFile {
  ref: FileRef;
  file: string;
  bytes: number;
}

/**
 * Downloads each file into `dir` (created when there is something to save). Output URLs are
 * unguessable capabilities, so no key is sent: it never leaves for another host by accident.
 */
export async function downloadFiles(refs: readonly FileRef[], dir: string, signal?: AbortSignal): Promise<SavedFile[]> {
  if (refs.length === 0) return [];
  await mkdir(dir, { recursive: true });
  const taken = new Set<string>();
  const saved: SavedFile[] = [];
  for (const [i, ref] of refs.entries()) {
    if (ref.url.startsWith("data:")) {
      const { contentType, bytes } = decodeDataUri(ref.url);
      const file = path.join(dir, uniqueName(nameFor(ref, i, contentType), taken));
      await writeFile(file, bytes);
      saved.push({ ref, file, bytes: bytes.length });
      continue;
    }
    let res: Response;
    try {
      res = await fetch(ref.url, signal ? { signal } : {});
    } catch (err) {
      throw new Error(`cannot download ${ref.url}: ${String((err as { cause?: unknown }).cause ?? err)}`);
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw new Error(`cannot download ${ref.url}: HTTP ${res.status}`);
    }
    const file = path.join(dir, uniqueName(nameFor(ref, i, res.headers.get("content-type")), taken));
    let bytes = 0;
    const body = Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>);
    body.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    await pipeline(body, createWriteStream(file));
    saved.push({ ref, file, bytes });
  }
  return saved;
}
