/**
 * `--log-format` / `DARKROOM_LOG_FORMAT` and `--log-level`: how they are read and checked, which
 * format a terminal and a pipe get by default, and what the server's logger writes.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createServerLogger, resolveLogFormat } from "../../src/cli/server-logger.js";
import { loadConfig } from "../../src/core/config.js";

describe("log format and level settings", () => {
  it("reads the flag over the environment, and leaves the choice open when neither is given", () => {
    assert.equal(loadConfig({}, {}).logFormat, null);
    assert.equal(loadConfig({}, { DARKROOM_LOG_FORMAT: "json" }).logFormat, "json");
    assert.equal(loadConfig({}, { DARKROOM_LOG_FORMAT: "" }).logFormat, null);
    assert.equal(loadConfig({ "log-format": "Pretty" }, { DARKROOM_LOG_FORMAT: "json" }).logFormat, "pretty");
    assert.equal(loadConfig({}, {}).logLevel, "info");
    assert.equal(loadConfig({ "log-level": "debug" }, { DARKROOM_LOG_LEVEL: "warn" }).logLevel, "debug");
  });

  it("refuses unknown values, naming where they came from and what is allowed", () => {
    assert.throws(() => loadConfig({ "log-format": "xml" }, {}), { message: "Invalid --log-format: 'xml' (expected json, pretty)" });
    assert.throws(() => loadConfig({}, { DARKROOM_LOG_FORMAT: "text" }), { message: "Invalid DARKROOM_LOG_FORMAT: 'text' (expected json, pretty)" });
    assert.throws(() => loadConfig({}, { DARKROOM_LOG_LEVEL: "verbose" }), /Invalid DARKROOM_LOG_LEVEL: 'verbose' \(expected fatal, error, warn, info, debug, trace, silent\)/);
  });

  it("defaults to pretty on a terminal and JSON elsewhere", () => {
    assert.equal(resolveLogFormat(null, { isTTY: true }), "pretty");
    assert.equal(resolveLogFormat(null, { isTTY: false }), "json");
    assert.equal(resolveLogFormat(null, {}), "json");
    assert.equal(resolveLogFormat("json", { isTTY: true }), "json");
    assert.equal(resolveLogFormat("pretty", { isTTY: false }), "pretty");
  });

  it("moves fields named like pino's own keys aside, so the entry's level and pid stay the server's", async () => {
    const lines: string[] = [];
    const logger = await createServerLogger({ level: "info", format: "json", destination: { write: (line: string) => void lines.push(line) } });
    logger.info({ app: "acme/app", level: "STDERR", pid: 4242, hostname: "runner-7" }, "a runner's line");
    const entry = JSON.parse(lines[0] ?? "{}") as Record<string, unknown>;
    assert.equal(entry["level"], 30);
    assert.equal(entry["pid"], process.pid);
    assert.deepEqual([entry["app_level"], entry["runner_pid"], entry["runner_hostname"]], ["STDERR", 4242, "runner-7"]);
    assert.equal(lines[0]?.match(/"level":/g)?.length, 1, lines[0]);
  });

  it("pretty writes one readable line per entry, without pid and hostname", async () => {
    const lines: string[] = [];
    const logger = await createServerLogger({ level: "info", format: "pretty", destination: { write: (line: string) => void lines.push(line) } });
    logger.info({ url: "http://127.0.0.1:8787", apps: ["darkroom/echo"] }, "darkroom listening");
    logger.warn({ app: "acme/app", level: "WARN" }, "low on memory");
    const text = lines.join("").replace(/\x1b\[[0-9;]*m/g, "");
    assert.match(text, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: darkroom listening \{"url":"http:\/\/127\.0\.0\.1:8787","apps":\["darkroom\/echo"\]\}\n/);
    assert.match(text, /\] WARN: low on memory \{"app":"acme\/app","app_level":"WARN"\}\n$/);
    assert.doesNotMatch(text, /pid|hostname/);
  });
});
