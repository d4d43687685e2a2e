/**
 * Queue-API helpers for integration tests: submit, poll until a state, read a request's record, and
 * read a server-sent-events stream to its end.
 * @module
 */
import assert from "node:assert/strict";
import { eventually, http } from "./platform.js";

type Target = { url: string; auth: Record<string, string> };

export type WireStatus = "IN_QUEUE" | "IN_PROGRESS" | "COMPLETED";

/** Submits to the queue and returns the request id (asserting fal's submit shape). */
export async function submit(p: Target, appId: string, input: unknown, headers: Record<string, string> = {}): Promise<string> {
  const res = await http(p, "POST", `/queue/${appId}`, input, headers);
  assert.equal(res.status, 200, `submit to ${appId} failed: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.status, "IN_QUEUE");
  assert.equal(typeof res.body.request_id, "string");
  return res.body.request_id as string;
}

export async function status(p: Target, appId: string, id: string, logs: string = "0"): Promise<{ status: number; body: any }> {
  const res = await http(p, "GET", `/queue/${appId}/requests/${id}/status?logs=${logs}`);
  return { status: res.status, body: res.body };
}

/** Polls the status route until the request reaches `wanted` (or a later state) and returns the body. */
export async function waitFor(p: Target, appId: string, id: string, wanted: WireStatus, timeoutMs = 20_000): Promise<any> {
  const order: WireStatus[] = ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"];
  return eventually(async () => {
    const res = await status(p, appId, id);
    assert.ok(res.status === 200 || res.status === 202, `status answered ${res.status}: ${JSON.stringify(res.body)}`);
    return order.indexOf(res.body.status) >= order.indexOf(wanted) ? res.body : null;
  }, timeoutMs, 25);
}

export function waitCompleted(p: Target, appId: string, id: string, timeoutMs = 20_000): Promise<any> {
  return waitFor(p, appId, id, "COMPLETED", timeoutMs);
}

/** The platform API's view of a request (state, attempt, started_at, finished_at, logs...). */
export async function record(p: Target, id: string): Promise<any> {
  const res = await http(p, "GET", `/v1/requests/${id}`);
  assert.equal(res.status, 200, `GET /v1/requests/${id}: ${JSON.stringify(res.body)}`);
  return res.body;
}

export async function result(p: Target, appId: string, id: string): Promise<{ status: number; headers: Headers; body: any }> {
  return http(p, "GET", `/queue/${appId}/requests/${id}`);
}

export async function cancel(p: Target, appId: string, id: string): Promise<{ status: number; body: any }> {
  const res = await http(p, "PUT", `/queue/${appId}/requests/${id}/cancel`);
  return { status: res.status, body: res.body };
}

export interface SseRead {
  status: number;
  contentType: string;
  events: any[];
  /** True when the server closed the stream (rather than the timeout cutting it). */
  closedByServer: boolean;
}

/** Reads `data:` events until the server closes the stream or `timeoutMs` passes. */
export async function readSse(p: Target, route: string, timeoutMs = 20_000): Promise<SseRead> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const res = await fetch(`${p.url}${route}`, {
    headers: { ...p.auth, accept: "application/json, text/event-stream" },
    signal: controller.signal,
  });
  const events: any[] = [];
  let closedByServer = false;
  let buffer = "";
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\n");
        if (data) events.push(JSON.parse(data));
      }
    }
    closedByServer = true;
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
  }
  return { status: res.status, contentType: res.headers.get("content-type") ?? "", events, closedByServer };
}

/**
 * Follows a request's status stream (with logs) to its end, asserts that the request completed
 * without an error, and returns the progress reports the stream carried, in order.
 */
export async function streamedProgress(p: Target, appId: string, id: string, timeoutMs = 20_000): Promise<any[]> {
  const sse = await readSse(p, `/queue/${appId}/requests/${id}/status/stream?logs=1`, timeoutMs);
  assert.equal(sse.events.at(-1).status, "COMPLETED");
  assert.equal(sse.events.at(-1).error, undefined);
  return sse.events.filter((e) => e.progress).map((e) => e.progress);
}

/** Asserts that progress values (steps or fractions) never go down. */
export function assertProgressForward(values: number[]): void {
  assert.deepEqual(values, [...values].sort((a, b) => a - b), "progress only moves forward");
}

/**
 * Cancels a running request and waits for it to end; asserts that it ended as a client cancellation
 * (wire error type and stored state) and returns the milliseconds from the cancel to the end.
 */
export async function cancelAndWait(p: Target, appId: string, id: string, timeoutMs = 10_000): Promise<number> {
  const cancelledAt = Date.now();
  assert.equal((await cancel(p, appId, id)).status, 202);
  const done = await waitCompleted(p, appId, id, timeoutMs);
  const took = Date.now() - cancelledAt;
  assert.equal(done.error_type, "client_cancelled");
  assert.equal((await record(p, id)).state, "CANCELLED");
  return took;
}

/** The pool snapshot of one app from `/v1/ops` (runners, cold starts, setup errors). */
export async function opsOf(p: Target, appId: string): Promise<any> {
  const res = await http(p, "GET", "/v1/ops");
  assert.equal(res.status, 200);
  const app = (res.body.apps as any[]).find((a) => a.app === appId);
  assert.ok(app, `${appId} is not in /v1/ops`);
  return app;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
