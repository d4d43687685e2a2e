/**
 * The handler context for calling an app's handler directly in a benchmark: real file access on a
 * local storage folder, and no-ops for logs, progress, partial results and billing.
 * @module
 */
import { AllowList } from "../../src/net/allow-list.js";
import { createFileAccess } from "../../src/runtime/file-access.js";
import type { HandlerContext } from "../../src/runtime/sdk.js";
import type { StorageDriver } from "../../src/storage/storage.js";

/** The same context without file access, for a handler that reads and stores no files (echo). */
export function contextWithoutFiles(requestId: string, state: unknown): HandlerContext {
  return {
    requestId,
    state,
    signal: new AbortController().signal,
    attempt: 1,
    log: () => undefined,
    progress: () => undefined,
    emit: () => undefined,
    bill: () => undefined,
    throwIfCancelled: () => undefined,
    files: { put: () => Promise.reject(new Error("unused")), read: () => Promise.reject(new Error("unused")) },
  };
}

export function directContext(storage: StorageDriver, requestId: string, state: unknown): HandlerContext {
  return {
    ...contextWithoutFiles(requestId, state),
    files: createFileAccess({ storage, allow: AllowList.parse(""), requestId, baseUrl: "http://127.0.0.1:1", ownOrigins: [], syncMode: false, maxFileBytes: 512 * 1024 * 1024, fetchTimeoutMs: 60_000 }),
  };
}
