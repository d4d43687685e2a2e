import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { JITTER, MAX_DELAY_MS, MAX_RETRIES, TOTAL_NOMINAL_MS, nextDelayMs, nominalDelayMs } from "../../src/webhooks/backoff.js";

const TWO_HOURS_MS = 2 * 60 * 60 * 1000;

/** Delays after each failed attempt until the schedule gives up. */
function schedule(random: () => number): number[] {
  const delays: number[] = [];
  for (let attempt = 1; ; attempt++) {
    const delay = nextDelayMs(attempt, random);
    if (delay === null) return delays;
    delays.push(delay);
    assert.ok(attempt < 100, "the schedule must end");
  }
}

describe("webhook backoff", () => {
  it("retries at least 10 times after the first attempt, then gives up", () => {
    const delays = schedule(() => 0.5);
    assert.equal(delays.length, MAX_RETRIES);
    assert.ok(delays.length >= 10);
    assert.equal(nextDelayMs(MAX_RETRIES + 1), null);
    assert.equal(nextDelayMs(1000), null);
  });

  it("totals at least 2 hours, even with the shortest jitter", () => {
    const shortest = schedule(() => 0).reduce((a, b) => a + b, 0);
    const nominal = schedule(() => 0.5).reduce((a, b) => a + b, 0);
    assert.equal(nominal, TOTAL_NOMINAL_MS);
    assert.equal(TOTAL_NOMINAL_MS, 9_090_000);
    assert.ok(shortest >= TWO_HOURS_MS, `shortest total ${shortest} ms is under 2 h`);
    for (let i = 0; i < 50; i++) {
      const total = schedule(Math.random).reduce((a, b) => a + b, 0);
      assert.ok(total >= TWO_HOURS_MS && total <= TOTAL_NOMINAL_MS * (1 + JITTER) + 10);
    }
  });

  it("grows exponentially from 30 s up to the 30 min cap", () => {
    const delays = schedule(() => 0.5);
    assert.deepEqual(
      delays.map((d) => d / 1000),
      [30, 60, 120, 240, 480, 960, 1800, 1800, 1800, 1800],
    );
    for (let i = 1; i < delays.length; i++) {
      assert.ok(delays[i]! >= delays[i - 1]!, "never shrinks");
      if (delays[i - 1]! < MAX_DELAY_MS) assert.ok(delays[i]! > delays[i - 1]!, "grows until the cap");
    }
    assert.equal(nominalDelayMs(20), MAX_DELAY_MS);
  });

  it("keeps jitter within ±10 %", () => {
    for (let attempt = 1; attempt <= MAX_RETRIES; attempt++) {
      const nominal = nominalDelayMs(attempt);
      assert.equal(nextDelayMs(attempt, () => 0), Math.round(nominal * 0.9));
      assert.equal(nextDelayMs(attempt, () => 1), Math.round(nominal * 1.1));
      const random = nextDelayMs(attempt)!;
      assert.ok(random >= nominal * 0.9 - 1 && random <= nominal * 1.1 + 1);
    }
  });

  it("refuses nonsense attempt numbers", () => {
    assert.throws(() => nextDelayMs(0), RangeError);
    assert.throws(() => nextDelayMs(1.5), RangeError);
  });
});
