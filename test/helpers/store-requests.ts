/**
 * Requests as the store's tests enqueue them: a queued request of an app with a random id and the
 * settings a plain submit gets, the terminal write of a runner that disconnected on its last try, and
 * usage records for the usage reports.
 * @module
 */
import { randomUUID } from "node:crypto";
import type { NewRequest, TerminalWrite, UsageRecord } from "../../src/store/store.js";

export function newRequest(appId: string, overrides: Partial<NewRequest> = {}): NewRequest {
  return {
    id: randomUUID(),
    appId,
    endpoint: "",
    input: { prompt: "a cat" },
    priority: "normal",
    mode: "queue",
    startDeadline: null,
    maxAttempts: 3,
    webhookUrl: null,
    keyId: null,
    baseUrl: "http://127.0.0.1:8787",
    ...overrides,
  };
}

/** The write that fails a request whose runner disconnected and which has no attempts left. */
export const EXHAUSTED: TerminalWrite = {
  state: "FAILED",
  output: { detail: "Runner disconnected", error_type: "runner_disconnected" },
  statusCode: 503,
  error: "Runner disconnected",
  errorType: "runner_disconnected",
  billableUnits: null,
};

/** A usage record of a succeeded request of `appId` by key `k-a` of tenant `acme`, with `overrides`. */
export function usageRecord(appId: string, overrides: Partial<UsageRecord>): UsageRecord {
  return {
    requestId: randomUUID(),
    keyId: "k-a",
    tenant: "acme",
    appId,
    endpoint: "",
    state: "SUCCEEDED",
    queueMs: 10,
    runMs: 1_500,
    billableUnits: null,
    finishedAt: 0,
    ...overrides,
  };
}
