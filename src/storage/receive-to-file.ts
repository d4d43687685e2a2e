/**
 * Streams an upload into a new file with a size cap, never holding more than one chunk in memory.
 * On any failure the partial file is deleted; on success it is fsynced, so that a later rename makes
 * complete data visible even across a crash.
 *
 * The caller's stream is never destroyed here. On a refusal it is detached and paused: a gateway
 * handing in an HTTP request body still wants to answer 413 on that connection.
 * @module
 */
import type { Hash } from "node:crypto";
import { mkdir, open, unlink, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { PlatformError, isPlatformError } from "../core/errors.js";

export interface ReceiveOptions {
  maxBytes?: number | undefined;
  /** Fed every byte written, e.g. to compute an etag in the same pass. */
  hash?: Hash | undefined;
  mode?: number;
  /**
   * Async checks to run before the file is created. They run under the early error listener (see
   * receiveToFile), which an `await` in the caller before receiveToFile would not. They may return a
   * tighter limit (and the error to refuse with past it) that is only known once they ran, e.g. what
   * is left of a multipart upload's size after its other parts.
   */
  before?: () => Promise<void | Limit>;
  /** The error for a body over `maxBytes`; {@link tooLarge} by default. */
  refuse?: ((maxBytes: number) => PlatformError) | undefined;
}

/** A byte limit and the error for passing it. */
export interface Limit {
  maxBytes?: number | undefined;
  refuse?: ((maxBytes: number) => PlatformError) | undefined;
}

export function tooLarge(maxBytes: number): PlatformError {
  return new PlatformError("ERR_FILE_TOO_LARGE", { message: `upload exceeds ${maxBytes} bytes` });
}

/**
 * Creates `file` exclusively, creating its folder first. A concurrent sweep may remove a folder it
 * finds empty between the two steps, hence the retry.
 */
export async function createExclusive(file: string, mode = 0o644): Promise<FileHandle> {
  for (let attempt = 0; ; attempt++) {
    await mkdir(path.dirname(file), { recursive: true });
    try {
      return await open(file, "wx", mode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || attempt >= 3) throw err;
    }
  }
}

/**
 * Writes `body` to `file` (which must not exist yet; its folder is created) and returns the number
 * of bytes written. Call it before awaiting anything else: it starts listening for the stream's
 * errors synchronously, so an upload that fails while the file is being opened is reported here
 * instead of surfacing as an unhandled 'error' event.
 */
export async function receiveToFile(body: Readable | Buffer | Uint8Array, file: string, options: ReceiveOptions = {}): Promise<number> {
  let earlyError: Error | undefined;
  const onEarlyError = (err: Error): void => {
    earlyError ??= err;
  };
  if (!(body instanceof Uint8Array)) body.on("error", onEarlyError);

  let fh: FileHandle;
  try {
    const limit = await options.before?.();
    if (limit) options = { ...options, ...limit };
    fh = await createExclusive(file, options.mode);
  } catch (err) {
    if (!(body instanceof Uint8Array)) body.off("error", onEarlyError);
    throw err;
  }
  try {
    let size: number;
    if (body instanceof Uint8Array) {
      size = body.byteLength;
      if (options.maxBytes !== undefined && size > options.maxBytes) throw (options.refuse ?? tooLarge)(options.maxBytes);
      options.hash?.update(body);
      await fh.writeFile(body);
    } else {
      // copyStream has its own listeners from here on; the early one only covered the open.
      body.off("error", onEarlyError);
      if (earlyError) throw streamFailure(earlyError);
      size = await copyStream(body, fh, options);
    }
    await fh.sync();
    await fh.close();
    return size;
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(file).catch(() => undefined);
    throw err;
  }
}

/** A source that already speaks in platform errors (e.g. a safeFetch body over its limit) keeps its code. */
export function streamFailure(err: Error): PlatformError {
  return isPlatformError(err) ? err : new PlatformError("ERR_BAD_REQUEST", { message: `upload stream failed: ${err.message}`, cause: err });
}

function copyStream(source: Readable, fh: FileHandle, options: ReceiveOptions): Promise<number> {
  return pumpStream(source, { maxBytes: options.maxBytes, hash: options.hash, refuse: options.refuse }, (buf) => fh.write(buf));
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export interface PumpOptions {
  maxBytes?: number | undefined;
  hash?: Hash | undefined;
  /** The error for a source over `maxBytes`; {@link tooLarge} by default. */
  refuse?: ((maxBytes: number) => PlatformError) | undefined;
}

/**
 * Feeds every chunk of `source` to `write` and resolves with the byte count once the source ends.
 * Flowing mode that pauses the source while each write is pending: backpressure without `pipe`,
 * whose error handling would either leak the source's errors or destroy the source. On a refusal
 * (ERR_FILE_TOO_LARGE, a failed write) the source is left paused, never destroyed. Listeners are
 * attached synchronously, so a caller may start this before awaiting anything else.
 */
export function pumpStream(source: Readable, options: PumpOptions, write: (chunk: Buffer) => Promise<unknown> | undefined): Promise<number> {
  if (source.destroyed || source.readableEnded) {
    return Promise.reject(new PlatformError("ERR_BAD_REQUEST", { message: "upload stream was already consumed" }));
  }
  return new Promise<number>((resolve, reject) => {
    let size = 0;
    let settled = false;

    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      source.off("data", onData);
      source.off("end", onEnd);
      source.off("error", onError);
      source.off("close", onClose);
      if (err === undefined) {
        resolve(size);
      } else {
        // Removing the 'data' listener does not stop a flowing stream; pausing does.
        source.pause();
        reject(err);
      }
    };
    const onData = (chunk: Buffer | string): void => {
      const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      size += buf.length;
      if (options.maxBytes !== undefined && size > options.maxBytes) return finish((options.refuse ?? tooLarge)(options.maxBytes));
      options.hash?.update(buf);
      let pending: Promise<unknown> | undefined;
      try {
        pending = write(buf);
      } catch (err) {
        return finish(asError(err));
      }
      if (pending === undefined) return;
      source.pause();
      pending.then(
        () => {
          if (!settled) source.resume();
        },
        (err: unknown) => finish(asError(err)),
      );
    };
    // 'end' cannot overtake a pending write: the source stays paused until that write is done.
    const onEnd = (): void => finish();
    const onError = (err: Error): void => finish(streamFailure(err));
    const onClose = (): void => {
      if (!source.readableEnded) finish(new PlatformError("ERR_BAD_REQUEST", { message: "upload stream closed before it ended" }));
    };

    source.on("data", onData);
    source.on("end", onEnd);
    source.on("error", onError);
    source.on("close", onClose);
    source.resume();
  });
}
