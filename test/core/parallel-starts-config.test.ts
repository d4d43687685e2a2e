/**
 * `--parallel-starts` / `DARKROOM_PARALLEL_STARTS`: by default the cores less one (at least 1), and a
 * value that is not a whole number from 1 up stops the server at start.
 */
import assert from "node:assert/strict";
import os from "node:os";
import { describe, it } from "node:test";
import { loadConfig, MAX_PARALLEL_STARTS } from "../../src/core/config.js";

describe("parallel starts setting", () => {
  it("follows the cores unless set; the flag wins over the environment", () => {
    const cores = os.availableParallelism();
    assert.equal(loadConfig({}, {}).parallelStarts, Math.max(1, cores - 1));
    assert.equal(loadConfig({}, { DARKROOM_PARALLEL_STARTS: "" }).parallelStarts, Math.max(1, cores - 1));
    assert.equal(loadConfig({}, { DARKROOM_PARALLEL_STARTS: "3" }).parallelStarts, 3);
    assert.equal(loadConfig({ "parallel-starts": "1" }, { DARKROOM_PARALLEL_STARTS: "3" }).parallelStarts, 1);
  });

  it("refuses 0, negative, fractional, huge and non-numeric values", () => {
    for (const bad of ["0", "-1", "1.5", String(MAX_PARALLEL_STARTS + 1), "all"]) {
      assert.throws(() => loadConfig({ "parallel-starts": bad }, {}), /Invalid --parallel-starts/, bad);
    }
  });
});
