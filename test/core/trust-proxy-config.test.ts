/**
 * `--trust-proxy` / `DARKROOM_TRUST_PROXY`: off by default, and the three forms Fastify takes; a
 * typo stops the server at start instead of trusting the wrong hops.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig } from "../../src/core/config.js";

describe("trust proxy setting", () => {
  it("is off unless set, and reads true, a hop count or a list of addresses and CIDRs", () => {
    assert.equal(loadConfig({}, {}).trustProxy, false);
    assert.equal(loadConfig({}, { DARKROOM_TRUST_PROXY: "" }).trustProxy, false);
    assert.equal(loadConfig({}, { DARKROOM_TRUST_PROXY: "off" }).trustProxy, false);
    assert.equal(loadConfig({}, { DARKROOM_TRUST_PROXY: "true" }).trustProxy, true);
    assert.equal(loadConfig({ "trust-proxy": "2" }, { DARKROOM_TRUST_PROXY: "true" }).trustProxy, 2);
    assert.deepEqual(loadConfig({}, { DARKROOM_TRUST_PROXY: "10.0.0.0/8, loopback,::1" }).trustProxy, ["10.0.0.0/8", "loopback", "::1"]);
  });

  it("refuses what is none of those", () => {
    assert.throws(() => loadConfig({ "trust-proxy": "proxy.example.com" }, {}), /Invalid --trust-proxy/);
    assert.throws(() => loadConfig({}, { DARKROOM_TRUST_PROXY: "10.0.0.0/8;rm" }), /Invalid --trust-proxy/);
  });
});
