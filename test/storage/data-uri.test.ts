import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { isDataUri, parseDataUri, toDataUri } from "../../src/storage/data-uri.js";

const FIXTURE = new URL("../fixtures/media/astronaut.png", import.meta.url);

function refusedWith(code: string, fn: () => unknown, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.equal((err as { code?: string }).code, code, String(err));
    if (message) assert.match((err as Error).message, message);
    return true;
  });
}

describe("data URIs", () => {
  it("round-trips a real PNG through toDataUri and parseDataUri", async () => {
    const png = await readFile(FIXTURE);
    const uri = toDataUri(png, "image/png");
    assert.ok(uri.startsWith("data:image/png;base64,iVBORw0KGgo"), uri.slice(0, 40));
    const parsed = parseDataUri(uri);
    assert.equal(parsed.contentType, "image/png");
    assert.deepEqual(parsed.data, png);
  });

  it("decodes plain and percent-encoded payloads to the exact bytes", () => {
    assert.deepEqual(parseDataUri("data:,Hello%2C%20World%21"), { contentType: "text/plain;charset=US-ASCII", data: Buffer.from("Hello, World!") });
    assert.deepEqual(parseDataUri("data:text/plain;charset=utf-8,caf%C3%A9").data, Buffer.from("café"));
    assert.deepEqual(parseDataUri("data:application/octet-stream,%00%FF%80").data, Buffer.from([0x00, 0xff, 0x80]), "non-UTF-8 bytes survive");
    assert.deepEqual(parseDataUri("data:text/plain,é").data, Buffer.from("é", "utf8"));
    assert.deepEqual(parseDataUri("data:text/plain,").data, Buffer.alloc(0));
  });

  it("reads the media type and parameters, and defaults them", () => {
    assert.equal(parseDataUri("data:;base64,AAEC").contentType, "text/plain;charset=US-ASCII");
    assert.equal(parseDataUri("data:;charset=utf-8,x").contentType, "text/plain;charset=utf-8");
    assert.equal(parseDataUri("DATA:Image/PNG;BASE64,AAEC").contentType, "image/png");
    assert.equal(parseDataUri('data:text/plain;charset="utf-8";base64,AAEC').contentType, 'text/plain;charset="utf-8"');
    assert.equal(parseDataUri("data:image/svg+xml;charset=utf-8,<svg/>").contentType, "image/svg+xml;charset=utf-8");
  });

  it("accepts base64 with whitespace, missing padding, the URL-safe alphabet and percent escapes", () => {
    const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0x01]);
    assert.deepEqual(parseDataUri("data:x/y;base64,+/+/AQ==").data, bytes);
    assert.deepEqual(parseDataUri("data:x/y;base64,-_-_AQ").data, bytes);
    assert.deepEqual(parseDataUri("data:x/y;base64,%2B%2F%2B%2FAQ%3D%3D").data, bytes);
    assert.deepEqual(parseDataUri("data:x/y;base64,+/+/\n AQ==").data, bytes);
  });

  it("refuses malformed URIs with ERR_BAD_REQUEST", () => {
    for (const uri of [
      "image/png;base64,AAAA",
      "data:image/png;base64",
      "data:image/png;base64,AA*A",
      "data:image/png;base64,A",
      "data:image/png;base64,AAAA===",
      "data:image/png;base64,AA%ZZ",
      "data:text/plain,%G0",
      "data:text/plain,100%",
      "data:image,AAAA",
      "data:image/png\r\nX-Evil: 1,AAAA",
      "data:image/png;charset,AAAA",
      "data:image/png;a=b c,AAAA",
    ]) {
      refusedWith("ERR_BAD_REQUEST", () => parseDataUri(uri), /malformed data URI/);
    }
    assert.equal(isDataUri("https://example.com/a.png"), false);
    assert.equal(isDataUri("Data:,x"), true);
  });

  it("refuses data over maxBytes before decoding it, and accepts exactly maxBytes", () => {
    const ten = Buffer.from("0123456789");
    assert.deepEqual(parseDataUri(toDataUri(ten, "text/plain"), 10).data, ten);
    refusedWith("ERR_FILE_TOO_LARGE", () => parseDataUri(toDataUri(ten, "text/plain"), 9));
    assert.deepEqual(parseDataUri("data:text/plain,0123456789", 10).data, ten);
    refusedWith("ERR_FILE_TOO_LARGE", () => parseDataUri("data:text/plain,0123456789", 9));
    refusedWith("ERR_FILE_TOO_LARGE", () => parseDataUri("data:text/plain,%30%31%32", 2));
    refusedWith("ERR_FILE_TOO_LARGE", () => parseDataUri(`data:x/y;base64,${"A".repeat(4_000_000)}`, 1_000_000));
  });
});
