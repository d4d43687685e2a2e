/**
 * `darkroom run` against a real server: inputs from key=value, --input and --input-file; the
 * progress and log lines of a non-TTY run; result JSON; uploads with key=@file; output downloads.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ADMIN_KEY, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { cli, scratchDir, submittedId } from "./helpers.js";

describe("darkroom run", () => {
  let p: TestPlatform;
  let scratch: ReturnType<typeof scratchDir>;
  let env: Record<string, string>;
  before(async () => {
    p = await startTestPlatform();
    scratch = scratchDir();
    env = { DARKROOM_URL: p.url, DARKROOM_KEY: ADMIN_KEY };
  });
  after(async () => {
    await p.close();
    scratch.remove();
  });

  it("parses key=value pairs as JSON when they parse, else as text, and prints the result with --json", async () => {
    const r = await cli(
      ["run", "darkroom/echo", "message=hello world", "sleep_ms=5", "sync_mode=false", 'logs=["a b"]', "progress_steps=0", "--json"],
      { env, cwd: scratch.dir },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { message: "hello world", attempt: 1 });
    const stored = await http(p, "GET", `/v1/requests/${submittedId(r.stderr)}`);
    assert.deepEqual(stored.body.input, { message: "hello world", sleep_ms: 5, sync_mode: false, logs: ["a b"], progress_steps: 0 });

    const typed = await cli(["run", "darkroom/echo", 'message={"n":42,"ok":true,"s":"007","z":null}', "--json", "--quiet"], { env, cwd: scratch.dir });
    assert.equal(typed.code, 0, typed.stderr);
    assert.deepEqual(JSON.parse(typed.stdout).message, { n: 42, ok: true, s: "007", z: null });
    assert.equal(typed.stderr, "", "--quiet keeps stderr empty");
  });

  it("takes the input from --input or --input-file, with key=value pairs winning", async () => {
    const file = path.join(scratch.dir, "input.json");
    writeFileSync(file, JSON.stringify({ message: { from: "file" }, sleep_ms: 1 }));
    const [inline, fromFile, overridden] = await Promise.all([
      cli(["run", "darkroom/echo", "--input", '{"message":{"deep":[1,2]}}', "--json"], { env, cwd: scratch.dir }),
      cli(["run", "darkroom/echo", "--input-file", file, "--json"], { env, cwd: scratch.dir }),
      cli(["run", "darkroom/echo", "-f", file, "message=override", "--json"], { env, cwd: scratch.dir }),
    ]);
    assert.equal(inline.code, 0, inline.stderr);
    assert.deepEqual(JSON.parse(inline.stdout).message, { deep: [1, 2] });
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.deepEqual(JSON.parse(fromFile.stdout).message, { from: "file" });
    assert.equal(overridden.code, 0, overridden.stderr);
    assert.equal(JSON.parse(overridden.stdout).message, "override");
    const stored = await http(p, "GET", `/v1/requests/${submittedId(overridden.stderr)}`);
    assert.deepEqual(stored.body.input, { message: "override", sleep_ms: 1 });

    const stdin = await cli(["run", "darkroom/echo", "--input-file", "-", "--json"], { env, cwd: scratch.dir, stdin: '{"message":"piped"}' });
    assert.equal(stdin.code, 0, stdin.stderr);
    assert.equal(JSON.parse(stdin.stdout).message, "piped");
  });

  it("shows queue, progress and log lines on a non-TTY stderr and the result on stdout", async () => {
    const r = await cli(["run", "darkroom/echo", "message=watch", "sleep_ms=600", "progress_steps=3", 'logs=["first line"]'], { env, cwd: scratch.dir });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.split("\n");
    assert.match(lines[0] ?? "", /^submitted darkroom\/echo request [0-9a-f-]{36}$/);
    assert.ok(lines.includes("running"), r.stderr);
    assert.ok(lines.includes("progress: 33% (1/3) step 1/3"), r.stderr);
    assert.ok(lines.includes("progress: 100% (3/3) step 3/3"), r.stderr);
    assert.ok(lines.includes("log: first line"), r.stderr);
    assert.match(r.stderr, /completed in \d+\.\d+ s/);
    assert.ok(!r.stderr.includes("\r"), "no terminal control characters when stderr is not a TTY");
    assert.deepEqual(JSON.parse(r.stdout), { message: "watch", attempt: 1 });
  });

  it("runs an endpoint under a sub-path (owner/alias/path)", async () => {
    const r = await cli(["run", "darkroom/echo/stream", "message=sub", "progress_steps=2", "--json"], { env, cwd: scratch.dir });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { message: "sub", attempt: 1, step: 2, total: 2 });
  });

  it("uploads key=@file through the storage API and downloads the output file byte for byte", async () => {
    const bytes = randomBytes(64 * 1024);
    const source = path.join(scratch.dir, "noise.bin");
    writeFileSync(source, bytes);
    const out = path.join(scratch.dir, "out");
    const r = await cli(["run", "darkroom/echo", "file_url=@noise.bin", "--out", out, "--json"], { env, cwd: scratch.dir });
    assert.equal(r.code, 0, r.stderr);
    const uploaded = /uploaded noise\.bin -> (\S+)/.exec(r.stderr)?.[1];
    assert.ok(uploaded?.startsWith(`${p.url}/files/uploads/`), r.stderr);
    const stored = await http(p, "GET", `/v1/requests/${submittedId(r.stderr)}`);
    assert.equal(stored.body.input.file_url, uploaded, "the input carries the uploaded file's URL");

    const result = JSON.parse(r.stdout);
    assert.equal(result.file.file_size, bytes.length);
    const served = Buffer.from(await (await fetch(result.file.url)).arrayBuffer());
    assert.ok(served.equals(bytes), "the server stored the uploaded bytes");
    const files = readdirSync(out);
    assert.equal(files.length, 1);
    assert.ok(readFileSync(path.join(out, files[0]!)).equals(served), "the download equals the served file");
    assert.match(r.stderr, new RegExp(`saved file -> .*out/${files[0]} \\(${bytes.length} bytes\\)`));
  });

  it("saves into ./darkroom-output/<request_id>/ by default, decodes data: URIs, and skips with --no-download", async () => {
    const text = "data:text/plain;base64,aGVsbG8gZmlsZQ==";
    const r = await cli(["run", "darkroom/echo", `file_url=${text}`], { env, cwd: scratch.dir });
    assert.equal(r.code, 0, r.stderr);
    const id = submittedId(r.stderr);
    const saved = path.join(scratch.dir, "darkroom-output", id, "echo.txt");
    assert.equal(readFileSync(saved, "utf8"), "hello file");
    assert.match(r.stdout, new RegExp(`saved file -> darkroom-output/${id}/echo.txt \\(10 bytes\\)`));

    const inline = await cli(["run", "darkroom/echo", `file_url=${text}`, "sync_mode=true", "--json", "-o", "inline"], { env, cwd: scratch.dir });
    assert.equal(inline.code, 0, inline.stderr);
    assert.match(JSON.parse(inline.stdout).file.url, /^data:text\/plain;base64,/);
    assert.equal(readFileSync(path.join(scratch.dir, "inline", "echo.txt"), "utf8"), "hello file");

    const skipped = await cli(["run", "darkroom/echo", `file_url=${text}`, "--no-download"], { env, cwd: scratch.dir });
    assert.equal(skipped.code, 0, skipped.stderr);
    assert.ok(!existsSync(path.join(scratch.dir, "darkroom-output", submittedId(skipped.stderr))));
    assert.ok(!skipped.stdout.includes("saved"));
  });

  it("uses FAL_KEY when DARKROOM_KEY is not set", async () => {
    const r = await cli(["run", "darkroom/echo", "message=fal", "--json", "-q"], { env: { DARKROOM_URL: p.url, FAL_KEY: ADMIN_KEY }, cwd: scratch.dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).message, "fal");
  });
});
