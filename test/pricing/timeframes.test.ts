/**
 * Usage report buckets (src/pricing/timeframes.ts): fal's automatic timeframe, alignment to UTC
 * periods (weeks from Monday, calendar months), and grids that end where the range ends.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { autoTimeframe, BucketGrid, periodStart } from "../../src/pricing/timeframes.js";

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const iso = (t: number): string => new Date(t).toISOString();

describe("usage timeframes", () => {
  it("picks fal's timeframe from the length of the range", () => {
    assert.deepEqual(
      [HOUR, 2 * HOUR - 1, 2 * HOUR, 2 * DAY - 1, 2 * DAY, 64 * DAY - 1, 64 * DAY, 183 * DAY - 1, 183 * DAY, 900 * DAY].map(autoTimeframe),
      ["minute", "minute", "hour", "hour", "day", "day", "week", "week", "month", "month"],
    );
  });

  it("aligns to UTC periods: weeks start on Monday, months on the 1st", () => {
    const t = Date.parse("2024-02-29T13:45:30.500Z"); // a Thursday
    assert.equal(iso(periodStart(t, "minute")), "2024-02-29T13:45:00.000Z");
    assert.equal(iso(periodStart(t, "hour")), "2024-02-29T13:00:00.000Z");
    assert.equal(iso(periodStart(t, "day")), "2024-02-29T00:00:00.000Z");
    assert.equal(iso(periodStart(t, "week")), "2024-02-26T00:00:00.000Z");
    assert.equal(iso(periodStart(Date.parse("2024-02-26T00:00:00Z"), "week")), "2024-02-26T00:00:00.000Z", "a Monday starts its own week");
    assert.equal(iso(periodStart(Date.parse("1970-01-01T00:00:00Z"), "week")), "1969-12-29T00:00:00.000Z");
    assert.equal(iso(periodStart(t, "month")), "2024-02-01T00:00:00.000Z");
  });

  it("bound to the timeframe, covers whole periods, the one holding the end included", () => {
    const grid = BucketGrid.of(Date.parse("2024-01-01T10:00:00Z"), Date.parse("2024-01-03T00:00:00Z"), "day", true);
    assert.equal(iso(grid.start), "2024-01-01T00:00:00.000Z");
    assert.equal(iso(grid.end), "2024-01-04T00:00:00.000Z");
    assert.equal(grid.count, 3);
    assert.deepEqual([0, 1, 2, 3].map((i) => iso(grid.startOf(i))), ["2024-01-01T00:00:00.000Z", "2024-01-02T00:00:00.000Z", "2024-01-03T00:00:00.000Z", "2024-01-04T00:00:00.000Z"]);
  });

  it("unbound, starts at the start and cuts the last bucket at the end", () => {
    const grid = BucketGrid.of(Date.parse("2024-01-01T10:00:00Z"), Date.parse("2024-01-03T04:00:00Z"), "day", false);
    assert.equal(grid.count, 2);
    assert.equal(iso(grid.startOf(1)), "2024-01-02T10:00:00.000Z");
    assert.equal(iso(grid.endOf(1)), "2024-01-03T04:00:00.000Z");
  });

  it("steps calendar months, keeping the day where the month has it", () => {
    const aligned = BucketGrid.of(Date.parse("2024-01-15T00:00:00Z"), Date.parse("2024-03-02T00:00:00Z"), "month", true);
    assert.deepEqual([0, 1, 2, 3].map((i) => iso(aligned.startOf(i))), ["2024-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"]);
    assert.equal(aligned.widthMs, null);
    const unbound = BucketGrid.of(Date.parse("2024-01-31T12:00:00Z"), Date.parse("2024-04-01T00:00:00Z"), "month", false);
    assert.deepEqual([0, 1, 2].map((i) => iso(unbound.startOf(i))), ["2024-01-31T12:00:00.000Z", "2024-02-29T12:00:00.000Z", "2024-03-31T12:00:00.000Z"]);
    assert.equal(unbound.count, 3);
  });

  it("refuses an empty range", () => {
    assert.throws(() => new BucketGrid(5, 5, "minute"));
  });
});
