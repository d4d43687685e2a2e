/**
 * Large app inputs are never parsed on the gateway's event loop (security issue #13, item 7): a
 * JSON body over the spill threshold on a route that takes app inputs (fal's run and queue calls,
 * and the proxy) stays its bytes. A body worker holds them to the JSON limits and the endpoint's
 * schema, the scheduler writes them to storage as they came, and the runner parses them. Here,
 * on a real server: the event loop's JSON.parse and JSON.stringify never see the input, what
 * arrives is what the app gets, and every refusal (schema, syntax, blank, too many values, a rest
 * call through the proxy) is answered in fal's shape.
 * @module
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MAX_JSON_VALUES } from "../../src/gateway/json-shape.js";
import { http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { result, waitCompleted } from "../helpers/queue.js";

const ECHO = "darkroom/echo";
const MiB = 1024 * 1024;

/** Records the longest text JSON.parse and JSON.stringify handle in this process while watched. */
function watchJson(): { longest: () => number; stop: () => void } {
  const { parse, stringify } = JSON;
  let longest = 0;
  JSON.parse = (text: string, reviver?: Parameters<typeof parse>[1]) => {
    longest = Math.max(longest, String(text).length);
    return parse(text, reviver);
  };
  JSON.stringify = ((...args: Parameters<typeof stringify>) => {
    const out = stringify(...args);
    if (typeof out === "string") longest = Math.max(longest, out.length);
    return out;
  }) as typeof stringify;
  return {
    longest: () => longest,
    stop: () => {
      JSON.parse = parse;
      JSON.stringify = stringify;
    },
  };
}

async function post(p: TestPlatform, route: string, body: string | ReadableStream<Uint8Array>, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(`${p.url}${route}`, {
    method: "POST",
    headers: { ...p.auth, "content-type": "application/json", ...headers },
    body,
    ...(typeof body === "string" ? {} : { duplex: "half" }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

describe("large app inputs are checked and stored unparsed", { timeout: 120_000 }, () => {
  let p: TestPlatform;

  before(async () => {
    p = await startTestPlatform();
  });

  after(async () => {
    await p?.close();
  });

  it("a 5 MB inline file reaches its runner and storage without the event loop parsing or serializing it", async () => {
    const payload = Buffer.alloc(3_750_000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) & 0xff;
    const body = JSON.stringify({ file_url: `data:application/octet-stream;base64,${payload.toString("base64")}` });
    assert.ok(body.length > 5_000_000);
    const watch = watchJson();
    let id: string;
    try {
      const submitted = await post(p, `/queue/${ECHO}`, body);
      assert.equal(submitted.status, 200, JSON.stringify(submitted.body));
      id = submitted.body.request_id as string;
      await waitCompleted(p, ECHO, id, 60_000);
    } finally {
      watch.stop();
    }
    assert.ok(watch.longest() < 64 * 1024, `the event loop handled ${watch.longest()} characters of JSON at once`);
    const res = await result(p, ECHO, id);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const file = await fetch(res.body.file.url as string, { headers: p.auth });
    assert.equal(file.status, 200);
    assert.ok(Buffer.from(await file.arrayBuffer()).equals(payload), "the stored output is the file that was sent");
  });

  it("a large input that fails the endpoint's schema gets fal's 422 on every route that takes app inputs", async () => {
    const body = JSON.stringify({ message: "m".repeat(MiB), sleep_ms: "soon" });
    const routes: [string, Record<string, string>][] = [
      [`/queue/${ECHO}`, {}],
      [`/run/${ECHO}`, {}],
      ["/api/fal/proxy", { "x-fal-target-url": `https://queue.fal.run/${ECHO}` }],
    ];
    for (const [route, headers] of routes) {
      const res = await post(p, route, body, headers);
      assert.equal(res.status, 422, `${route}: ${JSON.stringify(res.body).slice(0, 300)}`);
      assert.deepEqual(
        res.body.detail.map((d: { loc: unknown[] }) => d.loc),
        [["body", "sleep_ms"]],
        route,
      );
    }
  });

  it("large bodies that are not JSON, are blank, or hold too many values are refused with 400", async () => {
    const malformed = await post(p, `/queue/${ECHO}`, `{"message": "${"x".repeat(MiB)}"`);
    assert.equal(malformed.status, 400);
    assert.deepEqual(malformed.body, { detail: "Malformed JSON body", error_type: "bad_request" });
    const blank = await post(p, `/run/${ECHO}`, " ".repeat(300 * 1024));
    assert.equal(blank.status, 400);
    assert.equal(blank.body.detail, "Malformed JSON body");
    // Five million values in 10 MB: refused from its bytes, before anything is built of it.
    const tiny = await post(p, `/queue/${ECHO}`, `{"message":[${"0,".repeat(5_000_000)}0]}`);
    assert.equal(tiny.status, 400);
    assert.match(tiny.body.detail, new RegExp(`more than ${MAX_JSON_VALUES} values`));
    // The server is fine and the next large input runs.
    const ok = await post(p, `/run/${ECHO}`, JSON.stringify({ message: "y".repeat(MiB) }));
    assert.equal(ok.status, 200);
    assert.equal(ok.body.message.length, MiB);
  });

  it("a chunked large input (no Content-Length) is read whole and arrives exactly", async () => {
    const message = { text: `naïve “quotes” \\ \u{1F600} ${"z".repeat(600 * 1024)}`, n: [1, 2.5, null, true] };
    const bytes = Buffer.from(JSON.stringify({ message }, null, 2));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < bytes.length; at += 64 * 1024) controller.enqueue(bytes.subarray(at, at + 64 * 1024));
        controller.close();
      },
    });
    const res = await post(p, `/run/${ECHO}`, stream);
    assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 300));
    assert.deepEqual(res.body.message, message);
  });

  it("a large body to rest.fal.ai through the proxy is refused with 413, not read as an empty one", async () => {
    const res = await post(p, "/api/fal/proxy", JSON.stringify({ content_type: "text/plain", file_name: "a.txt", padding: "p".repeat(300 * 1024) }), {
      "x-fal-target-url": "https://rest.fal.ai/storage/upload/initiate",
    });
    assert.equal(res.status, 413);
    assert.equal(res.body.error_type, "bad_request");
    // A small one is served as before.
    const small = await http(p, "POST", "/api/fal/proxy", { content_type: "text/plain", file_name: "a.txt" }, { "x-fal-target-url": "https://rest.fal.ai/storage/upload/initiate" });
    assert.equal(small.status, 200, JSON.stringify(small.body));
  });
});
