/**
 * `--app-knobs` / `DARKROOM_APP_KNOBS`: the parser and merge rules, and a real server whose echo app
 * is made to keep a warm runner and take no more than one by the operator's override alone.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyKnobOverrides, parseKnobOverrides } from "../../src/core/knob-overrides.js";
import { DEFAULT_KNOBS } from "../../src/core/types.js";
import { startTestPlatform } from "../helpers/platform.js";

describe("knob overrides", () => {
  it("parses several apps, a wildcard, and spaces", () => {
    const overrides = parseKnobOverrides(" darkroom/ocr:max_runners=1, keep_alive = 30 ; *:keep_alive=5;darkroom/upscale:min_runners=1 ");
    assert.deepEqual(overrides.get("darkroom/ocr"), { max_runners: 1, keep_alive: 30 });
    assert.deepEqual(overrides.get("*"), { keep_alive: 5 });
    assert.deepEqual(overrides.get("darkroom/upscale"), { min_runners: 1 });
    assert.equal(parseKnobOverrides("").size, 0);
  });

  it("lets an app's own entry win over the wildcard, and leaves other knobs as the app set them", () => {
    const overrides = parseKnobOverrides("*:keep_alive=5,max_runners=3;darkroom/ocr:keep_alive=30");
    const appKnobs = { ...DEFAULT_KNOBS, max_runners: 2, request_timeout: 900 };
    assert.deepEqual(applyKnobOverrides("darkroom/ocr", appKnobs, overrides), { ...appKnobs, keep_alive: 30, max_runners: 3 });
    assert.deepEqual(applyKnobOverrides("darkroom/echo", appKnobs, overrides), { ...appKnobs, keep_alive: 5, max_runners: 3 });
    assert.deepEqual(applyKnobOverrides("darkroom/echo", appKnobs, new Map()), appKnobs);
  });

  it("refuses unknown knobs, non-integers, zeros where zero means nothing, and entries without knobs", () => {
    const refused: [string, RegExp][] = [
      ["darkroom/ocr:max_runner=2", /unknown knob "max_runner"/],
      ["darkroom/ocr:max_runners=1.5", /integer ≥ 1/],
      ["darkroom/ocr:max_runners=0", /integer ≥ 1/],
      ["darkroom/ocr:keep_alive=-1", /integer ≥ 0/],
      ["darkroom/ocr:keep_alive=", /integer ≥ 0/],
      ["darkroom/ocr:keep_alive=1=2", /integer ≥ 0/],
      ["darkroom/ocr:", /no knob given/],
      ["max_runners=2", /not <app id>:<knob>=<value>/],
    ];
    for (const [text, message] of refused) assert.throws(() => parseKnobOverrides(text), message, text);
  });

  it("refuses a merge that puts min_runners above max_runners", () => {
    assert.throws(
      () => applyKnobOverrides("darkroom/ocr", { ...DEFAULT_KNOBS, max_runners: 1 }, parseKnobOverrides("darkroom/ocr:min_runners=2")),
      /min_runners 2 above max_runners 1/,
    );
  });

  it("changes what a running server does: a warm runner before any request, knobs shown in /v1/models", async () => {
    const platform = await startTestPlatform({ env: { DARKROOM_APP_KNOBS: "darkroom/echo:min_runners=1,max_runners=1,keep_alive=7" } });
    try {
      const res = await fetch(`${platform.url}/v1/models`, { headers: platform.auth });
      const body = (await res.json()) as { models: { endpoint_id: string; knobs: Record<string, number> }[] };
      const echo = body.models.find((m) => m.endpoint_id === "darkroom/echo");
      assert.ok(echo, "echo is listed");
      assert.equal(echo.knobs["min_runners"], 1);
      assert.equal(echo.knobs["max_runners"], 1);
      assert.equal(echo.knobs["keep_alive"], 7);
      // echo's own default is min_runners 0: a ready runner with no request sent comes from the override.
      const deadline = Date.now() + 20_000;
      for (;;) {
        const pool = platform.scheduler.snapshot().find((p) => p.app === "darkroom/echo");
        if (pool && pool.runners.some((r) => r.state === "ready")) break;
        assert.ok(Date.now() < deadline, "a warm runner started without any request");
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await platform.close();
    }
  });
});
