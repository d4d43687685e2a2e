/**
 * A stand-in for the runner's handler context, for unit tests that call an app's handler directly:
 * it reads data URIs with the platform's own decoder (so an app's byte limit behaves as in a
 * runner), records progress, billing and the byte limit of every read, and either refuses to store
 * files or keeps what the handler stores in memory.
 * @module
 */
import assert from "node:assert/strict";
import type { FileRef, HandlerContext, PutFileOptions } from "../../src/runtime/sdk.js";
import { parseDataUri } from "../../src/storage/data-uri.js";

/** One file the handler stored, with the URL its file record carries. */
export interface StoredFile {
  body: Buffer;
  options: PutFileOptions;
  url: string;
}

export interface FakeContextOptions {
  /** Aborting it cancels the request. */
  controller?: AbortController;
  /** Default `test-request`. Apps name their temp folders (and so their ffmpeg command lines) after it. */
  requestId?: string;
  /** Keep what the handler stores, in `stored`; by default `files.put` throws, for apps that store nothing. */
  storeFiles?: boolean;
  /** Called on every progress report, after it is recorded. */
  onProgress?: (step: number, total: number) => void;
}

export interface FakeContext<S> {
  ctx: HandlerContext<S>;
  /** "step/total message" for every progress report, in order. */
  progress: string[];
  billed: number[];
  /** The files stored so far, in order (always empty without `storeFiles`). */
  stored: StoredFile[];
  /** The `maxBytes` each `files.read` asked for, in order. */
  reads: (number | undefined)[];
}

export function fakeContext<S>(state: S, options: FakeContextOptions = {}): FakeContext<S> {
  const controller = options.controller ?? new AbortController();
  const requestId = options.requestId ?? "test-request";
  const progress: string[] = [];
  const billed: number[] = [];
  const stored: StoredFile[] = [];
  const reads: (number | undefined)[] = [];
  const ctx: HandlerContext<S> = {
    requestId,
    state,
    signal: controller.signal,
    attempt: 1,
    log: () => {},
    progress: (step, total, message) => {
      progress.push(`${step}/${total} ${message ?? ""}`);
      options.onProgress?.(step, total);
    },
    emit: () => {},
    bill: (units) => billed.push(units),
    throwIfCancelled: () => controller.signal.throwIfAborted(),
    files: {
      async read(url, readOptions) {
        reads.push(readOptions?.maxBytes);
        return parseDataUri(url, readOptions?.maxBytes);
      },
      async put(body, putOptions): Promise<FileRef> {
        if (!options.storeFiles) throw new Error("this app stores no files");
        assert.ok(Buffer.isBuffer(body), "apps store whole buffers");
        const fileName = putOptions.fileName ?? "file";
        // Unique per file, as the runner's are, so that a test can find a file by its record's URL.
        const url = `http://localhost/files/outputs/${requestId}/${stored.length + 1}/${fileName}`;
        stored.push({ body, options: putOptions, url });
        return {
          url,
          content_type: putOptions.contentType,
          file_name: fileName,
          file_size: body.length,
          ...(putOptions.width !== undefined ? { width: putOptions.width } : {}),
          ...(putOptions.height !== undefined ? { height: putOptions.height } : {}),
        };
      },
    },
  };
  return { ctx, progress, billed, stored, reads };
}

/** The body of the stored file that `url` names; fails the test when nothing was stored there. */
export function storedAt(stored: readonly StoredFile[], url: string): Buffer {
  const file = stored.find((f) => f.url === url);
  assert.ok(file, `a file is stored at ${url}`);
  return file.body;
}
