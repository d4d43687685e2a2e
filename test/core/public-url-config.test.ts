/**
 * `--public-url` / `DARKROOM_PUBLIC_URL` (src/core/config.ts): every URL handed to clients is built
 * on it, so anything that is not an absolute http(s) base is refused at startup, in words that
 * name the setting; a good one comes back without its trailing slash, its path kept.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig } from "../../src/core/config.js";

describe("public URL setting", () => {
  it("keeps an http(s) base, path included, without its trailing slash", () => {
    assert.equal(loadConfig({}, {}).publicUrl, null);
    assert.equal(loadConfig({ "public-url": "https://darkroom.example.com/" }, {}).publicUrl, "https://darkroom.example.com");
    assert.equal(loadConfig({}, { DARKROOM_PUBLIC_URL: "http://10.0.0.5:8787" }).publicUrl, "http://10.0.0.5:8787");
    assert.equal(loadConfig({ "public-url": " https://Example.com:443/darkroom/ " }, {}).publicUrl, "https://example.com/darkroom");
    assert.equal(loadConfig({}, { DARKROOM_PUBLIC_URL: "" }).publicUrl, null);
  });

  it("refuses what is not an absolute http(s) base, naming where it came from", () => {
    const refused: [Record<string, string>, Record<string, string>, RegExp][] = [
      [{ "public-url": "darkroom.example.com" }, {}, /Invalid --public-url: 'darkroom.example.com' \(expected an absolute URL/],
      [{}, { DARKROOM_PUBLIC_URL: "javascript:alert(1)" }, /Invalid DARKROOM_PUBLIC_URL: .*http:\/\/ or https:\/\//],
      [{ "public-url": "ftp://example.com" }, {}, /http:\/\/ or https:\/\//],
      [{ "public-url": "https://user:pass@example.com" }, {}, /credentials/],
      [{ "public-url": "https://example.com/?x=1" }, {}, /no query or fragment/],
      [{ "public-url": "https://example.com/#top" }, {}, /no query or fragment/],
      [{ "public-url": "https://example.com/?" }, {}, /no query or fragment/],
    ];
    for (const [flags, env, message] of refused) assert.throws(() => loadConfig(flags, env), message, JSON.stringify({ flags, env }));
  });
});
