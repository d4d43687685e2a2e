/**
 * The playground's copyable code is run, not just looked at: the curl, `@fal-ai/client`, `replicate` and `openai` snippets
 * for an input with awkward characters go to a real server and must come back with that input.
 */
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { curlSnippet, javascriptSnippet, openAiSnippet, pythonLiteral, pythonSnippet, realtimeJavascriptSnippet, realtimePythonSnippet, replicateSnippet, shellQuote } from "../../web/src/lib/snippets.js";
import { ADMIN_KEY, ECHO_APP, REPO_ROOT, eventually, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

const run = promisify(execFile);

/** Quotes, a shell metacharacter, non-ASCII and JSON's constants: what breaks naive quoting. */
const INPUT = { message: { text: "it's a \"test\" $(rm -rf /) ünï 🎞", n: 1.5, ok: true, none: null, list: [] } };

describe("code snippets", () => {
  let p: TestPlatform;
  let dir: string;

  before(async () => {
    p = await startTestPlatform({ appModules: [ECHO_APP, path.join(REPO_ROOT, "src/apps/text-to-speech/app.ts")] });
    dir = mkdtempSync(path.join(tmpdir(), "darkroom-snippets-"));
  });
  after(async () => {
    await p?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("shellQuote survives single quotes", async () => {
    const { stdout } = await run("bash", ["-c", `printf %s ${shellQuote("it's $HOME")}`]);
    assert.equal(stdout, "it's $HOME");
  });

  it("curl: submits the exact input to the queue", async () => {
    const code = curlSnippet({ baseUrl: p.url, endpointId: "darkroom/echo", input: INPUT });
    const { stdout } = await run("bash", ["-c", code], { env: { ...process.env, FAL_KEY: ADMIN_KEY } });
    const submitted = JSON.parse(stdout) as { status: string; request_id: string };
    assert.equal(submitted.status, "IN_QUEUE");
    const result = await eventually(async () => {
      const r = await http(p, "GET", `/queue/darkroom/echo/requests/${submitted.request_id}`);
      return r.status === 200 ? r.body : null;
    }, 20_000);
    assert.deepEqual(result.message, INPUT.message);
  });

  /** Runs a JavaScript snippet with its bare imports resolved from the project. */
  const runJs = async (code: string, name: string, env: Record<string, string>): Promise<string> => {
    const file = path.join(dir, name);
    let resolved = code;
    for (const pkg of ["openai", "replicate"]) resolved = resolved.replace(`from "${pkg}"`, `from ${JSON.stringify(import.meta.resolve(pkg))}`);
    writeFileSync(file, resolved);
    return (await run(process.execPath, [file], { env: { ...process.env, ...env } })).stdout;
  };

  it("replicate: runs the app through /replicate/v1 and prints its output", async () => {
    const code = replicateSnippet({ baseUrl: p.url, endpointId: "darkroom/echo", input: INPUT });
    assert.ok(code);
    assert.equal(replicateSnippet({ baseUrl: p.url, endpointId: "darkroom/echo/stream", input: INPUT }), null, "only the root endpoint is a Replicate model");
    assert.match(await runJs(code, "replicate.mjs", { REPLICATE_API_TOKEN: ADMIN_KEY }), /text: .it's a "test" \$\(rm -rf \/\) ünï 🎞/);
  });

  it("openai: speaks through /openai/v1 for a text-to-speech app; only apps with an OpenAI equivalent get one", async () => {
    const code = openAiSnippet({ baseUrl: p.url, endpointId: "darkroom/text-to-speech", input: { text: "hello from a snippet", voice: "slt" }, category: "text-to-speech" });
    assert.ok(code);
    assert.match(await runJs(code, "openai.mjs", { OPENAI_API_KEY: ADMIN_KEY }), /^\d{4,} bytes of audio\/wav$/m);
    assert.equal(openAiSnippet({ baseUrl: p.url, endpointId: "darkroom/echo", input: INPUT, category: "utility" }), null);
    const image = openAiSnippet({ baseUrl: p.url, endpointId: "darkroom/sd-turbo", input: { prompt: "a cat", image_size: { width: 64, height: 64 }, seed: 3 }, category: "text-to-image" }) ?? "";
    assert.match(image, /openai\.images\.generate\(\{\n  model: "darkroom\/sd-turbo",\n  prompt: "a cat",\n  size: "64x64",\n  seed: 3,/);
  });

  it("@fal-ai/client: subscribes through the proxy route and prints the output", async () => {
    const code = javascriptSnippet({ baseUrl: p.url, endpointId: "darkroom/echo", input: INPUT });
    // The snippet's bare import resolves from the project, wherever the file is.
    const file = path.join(dir, "snippet.mjs");
    writeFileSync(file, code.replace('from "@fal-ai/client"', `from ${JSON.stringify(import.meta.resolve("@fal-ai/client"))}`).replace("console.log(update.status)", "undefined"));
    const { stdout } = await run(process.execPath, [file], { env: { ...process.env, FAL_KEY: ADMIN_KEY } });
    assert.match(stdout, /text: .it's a "test" \$\(rm -rf \/\) ünï 🎞/);
  });

  it("realtime, JavaScript: the WebSocket snippet gets a token, sends msgpack and prints the echoed result", async () => {
    const code = realtimeJavascriptSnippet({ baseUrl: p.url, endpointId: "darkroom/echo/realtime", input: INPUT });
    const file = path.join(dir, "realtime.mjs");
    // Node 20 has no global WebSocket; `ws` stands in. The snippet keeps its socket open, as a page would.
    const prelude = `import { WebSocket } from ${JSON.stringify(import.meta.resolve("ws"))};\n`;
    const ending = `\nws.addEventListener("message", (e) => { if (typeof e.data !== "string") setTimeout(() => ws.close(), 300); });\n`;
    writeFileSync(file, prelude + code.replace('from "@msgpack/msgpack"', `from ${JSON.stringify(import.meta.resolve("@msgpack/msgpack"))}`) + ending);
    const { stdout } = await run(process.execPath, [file], { env: { ...process.env, FAL_KEY: ADMIN_KEY }, timeout: 30_000 });
    assert.match(stdout, /text: .it's a "test" \$\(rm -rf \/\) ünï 🎞/);
    assert.match(stdout, /action: 'timings'/);
  });

  it("realtime, Python: valid Python that names the app and its path", (t) => {
    assert.match(realtimePythonSnippet({ baseUrl: p.url, endpointId: "darkroom/echo/realtime", input: INPUT }), /fal_client\.realtime\("darkroom\/echo"\) as connection/);
    const code = realtimePythonSnippet({ baseUrl: p.url, endpointId: "owner/app/live", input: INPUT });
    assert.match(code, /fal_client\.realtime\("owner\/app", path="\/live"\)/);
    const probe = spawnSync("python3", ["--version"]);
    if (probe.error) {
      t.skip("python3 is not installed: syntax not checked");
      return;
    }
    const parsed = spawnSync("python3", ["-c", "import ast, sys; ast.parse(sys.stdin.read())"], { input: code, encoding: "utf8" });
    assert.equal(parsed.status, 0, parsed.stderr);
  });

  it("Python: the literal and the snippet are valid Python", (t) => {
    assert.equal(pythonLiteral({ a: true, b: [null, 1, "x"] }, 0), '{\n    "a": True,\n    "b": [\n        None,\n        1,\n        "x",\n    ],\n}');
    const code = pythonSnippet({ baseUrl: p.url, endpointId: "darkroom/echo", input: INPUT });
    assert.match(code, /fal_urls\.QUEUE_URL_FORMAT = "http:\/\/127\.0\.0\.1:\d+\/queue\/"/);
    const probe = spawnSync("python3", ["--version"]);
    if (probe.error) {
      t.skip("python3 is not installed: syntax not checked");
      return;
    }
    // Parse only: fal_client is not a dependency of this project.
    const parsed = spawnSync("python3", ["-c", "import ast, sys, json; tree = ast.parse(sys.stdin.read()); print(json.dumps(ast.literal_eval(tree.body[-2].value.keywords[0].value)))"], { input: code, encoding: "utf8" });
    assert.equal(parsed.status, 0, parsed.stderr);
    assert.deepEqual(JSON.parse(parsed.stdout), INPUT);
  });
});
