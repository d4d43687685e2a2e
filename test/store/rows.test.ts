/**
 * What the two store drivers share (src/store/rows.ts, src/store/limits.ts): listing limits, the
 * row-to-record mapping with each driver's booleans, claim order, and the terminal write of a request
 * its client cancelled, which must store exactly what it stored before it was built from the registry.
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ERRORS, PlatformError } from "../../src/core/errors.js";
import { clampLimit, requestListLimit, usageListLimit } from "../../src/store/limits.js";
import {
  CANCELLED_BY_CLIENT,
  newRequestColumns,
  sortInClaimOrder,
  terminalColumns,
  toRequestRecord,
  toWebhookAttempt,
  usageOfRequest,
  type RequestRow,
} from "../../src/store/rows.js";

function requestRow(overrides: Partial<RequestRow> = {}): RequestRow {
  return {
    seq: 1,
    id: "req-1",
    app_id: "app",
    endpoint: "",
    input: '{"prompt":"a cat"}',
    state: "QUEUED",
    priority: "normal",
    priority_rank: 0,
    mode: "queue",
    created_at: 1000,
    started_at: null,
    finished_at: null,
    start_deadline: null,
    attempt: 1,
    max_attempts: 3,
    lease_owner: null,
    lease_expires_at: null,
    cancel_requested: 0,
    webhook_url: null,
    key_id: "key",
    tenant: "team",
    fair_tag: 0,
    base_url: "http://localhost:8080",
    output_ttl_seconds: null,
    output: null,
    status_code: null,
    error: null,
    error_type: null,
    billable_units: null,
    cache: null,
    reused_from: null,
    ...overrides,
  };
}

describe("store limits", () => {
  it("clamps a limit to a whole number from 1 to the maximum", () => {
    assert.equal(clampLimit(undefined, 50, 500), 50);
    assert.equal(clampLimit(Number.NaN, 50, 500), 50);
    assert.equal(clampLimit(Number.POSITIVE_INFINITY, 50, 500), 50);
    assert.equal(clampLimit(0, 50, 500), 1);
    assert.equal(clampLimit(-7, 50, 500), 1);
    assert.equal(clampLimit(0.5, 50, 500), 1);
    assert.equal(clampLimit(12.9, 50, 500), 12);
    assert.equal(clampLimit(500, 50, 500), 500);
    assert.equal(clampLimit(501, 50, 500), 500);
  });

  it("lists 50 requests by default and 500 at most, 1000 usage records by default and 10000 at most", () => {
    assert.equal(requestListLimit(undefined), 50);
    assert.equal(requestListLimit(10_000), 500);
    assert.equal(usageListLimit(undefined), 1000);
    assert.equal(usageListLimit(1_000_000), 10_000);
  });
});

describe("store rows", () => {
  it("reads cancel_requested and ok as SQLite (0/1) and PostgreSQL (boolean) return them", () => {
    assert.equal(toRequestRecord(requestRow({ cancel_requested: 0 })).cancelRequested, false);
    assert.equal(toRequestRecord(requestRow({ cancel_requested: 1 })).cancelRequested, true);
    assert.equal(toRequestRecord(requestRow({ cancel_requested: false })).cancelRequested, false);
    assert.equal(toRequestRecord(requestRow({ cancel_requested: true })).cancelRequested, true);
    const attempt = { webhook_id: 1, request_id: "req-1", attempt: 1, at: 5, status: 200, error: null, duration_ms: 3 };
    assert.equal(toWebhookAttempt({ ...attempt, ok: 1 }).ok, true);
    assert.equal(toWebhookAttempt({ ...attempt, ok: 0 }).ok, false);
    assert.equal(toWebhookAttempt({ ...attempt, ok: true }).ok, true);
    assert.equal(toWebhookAttempt({ ...attempt, ok: false }).ok, false);
  });

  it("parses input and output when first read, and keeps a value written over them", () => {
    const record = toRequestRecord(requestRow({ input: "not json until read", output: null }));
    assert.equal(record.output, null);
    assert.throws(() => record.input, SyntaxError);
    record.input = { replaced: true };
    assert.deepEqual(record.input, { replaced: true });
    assert.deepEqual(Object.keys(toRequestRecord(requestRow())).filter((k) => k === "input" || k === "output"), ["input", "output"]);
    assert.deepEqual(toRequestRecord(requestRow()).input, { prompt: "a cat" });
  });

  it("puts claimed rows in claim order: priority, then fair-share tag, then creation time, then sequence", () => {
    const rows = [
      requestRow({ id: "low", priority_rank: 1, created_at: 1, seq: 1 }),
      requestRow({ id: "late", created_at: 9, seq: 2 }),
      requestRow({ id: "tie-b", created_at: 5, seq: 4 }),
      requestRow({ id: "tie-a", created_at: 5, seq: 3 }),
      requestRow({ id: "old-but-behind", created_at: 0, seq: 0, fair_tag: 2 }),
      requestRow({ id: "new-but-ahead", priority_rank: 1, created_at: 10, seq: 10, fair_tag: -1 }),
    ];
    assert.deepEqual(sortInClaimOrder(rows).map((r) => r.id), ["tie-a", "tie-b", "late", "old-but-behind", "new-but-ahead", "low"]);
  });

  it("stores an absent input as JSON null and keeps serialized input as given", () => {
    const req = {
      id: "r",
      appId: "app",
      endpoint: "",
      input: undefined,
      priority: "normal" as const,
      mode: "queue" as const,
      startDeadline: null,
      maxAttempts: 1,
      webhookUrl: null,
      keyId: null,
      baseUrl: "http://x",
    };
    assert.equal(newRequestColumns(req, 1).input, "null");
    assert.equal(newRequestColumns(req, 1).outputTtlSeconds, null);
    assert.equal(newRequestColumns({ ...req, input: { a: 1 }, inputJson: '{"a": 1}' }, 1).input, '{"a": 1}');
  });

  it("records usage only for a finished request: queue time to its start, run time from there", () => {
    assert.equal(usageOfRequest(requestRow()), null);
    const usage = usageOfRequest(requestRow({ state: "SUCCEEDED", created_at: 1000, started_at: 1500, finished_at: 1800, billable_units: 2 }));
    assert.deepEqual(usage, {
      requestId: "req-1",
      keyId: "key",
      tenant: "team",
      appId: "app",
      endpoint: "",
      state: "SUCCEEDED",
      queueMs: 500,
      runMs: 300,
      billableUnits: 2,
      cache: null,
      finishedAt: 1800,
    });
    const neverStarted = usageOfRequest(requestRow({ state: "CANCELLED", created_at: 1000, finished_at: 1200 }));
    assert.equal(neverStarted?.queueMs, 200);
    assert.equal(neverStarted?.runMs, 0);
  });
});

describe("the client-cancelled terminal write", () => {
  it("is the registry's ERR_CLIENT_CANCELLED", () => {
    const error = new PlatformError("ERR_CLIENT_CANCELLED");
    assert.deepEqual(CANCELLED_BY_CLIENT, {
      state: "CANCELLED",
      output: error.toBody(),
      statusCode: ERRORS.ERR_CLIENT_CANCELLED.status,
      error: ERRORS.ERR_CLIENT_CANCELLED.message,
      errorType: ERRORS.ERR_CLIENT_CANCELLED.errorType,
      billableUnits: null,
    });
  });

  it("stores byte for byte what the drivers stored before", () => {
    const columns = terminalColumns("req-1", CANCELLED_BY_CLIENT, 1234);
    assert.deepEqual(columns, {
      id: "req-1",
      state: "CANCELLED",
      output: '{"detail":"Request cancelled by client","error_type":"client_cancelled"}',
      statusCode: 499,
      error: "Request cancelled by client",
      errorType: "client_cancelled",
      billableUnits: null,
      finishedAt: 1234,
    });
  });

  it("passes only the free-text columns through the driver's text filter", () => {
    const write = { ...CANCELLED_BY_CLIENT, output: { detail: "a\u0000b" }, error: "a\u0000b", errorType: "t\u0000" };
    const columns = terminalColumns("req-1", write, 1, (value) => value?.replaceAll("\u0000", "?") ?? null);
    assert.equal(columns.error, "a?b");
    assert.equal(columns.errorType, "t?");
    assert.equal(columns.output, JSON.stringify({ detail: "a\u0000b" }));
  });
});
