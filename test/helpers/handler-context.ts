/**
 * A stand-in for the runner's handler context, for unit tests that call an app's handler directly:
 * it reads data URIs, records progress and billing, and refuses to store files.
 * @module
 */
import assert from "node:assert/strict";
import type { HandlerContext } from "../../src/runtime/sdk.js";

export interface FakeContext<S> {
  ctx: HandlerContext<S>;
  /** "step/total message" for every progress report, in order. */
  progress: string[];
  billed: number[];
}

export function fakeContext<S>(state: S, controller = new AbortController()): FakeContext<S> {
  const progress: string[] = [];
  const billed: number[] = [];
  const ctx: HandlerContext<S> = {
    requestId: "test-request",
    state,
    signal: controller.signal,
    attempt: 1,
    log: () => {},
    progress: (step, total, message) => progress.push(`${step}/${total} ${message ?? ""}`),
    emit: () => {},
    bill: (units) => billed.push(units),
    throwIfCancelled: () => controller.signal.throwIfAborted(),
    files: {
      async read(url) {
        const match = /^data:([^;,]+);base64,(.*)$/.exec(url);
        assert.ok(match, "the test passes data URIs");
        return { data: Buffer.from(match[2]!, "base64"), contentType: match[1]! };
      },
      async put() {
        throw new Error("this app stores no files");
      },
    },
  };
  return { ctx, progress, billed };
}
