/**
 * The CLI's pure parts, without a server: value parsing, endpoint ids, file discovery, schema
 * rendering, the SSE reader, and what the progress reporter writes on a terminal.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { schemaFields, schemaType } from "../../src/cli/apps.js";
import { fieldErrors } from "../../src/cli/http.js";
import { parseAssignment, parseValue } from "../../src/cli/input.js";
import { findFiles, safeName } from "../../src/cli/outputs.js";
import { createReporter, describeProgress, renderBar } from "../../src/cli/progress.js";
import { parseEndpointId } from "../../src/cli/run.js";
import { readSse } from "../../src/cli/sse.js";
import { cli } from "./helpers.js";

describe("cli parts", () => {
  it("parses values as JSON when they parse, else as text", () => {
    assert.equal(parseValue("3"), 3);
    assert.equal(parseValue("-2.5"), -2.5);
    assert.equal(parseValue("true"), true);
    assert.equal(parseValue("null"), null);
    assert.deepEqual(parseValue('{"a":[1]}'), { a: [1] });
    assert.equal(parseValue('"007"'), "007");
    assert.equal(parseValue("007"), "007", "not valid JSON: stays text");
    assert.equal(parseValue("a cat"), "a cat");
    assert.equal(parseValue(""), "");
    assert.deepEqual(parseAssignment("prompt=a=b"), { key: "prompt", value: "a=b", file: null });
    assert.deepEqual(parseAssignment("image_url=@cat.png"), { key: "image_url", value: null, file: "cat.png" });
    assert.deepEqual(parseAssignment("at=@"), { key: "at", value: "@", file: null });
    assert.throws(() => parseAssignment("=x"), /expected key=value/);
  });

  it("splits endpoint ids into the app id and the submit path", () => {
    assert.deepEqual(parseEndpointId("darkroom/echo"), { appId: "darkroom/echo", submitPath: "darkroom/echo" });
    assert.deepEqual(parseEndpointId("/darkroom/echo/stream/"), { appId: "darkroom/echo", submitPath: "darkroom/echo/stream" });
    assert.deepEqual(parseEndpointId("workflows/me/flow/run"), { appId: "me/flow", submitPath: "workflows/me/flow/run" });
    assert.throws(() => parseEndpointId("echo"), /owner\/alias/);
  });

  it("finds output files anywhere in a result", () => {
    const result = {
      images: [{ url: "http://h/files/outputs/r/a/cat.png", file_name: "cat.png" }, { url: "https://cdn/x/dog.jpg" }],
      video: { url: "data:video/mp4;base64,AAAA" },
      seed: 3,
      link: { url: "ftp://nope" },
      nested: { deep: { audio: { url: "http://h/files/o/song.wav", content_type: "audio/wav" } } },
    };
    assert.deepEqual(
      findFiles(result).map((f) => [f.at, f.fileName]),
      [
        ["images[0]", "cat.png"],
        ["images[1]", null],
        ["video", null],
        ["nested.deep.audio", null],
      ],
    );
    assert.equal(safeName("../../etc/passwd"), "_.._etc_passwd");
    assert.equal(safeName("..hidden"), "hidden");
  });

  it("describes JSON Schema fields: types, defaults, enums and ranges", () => {
    assert.equal(schemaType({ type: "array", items: { type: "number" } }), "array<number>");
    assert.equal(schemaType({ anyOf: [{ type: "string" }, { type: "null" }] }), "string | null");
    assert.equal(schemaType({ $ref: "#/$defs/ImageSize" }), "ImageSize");
    assert.equal(schemaType({ type: "string", "x-darkroom-file": true }), "file URL");
    assert.equal(schemaType({}), "any");
    const fields = schemaFields({
      type: "object",
      required: ["prompt"],
      properties: {
        prompt: { type: "string", description: "What to draw" },
        steps: { type: "integer", default: 28, minimum: 1, maximum: 50 },
        format: { type: "string", enum: ["png", "jpeg"], default: "png" },
        count: { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 },
      },
    });
    assert.deepEqual(fields, [
      { name: "prompt", type: "string", required: true, default: "", allowed: "", description: "What to draw" },
      { name: "steps", type: "integer", required: false, default: "28", allowed: "1..50", description: "" },
      { name: "format", type: "string", required: false, default: '"png"', allowed: "one of: png, jpeg", description: "" },
      { name: "count", type: "integer", required: false, default: "", allowed: "", description: "" },
    ]);
  });

  it("turns FastAPI detail[] into field lines", () => {
    assert.deepEqual(
      fieldErrors([
        { loc: ["body", "image_size", "width"], msg: "must be <= 14142" },
        { loc: ["body"], msg: "Field required" },
      ]),
      ["image_size.width: must be <= 14142", "input: Field required"],
    );
  });

  it("reads SSE events split anywhere across chunks, skipping comments", async () => {
    const text = ': keep-alive\n\ndata: {"a":1}\r\n\r\nevent: error\ndata: line1\ndata: line2\n\ndata: {"b":2}\n\n';
    const bytes = new TextEncoder().encode(text);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 3) controller.enqueue(bytes.slice(i, i + 3));
        controller.close();
      },
    });
    const events = [];
    for await (const e of readSse(body)) events.push(e);
    assert.deepEqual(events, [
      { event: "message", data: '{"a":1}' },
      { event: "error", data: "line1\nline2" },
      { event: "message", data: '{"b":2}' },
    ]);
  });

  it("draws a live progress line on a terminal, with log lines above it", () => {
    assert.equal(renderBar(0.5, 10), "[#####-----]");
    assert.equal(renderBar(2, 4), "[####]");
    assert.equal(describeProgress({ step: 2, total: 4, message: "step 2/4" }), "50% (2/4) step 2/4");
    assert.equal(describeProgress({ fraction: 0.25 }), "25%");
    let written = "";
    let clock = 0;
    const reporter = createReporter({ isTTY: true, columns: 60, write: (t: string) => (written += t) }, { now: () => clock });
    reporter.info("submitted x");
    reporter.queued(2);
    clock = 1500;
    reporter.progress({ step: 1, total: 4, message: "denoising" });
    reporter.log({ message: "hello", level: "WARN" });
    reporter.done();
    reporter.info("completed");
    assert.equal(
      written,
      [
        "submitted x\n",
        "\r\x1b[2Kqueued, position 2  0.0s",
        "\r\x1b[2Krunning  [#####---------------]  25%  denoising  1.5s",
        "\r\x1b[2Klog [WARN]: hello\n\r\x1b[2Krunning  [#####---------------]  25%  denoising  1.5s",
        "\r\x1b[2K",
        "completed\n",
      ].join(""),
    );
  });

  it("prints usage: exit 0 when asked for, 2 for a missing or unknown command", async () => {
    const [none, help, runHelp, unknown, version] = await Promise.all([
      cli([]),
      cli(["help", "requests"]),
      cli(["run", "--help"]),
      cli(["frobnicate"]),
      cli(["--version"]),
    ]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^darkroom — /);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /darkroom requests cancel <request_id>/);
    assert.equal(runHelp.code, 0);
    assert.match(runHelp.stdout, /^Usage: darkroom run <owner\/alias\[\/path\]>/);
    assert.match(runHelp.stdout, /--no-download/);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /error: unknown command 'frobnicate'/);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  });
});
