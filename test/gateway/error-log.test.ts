/**
 * Which level a request's error is logged at, and with what: client and expected errors at info or
 * warn with code and message and no stack; faults of the server or an app at error with the stack
 * of what was thrown.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FastifyRequest } from "fastify";
import pino from "pino";
import { PlatformError, fieldError, type ErrorCode } from "../../src/core/errors.js";
import { logRequestError, requestErrorLevel } from "../../src/gateway/error-log.js";

/** A request whose logger keeps the parsed JSON lines. */
function fakeRequest(url = "/run/acme/app?sig=secret"): { request: FastifyRequest; lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = [];
  const log = pino({ level: "trace" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, any>) });
  return { request: { method: "POST", url, log } as unknown as FastifyRequest, lines };
}

describe("request error logging", () => {
  it("puts every registry code at the level its kind calls for", () => {
    const cases: [ErrorCode, "info" | "warn" | "error"][] = [
      ["ERR_BAD_JSON", "info"],
      ["ERR_VALIDATION", "info"],
      ["ERR_UNAUTHORIZED", "info"],
      ["ERR_PATH_NOT_FOUND", "info"],
      ["ERR_CLIENT_CANCELLED", "info"],
      ["ERR_QUEUE_FULL", "warn"],
      ["ERR_APP_UNAVAILABLE", "warn"],
      ["ERR_RUNNER_SCHEDULING", "warn"],
      ["ERR_RUNNER_DISCONNECTED", "warn"],
      ["ERR_REQUEST_TIMEOUT", "warn"],
      ["ERR_STARTUP_TIMEOUT", "warn"],
      ["ERR_INTERNAL", "error"],
      ["ERR_APP_ERROR", "error"],
      ["ERR_RUNNER_SERVER_ERROR", "error"],
      ["ERR_RUNNER_INCOMPLETE", "error"],
    ];
    for (const [code, level] of cases) assert.equal(requestErrorLevel(new PlatformError(code)), level, code);
    // An app's own error with a 4xx status is the client's.
    assert.equal(requestErrorLevel(new PlatformError("ERR_APP_ERROR", { status: 400 })), "info");
  });

  it("logs a client error with code, status, message and path (no query), and no stack", () => {
    const { request, lines } = fakeRequest();
    logRequestError(request, fieldError("prompt", "field required", "missing"));
    assert.equal(lines.length, 1);
    const [line] = lines;
    assert.equal(line?.["level"], 30);
    assert.equal(line?.["msg"], "field required");
    assert.deepEqual(
      { code: line?.["code"], status: line?.["status"], method: line?.["method"], path: line?.["path"], fields: line?.["fields"] },
      { code: "ERR_VALIDATION", status: 422, method: "POST", path: "/run/acme/app", fields: ["body.prompt"] },
    );
    assert.equal(line?.["err"], undefined);
    assert.doesNotMatch(JSON.stringify(line), /secret|\n\s+at /);
  });

  it("logs an expected 503 at warn without its cause's stack", () => {
    const { request, lines } = fakeRequest();
    logRequestError(request, new PlatformError("ERR_APP_UNAVAILABLE", { message: "acme/app is unavailable: no GPU", cause: new Error("probe") }));
    assert.equal(lines[0]?.["level"], 40);
    assert.equal(lines[0]?.["msg"], "acme/app is unavailable: no GPU");
    assert.equal(lines[0]?.["err"], undefined);
  });

  it("logs an internal error at error with the thrown exception's stack", () => {
    const { request, lines } = fakeRequest();
    const thrown = new TypeError("cannot read properties of undefined");
    logRequestError(request, new PlatformError("ERR_INTERNAL", { cause: thrown }), thrown);
    assert.equal(lines[0]?.["level"], 50);
    assert.equal(lines[0]?.["code"], "ERR_INTERNAL");
    assert.equal(lines[0]?.["err"]?.["message"], "cannot read properties of undefined");
    assert.match(String(lines[0]?.["err"]?.["stack"]), /TypeError: cannot read properties of undefined\n\s+at /);
  });
});
