/**
 * `darkroom serve`'s logs, from a real server process: readable lines with `--log-format pretty`,
 * one JSON object per line with `json`, client errors (404, 422, an unavailable app's 503) at info
 * or warn without a stack, and a bad `--log-format` refused before anything starts.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { freePort } from "../helpers/gateway-process.js";
import { ADMIN_KEY, ECHO_APP, TEST_APPS } from "../helpers/platform.js";
import { cli, startCli, type RunningCli } from "./helpers.js";

interface Served {
  url: string;
  cli: RunningCli;
  dataDir: string;
  /** SIGTERM, wait for the exit, delete the data folder. */
  stop(): Promise<void>;
}

async function serve(args: string[], env: Record<string, string> = {}): Promise<Served> {
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(tmpdir(), "darkroom-serve-log-"));
  // Only the echo app and one that is unavailable here: quick to start, and a 503 to ask for.
  const apps = [ECHO_APP, path.join(TEST_APPS, "unavailable.ts")].join(",");
  const running = startCli(["serve", "--port", String(port), "--data-dir", dataDir, "--builtin-apps", "false", "--apps", apps, ...args], {
    env: { DARKROOM_ADMIN_KEY: ADMIN_KEY, ...env },
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (running.child.exitCode !== null) throw new Error(`serve exited (${running.child.exitCode}):\n${running.stdout}\n${running.stderr}`);
    const ready = await fetch(`${url}/ready`).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`serve not ready within 60 s:\n${running.stdout}\n${running.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    cli: running,
    dataDir,
    async stop() {
      if (running.child.exitCode === null) running.child.kill("SIGTERM");
      await running.done;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const auth = { authorization: `Key ${ADMIN_KEY}`, "content-type": "application/json" };

/** A 404, a 422 and a 503, as a client would cause them; returns the statuses. */
async function clientErrors(url: string): Promise<number[]> {
  const notFound = await fetch(`${url}/no/such/path`, { headers: auth });
  const invalid = await fetch(`${url}/run/darkroom/echo`, { method: "POST", headers: auth, body: JSON.stringify({ sleep_ms: "soon" }) });
  const unavailable = await fetch(`${url}/run/darkroom-test/unavailable`, { method: "POST", headers: auth, body: "{}" });
  await Promise.all([notFound.text(), invalid.text(), unavailable.text()]);
  return [notFound.status, invalid.status, unavailable.status];
}

/** Lines written so far, once `predicate` holds for the output (log lines trail the responses a little). */
async function outputWhen(running: RunningCli, predicate: (stdout: string) => boolean): Promise<string[]> {
  for (let i = 0; i < 100 && !predicate(running.stdout); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  return running.stdout.split("\n").filter((line) => line.trim() !== "");
}

describe("darkroom serve --log-format", () => {
  describe("json", () => {
    let server: Served;
    let lines: Record<string, unknown>[];
    let pid: number | undefined;
    before(async () => {
      server = await serve(["--log-format", "json"]);
      pid = server.cli.child.pid;
      assert.deepEqual(await clientErrors(server.url), [404, 422, 503]);
      // A run that succeeds starts a runner, whose log line carries the runner's own pid.
      const ok = await fetch(`${server.url}/run/darkroom/echo`, { method: "POST", headers: auth, body: JSON.stringify({ message: "hi" }) });
      assert.equal(ok.status, 200, await ok.text());
      const raw = await outputWhen(server.cli, (out) => out.includes("ERR_APP_UNAVAILABLE") && out.includes("runner ready"));
      lines = raw.map((line) => {
        assert.ok(line.startsWith("{"), `not a JSON line: ${line}`);
        return JSON.parse(line) as Record<string, unknown>;
      });
    });
    after(() => server.stop());

    it("prints one parseable JSON object per line", () => {
      assert.ok(lines.some((l) => l["msg"] === "darkroom listening" && l["level"] === 30));
      // The server's pid stays the entry's: the runner's is moved to a field of its own.
      for (const l of lines) assert.equal(l["pid"], pid, JSON.stringify(l));
      const starting = lines.find((l) => l["msg"] === "runner starting");
      assert.equal(typeof starting?.["runner_pid"], "number", JSON.stringify(starting));
    });

    it("logs 404, 422 and an unavailable app's 503 at info or warn, with code and message and no stack", () => {
      const expected: [string, number, number][] = [
        ["ERR_PATH_NOT_FOUND", 404, 30],
        ["ERR_VALIDATION", 422, 30],
        ["ERR_APP_UNAVAILABLE", 503, 40],
      ];
      for (const [code, status, level] of expected) {
        const entry = lines.find((l) => l["code"] === code);
        assert.ok(entry, `no log line for ${code} in:\n${server.cli.stdout}`);
        assert.equal(entry["status"], status);
        assert.equal(entry["level"], level, JSON.stringify(entry));
        assert.equal(typeof entry["msg"], "string");
        assert.notEqual(entry["msg"], "");
        assert.equal(entry["stack"], undefined);
        assert.equal(entry["err"], undefined, JSON.stringify(entry));
        assert.doesNotMatch(JSON.stringify(entry), /\n\s+at /);
      }
      assert.match(String(lines.find((l) => l["code"] === "ERR_APP_UNAVAILABLE")?.["msg"]), /frobnicate/);
      assert.deepEqual(lines.find((l) => l["code"] === "ERR_VALIDATION")?.["fields"], ["body.sleep_ms"]);
      assert.equal(lines.filter((l) => typeof l["level"] === "number" && l["level"] >= 50).length, 0, "nothing at error or above");
    });
  });

  it("pretty prints readable lines: time, level, message, fields; the flag wins over the environment", async () => {
    // NO_COLOR: the lines are matched as text, whatever colors the test runner's environment asks for.
    const server = await serve(["--log-format", "pretty"], { DARKROOM_LOG_FORMAT: "json", NO_COLOR: "1" });
    try {
      await clientErrors(server.url);
      const lines = await outputWhen(server.cli, (out) => out.includes("Remedy: apt-get"));
      assert.ok(lines.length > 0);
      for (const line of lines) assert.doesNotMatch(line, /^\s*\{/, `a JSON line in pretty output: ${line}`);
      assert.ok(lines.some((l) => /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: darkroom listening \{.*"url":"http:\/\/127\.0\.0\.1:\d+"/.test(l)), lines.join("\n"));
      assert.ok(lines.some((l) => /INFO: Path \/no\/such\/path not found .*"code":"ERR_PATH_NOT_FOUND"/.test(l)), lines.join("\n"));
      assert.ok(lines.some((l) => /WARN: darkroom-test\/unavailable is unavailable: .*"status":503/.test(l)), lines.join("\n"));
      // No pid or hostname noise, and no stack for a client's error.
      assert.doesNotMatch(server.cli.stdout, /"(pid|hostname)":/);
      assert.doesNotMatch(server.cli.stdout, /\n\s+at /);
    } finally {
      await server.stop();
    }
  });

  it("refuses a bad value, from the flag or the environment, with a message and exit 2", async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "darkroom-serve-log-"));
    try {
      const [flag, env] = await Promise.all([
        cli(["serve", "--port", "0", "--data-dir", dataDir, "--log-format", "xml"]),
        cli(["serve", "--port", "0", "--data-dir", dataDir], { env: { DARKROOM_LOG_FORMAT: "yaml" } }),
      ]);
      assert.equal(flag.code, 2, flag.stderr);
      assert.equal(flag.stderr, "error: Invalid --log-format: 'xml' (expected json, pretty)\n");
      assert.equal(env.code, 2, env.stderr);
      assert.equal(env.stderr, "error: Invalid DARKROOM_LOG_FORMAT: 'yaml' (expected json, pretty)\n");
      assert.equal(flag.stdout + env.stdout, "");
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
