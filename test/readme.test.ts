/**
 * The README's examples, run as a new user runs them: a copy of the checkout, `npm start` in it,
 * then every shell and JavaScript block pasted in order into one shell (so variables carry from
 * block to block, as in a terminal), with `set -euo pipefail` so that an unset variable or a
 * failing command stops the run. Each block is marked in the README with
 * `<!-- readme-example: NAME -->` (run, and its output checked below) or
 * `<!-- readme-example: skip (why) -->`; a block with neither fails the test, so no example goes
 * unchecked by accident.
 * @module
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { FIXTURES, REPO_ROOT } from "./helpers/platform.js";

interface Example {
  name: string;
  lang: "sh" | "js";
  code: string;
}

const RUNNABLE = new Map([
  ["sh", "sh"],
  ["bash", "sh"],
  ["js", "js"],
  ["ts", "js"],
] as const);

/** Every shell and JavaScript block of the README with its marker; throws on a block without one. */
function readExamples(markdown: string): { run: Example[]; skipped: string[] } {
  const run: Example[] = [];
  const skipped: string[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w*)\s*$/.exec(lines[i] ?? "");
    if (!fence) continue;
    const end = lines.findIndex((line, j) => j > i && line.startsWith("```"));
    assert.ok(end > i, `README line ${i + 1}: a code block that never closes`);
    const lang = RUNNABLE.get((fence[1] ?? "") as "sh");
    let previous = i - 1;
    while (previous >= 0 && (lines[previous] ?? "").trim() === "") previous--;
    const marker = /^<!-- readme-example: (.+?) -->$/.exec((lines[previous] ?? "").trim());
    if (lang) {
      assert.ok(marker, `README line ${i + 1}: a ${fence[1]} block without a <!-- readme-example: NAME --> or <!-- readme-example: skip (why) --> line above it`);
      const name = marker[1] ?? "";
      if (/^skip \(.+\)$/.test(name)) skipped.push(name);
      else run.push({ name, lang, code: lines.slice(i + 1, end).join("\n") });
    }
    i = end;
  }
  return { run, skipped };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The files a clone has (tracked, plus new files not ignored), copied; the installed packages and the web build linked. */
function copyCheckout(target: string): void {
  const listed = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: REPO_ROOT, encoding: "utf8" });
  assert.equal(listed.status, 0, `git ls-files failed: ${listed.stderr}`);
  for (const file of listed.stdout.split("\0").filter(Boolean)) {
    const from = path.join(REPO_ROOT, file);
    if (!existsSync(from)) continue; // deleted in the working tree, not yet in the index
    mkdirSync(path.dirname(path.join(target, file)), { recursive: true });
    copyFileSync(from, path.join(target, file));
  }
  symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(target, "node_modules"));
  symlinkSync(path.join(REPO_ROOT, "web", "dist"), path.join(target, "web", "dist"));
}

/** One bash process for the whole README, fed block by block, as a terminal is. */
class Terminal {
  #shell: ChildProcessWithoutNullStreams;
  #stdout = "";
  #stderr = "";
  #exited: Promise<number | null>;

  constructor(cwd: string, env: NodeJS.ProcessEnv) {
    this.#shell = spawn("bash", ["--noprofile", "--norc"], { cwd, env, stdio: ["pipe", "pipe", "pipe"] });
    this.#shell.stdout.setEncoding("utf8").on("data", (chunk: string) => (this.#stdout += chunk));
    this.#shell.stderr.setEncoding("utf8").on("data", (chunk: string) => (this.#stderr += chunk));
    this.#exited = new Promise((resolve) => this.#shell.on("exit", (code) => resolve(code)));
    this.#shell.stdin.write("set -euo pipefail\n");
  }

  /** Sources one block; resolves with what it printed, rejects when the shell stopped on an error. */
  async run(scriptFile: string, timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
    const marker = `@@readme-example-done-${Math.random().toString(36).slice(2)}@@`;
    this.#stdout = "";
    this.#stderr = "";
    this.#shell.stdin.write(`source ${JSON.stringify(scriptFile)}\nprintf '\\n%s\\n' ${marker}\n`);
    const deadline = Date.now() + timeoutMs;
    let exitCode: number | null | undefined;
    void this.#exited.then((code) => (exitCode = code));
    while (!this.#stdout.includes(marker)) {
      if (exitCode !== undefined) throw new Error(`the shell stopped (exit ${exitCode}).\nstdout:\n${this.#stdout}\nstderr:\n${this.#stderr}`);
      if (Date.now() > deadline) throw new Error(`no end after ${timeoutMs} ms.\nstdout:\n${this.#stdout}\nstderr:\n${this.#stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return { stdout: this.#stdout.slice(0, this.#stdout.indexOf(marker)).trim(), stderr: this.#stderr };
  }

  close(): void {
    this.#shell.stdin.end();
    this.#shell.kill();
  }
}

const lastJsonLine = (text: string): any => JSON.parse(text.trim().split("\n").filter((line) => line.startsWith("{")).at(-1) ?? "null");
const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

/** The mean absolute difference per channel between the upscaled file shrunk back and the original. */
async function differenceFromOriginal(upscaled: string): Promise<number> {
  const original = await sharp(path.join(FIXTURES, "chelsea.png")).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const shrunk = await sharp(upscaled).removeAlpha().resize(original.info.width, original.info.height, { kernel: "lanczos3" }).raw().toBuffer();
  let sum = 0;
  for (let i = 0; i < shrunk.length; i++) sum += Math.abs((shrunk[i] ?? 0) - (original.data[i] ?? 0));
  return sum / shrunk.length;
}

/** What each example must print (and leave behind), so a block that "runs" but does the wrong thing fails. */
const CHECKS: Record<string, (out: string, dir: string, url: string, err: string) => Promise<void> | void> = {
  "curl-sync": (out) => assert.deepEqual(lastJsonLine(out), { message: { hello: "world" }, attempt: 1 }),
  "curl-queue": (out) => {
    const lines = out.split("\n");
    assert.equal(JSON.parse(lines[0] ?? "").status, "IN_QUEUE");
    const events = lines.filter((line) => line.startsWith("data: ")).map((line) => JSON.parse(line.slice(6)));
    // IN_QUEUE only while no runner is free (the echo runner is warm from the block before).
    assert.match(events.map((e) => ({ IN_QUEUE: "Q", IN_PROGRESS: "P", COMPLETED: "C" })[e.status as string] ?? "?").join(""), /^Q*P+C$/, "IN_QUEUE…, IN_PROGRESS…, COMPLETED");
    assert.ok(events.some((e) => e.logs?.some((log: { message: string }) => log.message === "starting")), "the log line arrives on the stream");
    assert.deepEqual(events.filter((e) => e.progress).map((e) => e.progress.step), [1, 2, 3, 4]);
    assert.equal(events.at(-1).status, "COMPLETED");
    assert.deepEqual(lastJsonLine(out), { message: "slow", attempt: 1 });
  },
  "curl-cancel": (out) => {
    assert.match(out, /^\{"status":"CANCELLATION_REQUESTED"\}$/m);
    assert.deepEqual(lastJsonLine(out), { status: "COMPLETED", error: "Request cancelled by client" });
  },
  "curl-upscale": async (out, dir, url) => {
    const reply = JSON.parse(readFileSync(path.join(dir, "upscaled.json"), "utf8"));
    assert.equal(reply.image.width, 902);
    assert.equal(reply.image.height, 600);
    assert.ok(reply.image.url.startsWith(`${url}/files/outputs/`), reply.image.url);
    assert.match(out, /upscaled\.png: PNG image data, 902 x 600/);
    const meta = await sharp(path.join(dir, "upscaled.png")).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["png", 902, 600]);
    // The same picture, twice as large: shrunk back it is close to the cat it came from.
    assert.ok((await differenceFromOriginal(path.join(dir, "upscaled.png"))) < 6);
  },
  "curl-models": (out) => {
    for (const id of ["darkroom/echo", "darkroom/upscale", "darkroom/ocr"]) assert.match(out, new RegExp(`^${id}  available$`, "m"));
    assert.match(out, /^darkroom\/sd-turbo  darkroom models pull \S+ --name sd-turbo\b/m, "an unavailable app shows its remedy");
    assert.equal(lastJsonLine(out).title, "Upscale (ESRGAN)");
  },
  "fal-subscribe": (out, _dir, url) => {
    assert.match(out, /^IN_PROGRESS\n {2}upscaling 451×300 ×2 with ESRGAN slim\n {2}902×600 png in [\d.]+ s\n/m, "the app's log lines, once each");
    assert.equal(out.match(/upscaling /g)?.length, 1);
    assert.equal(out.match(/^IN_PROGRESS$/gm)?.length, 1);
    assert.match(out.split("\n").at(-1) ?? "", new RegExp(`^${UUID} ${url}/files/outputs/\\S+\\.png 902×600$`));
  },
  "fal-stream": (out) => {
    assert.match(out, /^step 1 of 3\nstep 2 of 3\nstep 3 of 3\n/m);
    assert.match(out, /message: 'hello'/);
    assert.match(out, /step: 3/);
  },
  "fal-realtime": (out, _dir, _url, err) => {
    assert.doesNotMatch(err, /ApiError/);
    assert.match(out, /message: 'over a socket'/);
    assert.match(out, /request_id: 'r1'/);
  },
  cli: (out, dir, _url, err) => {
    assert.match(out, /^darkroom\/upscale\s+Upscale \(ESRGAN\)\s+image-to-image\s+available$/m);
    assert.match(out, /scale/);
    assert.match(out, /^"hi"$/m);
    const upscaled = /"url":\s*"[^"]+\/(upscaled-x2\.png)"/.exec(out);
    assert.ok(upscaled, "the run printed the result JSON");
    const requestId = new RegExp(`submitted darkroom/upscale request (${UUID})`).exec(err)?.[1];
    assert.ok(requestId, "the progress on stderr names the request");
    assert.match(err, /progress: 100% \(12\/12\) tile 12\/12/);
    assert.ok(existsSync(path.join(dir, "darkroom-output", requestId, "upscaled-x2.png")), "the output file was saved");
    assert.match(out, new RegExp(`^request   ${UUID}\napp       darkroom/echo\nstate     SUCCEEDED`, "m"), "requests show prints the newest request");
    assert.match(out, /dk_[0-9a-z]+:\S{20,}/, "a new key is shown once");
  },
};

describe("README examples", { timeout: 600_000 }, () => {
  const readme = readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
  const { run, skipped } = readExamples(readme);

  it("marks every shell and JavaScript block, and checks every block it runs", () => {
    assert.ok(run.length >= 9, `found ${run.length} runnable examples`);
    assert.ok(skipped.length >= 1);
    assert.deepEqual(run.map((e) => e.name).sort(), Object.keys(CHECKS).sort());
  });

  describe("run in order against `npm start` in a copy of the checkout", () => {
    let workDir: string;
    let checkout: string;
    let server: ReturnType<typeof spawn> | undefined;
    let serverLog = "";
    let terminal: Terminal;
    let url: string;

    before(async () => {
      assert.equal(spawnSync("jq", ["--version"]).status, 0, "the README's examples need jq: apt-get install jq");
      workDir = mkdtempSync(path.join(tmpdir(), "darkroom-readme-"));
      checkout = path.join(workDir, "darkroom");
      copyCheckout(checkout);
      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port) };
      for (const name of Object.keys(env)) if (/^(DARKROOM_|FAL_KEY)/.test(name)) delete env[name];
      server = spawn("npm", ["start"], { cwd: checkout, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
      server.stdout?.on("data", (chunk: Buffer) => (serverLog += chunk.toString()));
      server.stderr?.on("data", (chunk: Buffer) => (serverLog += chunk.toString()));
      for (const deadline = Date.now() + 60_000; ; await new Promise((resolve) => setTimeout(resolve, 200))) {
        const ready = await fetch(`${url}/ready`).then((r) => r.ok).catch(() => false);
        if (ready && existsSync(path.join(checkout, ".darkroom", "admin-key"))) break;
        assert.ok(Date.now() < deadline, `npm start did not come up in 60 s:\n${serverLog}`);
      }
      terminal = new Terminal(checkout, { ...env, DARKROOM_URL: url });
    });

    after(() => {
      terminal?.close();
      if (server?.pid) {
        try {
          process.kill(-server.pid, "SIGTERM");
        } catch {
          // already gone
        }
      }
      if (workDir) rmSync(workDir, { recursive: true, force: true });
    });

    for (const example of run) {
      it(example.name, { timeout: 180_000 }, async () => {
        const code = example.code.replaceAll("127.0.0.1:8787", url.slice("http://".length));
        const script = path.join(workDir, `${example.name}.sh`);
        if (example.lang === "sh") writeFileSync(script, `${code}\n`);
        else {
          writeFileSync(path.join(checkout, `${example.name}.mjs`), `${code}\n`);
          writeFileSync(script, `node ${example.name}.mjs\n`);
        }
        const { stdout, stderr } = await terminal.run(script, 150_000);
        try {
          await CHECKS[example.name]?.(stdout, checkout, url, stderr);
        } catch (error) {
          throw new Error(`${(error as Error).message}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`, { cause: error });
        }
      });
    }
  });
});
