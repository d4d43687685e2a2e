/**
 * One file from a URL into a `.partial` file that survives interruptions: a later attempt (in this
 * process or the next `pull`) asks for the rest with `Range: bytes=N-`.
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rm, stat } from "node:fs/promises";
import { ModelError } from "./errors.js";
import { authHeaders, backoff, describeFailure, displayUrl, fetchFollow, isTransientStatus, statusError, type Transport } from "./transport.js";

export interface DownloadTarget {
  url: string;
  /** Expected size when the source published it. */
  size: number | null;
}

export interface DownloadOptions {
  /** Bytes appended (negative when a server ignored the range and the file starts over). */
  onBytes?: (delta: number) => void;
  signal?: AbortSignal;
}

async function sizeOf(file: string): Promise<number> {
  const info = await stat(file).catch(() => null);
  return info?.size ?? 0;
}

/** A failure where asking again can help: the connection dropped, a 5xx, a range answered wrongly. */
class Transient extends Error {}

/** `Content-Range: bytes 100-199/1000` → { start: 100, total: 1000 } */
function parseContentRange(value: string | null): { start: number; total: number | null } | null {
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? "");
  if (!m) return null;
  return { start: Number(m[1]), total: m[3] === "*" ? null : Number(m[3]) };
}

async function attempt(t: Transport, target: DownloadTarget, partial: string, options: DownloadOptions): Promise<void> {
  let have = await sizeOf(partial);
  if (target.size !== null && have > target.size) {
    // Longer than the file can be: not a prefix of it.
    options.onBytes?.(-have);
    await rm(partial, { force: true });
    have = 0;
  }
  if (target.size !== null && have > 0 && have === target.size) return;
  const headers: Record<string, string> = { "accept-encoding": "identity" };
  if (have > 0) headers["range"] = `bytes=${have}-`;
  let res: Response;
  try {
    res = await fetchFollow(t, target.url, { headers, ...(options.signal ? { signal: options.signal } : {}) });
  } catch (err) {
    if ((err as { name?: string }).name === "AbortError" || err instanceof ModelError) throw err;
    throw new Transient(describeFailure(err));
  }
  if (res.status === 416 && have > 0) {
    await res.body?.cancel();
    // Range past the end: complete already when the size is unknown; otherwise start over.
    if (target.size === null) return;
    options.onBytes?.(-have);
    await rm(partial, { force: true });
    throw new Transient("range not satisfiable");
  }
  if (isTransientStatus(res.status)) {
    await res.body?.cancel();
    throw new Transient(`status ${res.status}`);
  }
  if (res.status !== 200 && res.status !== 206) {
    await res.body?.cancel();
    throw statusError(target.url, res.status, authHeaders(t, target.url)["authorization"] !== undefined);
  }
  let append = false;
  if (res.status === 206) {
    const range = parseContentRange(res.headers.get("content-range"));
    if (!range || range.start !== have) {
      await res.body?.cancel();
      throw new Transient(`server answered range ${res.headers.get("content-range") ?? "(none)"} for bytes=${have}-`);
    }
    append = true;
  } else if (have > 0) {
    // 200 to a range request: the server sends the whole file, so the partial one is dropped.
    options.onBytes?.(-have);
  }
  if (!res.body) throw new Transient("empty body");
  // Each chunk is on disk before the next is read, and the next Range is taken from the file's
  // size, never from a counter: when the connection drops, fetch discards chunks it had queued but
  // not handed over, and those must be asked for again.
  const out = await open(partial, append ? "a" : "w");
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      await out.write(chunk);
      options.onBytes?.(chunk.length);
    }
  } catch (err) {
    if ((err as { name?: string }).name === "AbortError" || options.signal?.aborted) throw err;
    throw new Transient(`transfer cut off (${describeFailure(err)})`);
  } finally {
    await out.close();
  }
  const got = await sizeOf(partial);
  if (target.size !== null && got !== target.size) throw new Transient(`got ${got} of ${target.size} bytes`);
}

/**
 * Downloads `target` into `partial`, resuming whatever is there. Attempts that move the file
 * forward do not count against the retry budget, so a slow, flaky link still finishes a big file.
 */
export async function downloadResumable(t: Transport, target: DownloadTarget, partial: string, options: DownloadOptions = {}): Promise<void> {
  let failures = 0;
  for (;;) {
    const before = await sizeOf(partial);
    try {
      await attempt(t, target, partial, options);
      return;
    } catch (err) {
      if (!(err instanceof Transient)) throw err;
      const progressed = (await sizeOf(partial)) > before;
      failures = progressed ? 1 : failures + 1;
      if (failures >= t.attempts) {
        throw new ModelError("ERR_MODEL_DOWNLOAD", `download of ${displayUrl(target.url)} failed after ${t.attempts} attempts: ${err.message}. Run the pull again to resume.`, { cause: err });
      }
      await t.sleep(backoff(t, failures));
    }
  }
}

export interface FileDigest {
  sha256: string;
  /** git's blob id: sha1 of `blob <size>\0<content>`, what the Hub lists for files outside LFS. */
  gitSha1: string;
  size: number;
}

export async function digestFile(file: string): Promise<FileDigest> {
  const size = await sizeOf(file);
  const sha256 = createHash("sha256");
  const sha1 = createHash("sha1").update(`blob ${size}\0`);
  for await (const chunk of createReadStream(file)) {
    sha256.update(chunk as Buffer);
    sha1.update(chunk as Buffer);
  }
  return { sha256: sha256.digest("hex"), gitSha1: sha1.digest("hex"), size };
}

