/**
 * `--spare-runners` / `DARKROOM_SPARE_RUNNERS`: one spare by default, 0 turns them off, and a value
 * that is not a small whole number stops the server at start (each spare is a whole process).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig, MAX_SPARE_RUNNERS } from "../../src/core/config.js";

describe("spare runners setting", () => {
  it("keeps one unless set; the flag wins over the environment; 0 is off", () => {
    assert.equal(loadConfig({}, {}).spareRunners, 1);
    assert.equal(loadConfig({}, { DARKROOM_SPARE_RUNNERS: "" }).spareRunners, 1);
    assert.equal(loadConfig({}, { DARKROOM_SPARE_RUNNERS: "0" }).spareRunners, 0);
    assert.equal(loadConfig({ "spare-runners": "2" }, { DARKROOM_SPARE_RUNNERS: "0" }).spareRunners, 2);
    assert.equal(loadConfig({ "spare-runners": String(MAX_SPARE_RUNNERS) }, {}).spareRunners, MAX_SPARE_RUNNERS);
  });

  it("refuses negative, fractional, huge and non-numeric values", () => {
    for (const bad of ["-1", "1.5", String(MAX_SPARE_RUNNERS + 1), "many", "1e3"]) {
      assert.throws(() => loadConfig({ "spare-runners": bad }, {}), /Invalid --spare-runners/, bad);
    }
  });
});
