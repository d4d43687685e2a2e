/**
 * The playground's small pure modules: the SSE parser its status streams go through, output file
 * discovery, fal error bodies, formatting, and the realtime URL and error text.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { errorMessageOf, errorTypeOf, fieldErrorsOf } from "../../web/src/lib/fal-errors.js";
import { formatBytes, formatSeconds, maskKey, secondsBetween } from "../../web/src/lib/format.js";
import { compareSource, downloadName, findFiles, kindOf } from "../../web/src/lib/outputs.js";
import { fieldsFor } from "../../web/src/lib/schema-form.js";
import { SseParser } from "../../web/src/lib/sse.js";
import { describeReason, realtimeUrl } from "../../web/src/realtime.js";

describe("SseParser", () => {
  it("splits events across arbitrary chunk boundaries and line endings", () => {
    const stream = ': keep-alive\n\ndata: {"a":1}\n\nevent: error\r\ndata: line one\r\ndata: line two\r\n\r\nid: 7\ndata:x\n\n';
    const expected = [
      { event: "message", data: '{"a":1}', id: null },
      { event: "error", data: "line one\nline two", id: null },
      { event: "message", data: "x", id: "7" },
    ];
    // Every split point, including one between \r and \n.
    for (let cut = 0; cut <= stream.length; cut++) {
      const parser = new SseParser();
      const events = [...parser.push(stream.slice(0, cut)), ...parser.push(stream.slice(cut))];
      assert.deepEqual(events, expected, `cut at ${cut}`);
    }
    const parser = new SseParser();
    assert.deepEqual([...stream].flatMap((c) => parser.push(c)), expected);
  });

  it("holds an event until its blank line arrives", () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push('data: {"status":"IN_QUEUE"}\n'), []);
    assert.deepEqual(parser.push("\n"), [{ event: "message", data: '{"status":"IN_QUEUE"}', id: null }]);
  });
});

describe("outputs", () => {
  it("finds fal File objects anywhere in an output, with their kind", () => {
    const output = {
      image: { url: "http://h/files/outputs/r/a/upscaled-x2.png", content_type: "image/png", file_name: "upscaled-x2.png", file_size: 1234, width: 192, height: 128 },
      mask_image: { url: "data:image/png;base64,AAAA", content_type: "image/png", file_name: "mask.png", file_size: 3 },
      frames: [{ url: "http://h/f/clip.webm" }, { url: "http://h/f/voice.opus?x=1" }],
      has_nsfw_concepts: [false],
      note: { url: "not a url" },
    };
    assert.deepEqual(
      findFiles(output).map((f) => [f.path, f.kind, f.width]),
      [
        ["image", "image", 192],
        ["mask_image", "image", null],
        ["frames[0]", "video", null],
        ["frames[1]", "audio", null],
      ],
    );
  });

  it("kindOf prefers the content type, then data: URI types, then the extension", () => {
    assert.equal(kindOf("audio/wav", "http://h/x.bin"), "audio");
    assert.equal(kindOf(null, "data:video/mp4;base64,AAAA"), "video");
    assert.equal(kindOf(undefined, "http://h/a.JPG"), "image");
    assert.equal(kindOf("application/json", "http://h/a.json"), "other");
  });

  it("compares before/after only for image-to-image apps with one input image", () => {
    const fields = fieldsFor({ type: "object", properties: { image_url: { type: "string", "x-darkroom-file": true } }, required: ["image_url"] });
    const files = findFiles({ image: { url: "http://h/out.png", content_type: "image/png" } });
    assert.equal(compareSource("image-to-image", fields, { image_url: "http://h/in.png" }, files), "http://h/in.png");
    assert.equal(compareSource("image-analysis", fields, { image_url: "http://h/in.png" }, files), null);
    assert.equal(compareSource("image-to-image", fields, { image_url: "http://h/in.png" }, []), null);
  });

  it("names downloads after the file, else the URL", () => {
    const [a, b] = findFiles({ a: { url: "http://h/files/x/cat%20pic.png" }, b: { url: "http://h/y.png", file_name: "named.png" } });
    assert.ok(a && b);
    assert.equal(downloadName(a), "cat pic.png");
    assert.equal(downloadName(b), "named.png");
  });
});

describe("fal error bodies", () => {
  it("reads detail strings and validation lists", () => {
    assert.equal(errorMessageOf({ detail: "Request cancelled by client", error_type: "client_cancelled" }, 499), "Request cancelled by client");
    const v = { detail: [{ loc: ["body", "image_url"], msg: "must be an http(s) URL", type: "value_error" }] };
    assert.equal(errorMessageOf(v, 422), "image_url: must be an http(s) URL");
    assert.deepEqual(fieldErrorsOf(v), [{ path: "image_url", message: "must be an http(s) URL" }]);
    assert.equal(errorTypeOf({ error_type: "runner_server_error" }), "runner_server_error");
    assert.equal(errorMessageOf(null, 502), "HTTP 502");
  });
});

describe("formatting", () => {
  it("durations, sizes, and the masked key", () => {
    assert.equal(formatSeconds(0.004), "4 ms");
    assert.equal(formatSeconds(1.5), "1.50 s");
    assert.equal(formatSeconds(95), "1 min 35 s");
    assert.equal(formatSeconds(null), "–");
    assert.equal(secondsBetween("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:01.250Z"), 1.25);
    assert.equal(formatBytes(1536), "1.5 KB");
    assert.equal(maskKey("dk_abc:s3cret"), "dk_abc:••••••••");
    assert.ok(!maskKey("dk_abc:s3cret").includes("s3cret"));
  });
});

describe("realtime", () => {
  it("builds fal's WebSocket URL on the page's own origin, ws or wss as the page", () => {
    assert.equal(realtimeUrl("http://127.0.0.1:8787", "darkroom/echo/realtime", "t.o/k+n"), "ws://127.0.0.1:8787/darkroom/echo/realtime?fal_jwt_token=t.o%2Fk%2Bn");
    assert.equal(realtimeUrl("https://dr.example", "a/b/realtime", "t"), "wss://dr.example/a/b/realtime?fal_jwt_token=t");
  });

  it("shows a validation error's detail[] as field: message", () => {
    const reason = JSON.stringify([
      { loc: ["body", "request_id"], msg: "must be string", type: "type_error" },
      { loc: ["body", "size", 0], msg: "too big", type: "value_error" },
    ]);
    assert.equal(describeReason("VALIDATION_ERROR", reason), "request_id: must be string; size[0]: too big");
    assert.equal(describeReason("VALIDATION_ERROR", "not json"), "not json");
    assert.equal(describeReason("INTERNAL_ERROR", "boom"), "boom");
  });
});
