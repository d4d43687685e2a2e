/**
 * `darkroom run path/app.py::Class` (fal's `fal run`): starts a gateway, serves the fal app file with
 * a Python runner, and serves the edited code after the file changes; Ctrl-C stops it all. A copy
 * of the fal example in a temporary folder is the app, edited by the test.
 * @module
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { eventually, ADMIN_KEY, REPO_ROOT, startTestPlatform } from "../helpers/platform.js";
import { cli, startCli, type RunningCli } from "./helpers.js";

const PYTHON = process.env["PYTHON"] ?? "python3";

function hasPydantic(): boolean {
  try {
    execFileSync(PYTHON, ["-c", "import pydantic"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Whether the process has exited (gone, or a zombie nobody has reaped yet). */
function exited(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

async function callCard(base: string, text: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}/run/local/text-card`, { method: "POST", headers: { authorization: `Key ${ADMIN_KEY}`, "content-type": "application/json" }, body: JSON.stringify({ text, image_size: { width: 8, height: 8 } }) });
  return { status: res.status, body: await res.json() };
}

describe("darkroom run app.py::Class", { skip: hasPydantic() ? false : `${PYTHON} has no pydantic` }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), "darkroom-dev-run-"));
  const appFile = path.join(dir, "card_app.py");
  copyFileSync(path.join(REPO_ROOT, "python/examples/fal_text_card.py"), appFile);
  let running: RunningCli | undefined;
  after(async () => {
    // A test that failed half-way leaves it running: Ctrl-C stops its runner and gateway too.
    if (running && running.child.exitCode === null) {
      running.child.kill("SIGINT");
      const forced = setTimeout(() => running?.child.kill("SIGKILL"), 15_000);
      await running.done;
      clearTimeout(forced);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves the file, serves the edited file after a change, and stops on SIGINT", async () => {
    running = startCli(["run", `${appFile}::TextCard`, "--port", "0", "--data-dir", path.join(dir, "data")], { env: { DARKROOM_ADMIN_KEY: ADMIN_KEY, PYTHON } });
    // Both lines: the gateway's, then the app's (written a moment later).
    const base = await eventually(() => {
      const stderr = running?.stderr ?? "";
      const url = /Darkroom is up: the API and the Playground at (http:\/\/[^/\s]+)\//.exec(stderr)?.[1];
      if (url && /Playground: .*\n/.test(stderr)) return url;
      return running?.child.exitCode !== null ? Promise.reject(new Error(stderr)) : null;
    }, 30_000);
    assert.match(running.stderr, /Serving local\/text-card from /);
    assert.match(running.stderr, new RegExp(`POST ${base}/run/local/text-card`));
    assert.match(running.stderr, /Playground: .*\/app\?id=local%2Ftext-card/);

    const first = await eventually(async () => {
      const reply = await callCard(base, "one two three");
      return reply.status === 200 ? reply : null;
    }, 30_000);
    assert.equal(first.body.words, 3);
    assert.equal(first.body.text, "one two three");

    // An edit: the card's text is reversed from now on.
    writeFileSync(appFile, readFileSync(appFile, "utf8").replace("text = input.text.upper() if input.shout else input.text", "text = (input.text.upper() if input.shout else input.text)[::-1]"));
    await eventually(() => /card_app\.py changed: restarting the runner/.test(running?.stderr ?? ""), 10_000);
    const edited = await eventually(async () => {
      const reply = await callCard(base, "one two three");
      return reply.status === 200 && reply.body.text === "eerht owt eno" ? reply : null;
    }, 30_000);
    assert.equal(edited.body.words, 3);

    running.child.kill("SIGINT");
    const result = await running.done;
    assert.equal(result.code, 0, result.stderr);
    await assert.rejects(fetch(`${base}/health`), "the gateway stopped");
  });

  it("serves the file on a gateway already running (--url), leaving it running after Ctrl-C", async () => {
    const p = await startTestPlatform({ env: { DARKROOM_LOCAL_RUNNERS: "false" } });
    try {
      const served = startCli(["run", `${appFile}::TextCard`, "--url", p.url], { env: { DARKROOM_KEY: ADMIN_KEY, PYTHON } });
      try {
        await eventually(() => (/Serving local\/text-card/.test(served.stderr) ? true : served.child.exitCode !== null ? Promise.reject(new Error(served.stderr)) : null), 30_000);
        assert.doesNotMatch(served.stderr, /Darkroom is up/, "no gateway of its own");
        const reply = await eventually(async () => {
          const r = await callCard(p.url, "a b");
          return r.status === 200 ? r : null;
        }, 30_000);
        assert.equal(reply.body.words, 2);
      } finally {
        served.child.kill("SIGINT");
        assert.equal((await served.done).code, 0);
      }
      assert.equal((await fetch(`${p.url}/health`)).status, 200, "the gateway is still up");
    } finally {
      await p.close();
    }
  });

  it("its runner does not outlive it: killed with SIGKILL, the runner drains and exits", async () => {
    const killed = startCli(["run", `${appFile}::TextCard`, "--port", "0", "--data-dir", path.join(dir, "data3")], { env: { DARKROOM_ADMIN_KEY: ADMIN_KEY, PYTHON } });
    await eventually(() => (/Playground: .*\n/.test(killed.stderr) ? true : killed.child.exitCode !== null ? Promise.reject(new Error(killed.stderr)) : null), 30_000);
    const runnerPid = await eventually(() => {
      const found = spawnSync("pgrep", ["-f", `darkroom_runner .*--parent-pid ${killed.child.pid}( |$)`], { encoding: "utf8" }).stdout.trim();
      return found ? Number(found.split("\n")[0]) : null;
    }, 10_000);
    killed.child.kill("SIGKILL");
    // Gone, or a zombie: its parent died, and whoever inherits it may not reap it at once.
    await eventually(() => (exited(runnerPid) ? true : null), 15_000).catch((err: unknown) => {
      throw new Error(`runner ${runnerPid} still there: ${readFileSync(`/proc/${runnerPid}/stat`, "utf8").slice(0, 60)} ${readFileSync(`/proc/${runnerPid}/cmdline`, "utf8").replace(/\0/g, " ").slice(0, 300)}\n${killed.stderr.slice(-1500)}`, { cause: err });
    });
    await killed.done; // its output pipes close once the runner that shared them is gone
  });

  it("says what is wrong with a file that does not load, before starting anything", async () => {
    const broken = path.join(dir, "broken.py");
    writeFileSync(broken, "import fal\nraise RuntimeError('broken on purpose')\n");
    const result = await cli(["run", `${broken}::Nothing`, "--port", "0", "--data-dir", path.join(dir, "data2")], { env: { DARKROOM_ADMIN_KEY: ADMIN_KEY, PYTHON } });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /the app does not load:[\s\S]*broken on purpose/);
    assert.doesNotMatch(result.stderr, /Darkroom is up/);
  });
});
