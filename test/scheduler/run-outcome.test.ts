/**
 * The outcome decision on its own, with no server: every code of the error registry × the client
 * having asked to cancel or not, and, written to a real (in-memory SQLite) store, × the attempt the
 * run was (attempts left or the last one).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { ERRORS, PlatformError, type ErrorCode } from "../../src/core/errors.js";
import { applyOutcome, decideOutcome, requeues } from "../../src/scheduler/run-outcome.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { Store } from "../../src/store/store.js";

const CODES = Object.keys(ERRORS) as ErrorCode[];
/** The errors after which the same request runs again: its runner went away, it ran too long, or storage could not give back its stored input. */
const REQUEUED: readonly ErrorCode[] = ["ERR_REQUEST_TIMEOUT", "ERR_RUNNER_DISCONNECTED", "ERR_STORE_UNAVAILABLE"];

describe("decideOutcome", () => {
  it("finishes a result SUCCEEDED with its output and billable units, cancelled or not", () => {
    for (const cancelRequested of [false, true]) {
      assert.deepEqual(decideOutcome({ ok: true, output: { a: 1 }, billableUnits: 3 }, { cancelRequested }), {
        action: "finish",
        write: { state: "SUCCEEDED", output: { a: 1 }, statusCode: 200, error: null, errorType: null, billableUnits: 3 },
      });
    }
  });

  it("requeues exactly the registry's requeue codes, and ends the rest with their status and error type", () => {
    assert.deepEqual(CODES.filter((code) => requeues(new PlatformError(code))), REQUEUED);
    for (const code of CODES) {
      const error = new PlatformError(code, { message: `ended with ${code}` });
      const decision = decideOutcome({ ok: false, error });
      const write = decision.action === "requeue" ? decision.exhausted : decision.write;
      assert.equal(decision.action, REQUEUED.includes(code) ? "requeue" : "finish", code);
      assert.equal(write.state, code === "ERR_CLIENT_CANCELLED" ? "CANCELLED" : "FAILED", code);
      assert.equal(write.statusCode, ERRORS[code].status, code);
      assert.equal(write.errorType, error.errorType ?? null, code);
      assert.equal(write.error, `ended with ${code}`, code);
      assert.deepEqual(write.output, error.toBody(), code);
    }
  });

  it("ends a run its client asked to cancel CANCELLED, whatever the error", () => {
    for (const code of CODES) {
      const decision = decideOutcome({ ok: false, error: new PlatformError(code) }, { cancelRequested: true });
      assert.equal(decision.action, "finish", code);
      if (decision.action !== "finish") continue;
      assert.equal(decision.write.state, "CANCELLED", code);
      assert.equal(decision.write.statusCode, 499, code);
      assert.equal(decision.write.errorType, "client_cancelled", code);
    }
  });
});

describe("applyOutcome on a store", () => {
  let store: Store;
  const appId = "test/outcomes";

  before(async () => {
    store = createSqliteStore({ path: ":memory:" });
    await store.migrate();
  });

  after(async () => {
    await store.close();
  });

  /** A request claimed for its `attempt`-th run of `maxAttempts`. */
  async function running(attempt: number, maxAttempts: number): Promise<{ id: string; guard: { owner: string; attempt: number } }> {
    const id = randomUUID();
    await store.enqueue({ id, appId, endpoint: "", input: {}, priority: "normal", mode: "queue", startDeadline: null, maxAttempts, webhookUrl: null, keyId: null, baseUrl: "http://127.0.0.1:8787" });
    for (let n = 1; ; n++) {
      const [claimed] = await store.claimMany(appId, "runner-1", 30_000, 1, undefined, { only: [id] });
      assert.equal(claimed?.attempt, n);
      if (n === attempt) return { id, guard: { owner: "runner-1", attempt: n } };
      const back = await applyOutcome(store, id, { owner: "runner-1", attempt: n }, decideOutcome({ ok: false, error: new PlatformError("ERR_RUNNER_DISCONNECTED") }));
      assert.equal(back?.state, "QUEUED");
    }
  }

  it("writes every code × attempt × cancel state as decided, once", async () => {
    for (const code of CODES) {
      for (const [attempt, maxAttempts] of [
        [1, 2],
        [2, 2],
      ] as const) {
        for (const cancelRequested of [false, true]) {
          const { id, guard } = await running(attempt, maxAttempts);
          const decision = decideOutcome({ ok: false, error: new PlatformError(code) }, { cancelRequested });
          const record = await applyOutcome(store, id, guard, decision);
          const where = `${code}, attempt ${attempt} of ${maxAttempts}, cancel ${cancelRequested}`;
          assert.ok(record, where);
          const requeued = !cancelRequested && REQUEUED.includes(code) && attempt < maxAttempts;
          const state = requeued ? "QUEUED" : cancelRequested || code === "ERR_CLIENT_CANCELLED" ? "CANCELLED" : "FAILED";
          assert.equal(record.state, state, where);
          if (requeued) assert.equal(record.attempt, attempt + 1, where);
          else assert.equal(record.statusCode, cancelRequested ? 499 : ERRORS[code].status, where);
          // A second report of the same run writes nothing.
          assert.equal(await applyOutcome(store, id, guard, decision), null, where);
        }
      }
    }
  });
});
