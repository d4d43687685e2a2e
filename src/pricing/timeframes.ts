/**
 * The time buckets of a usage report, in UTC: fal's timeframes (`minute`, `hour`, `day`, `week`,
 * `month`), its choice of one from the length of the range, and its `bound_to_timeframe` alignment.
 * Weeks start on Monday (ISO 8601); months are calendar months.
 * @module
 */

export const TIMEFRAMES = ["minute", "hour", "day", "week", "month"] as const;
export type Timeframe = (typeof TIMEFRAMES)[number];

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;
/** 1970-01-01 was a Thursday: the first Monday after the epoch starts week buckets. */
const FIRST_MONDAY = 4 * DAY;

/** Width of the timeframes that have one (a month has none). */
const FIXED_MS: Readonly<Record<Exclude<Timeframe, "month">, number>> = { minute: MINUTE, hour: HOUR, day: DAY, week: WEEK };

export function isTimeframe(value: string): value is Timeframe {
  return (TIMEFRAMES as readonly string[]).includes(value);
}

/** fal's choice when none is asked for: minute under 2 hours, hour under 2 days, day under 64 days, week under 183 days, else month. */
export function autoTimeframe(rangeMs: number): Timeframe {
  if (rangeMs < 2 * HOUR) return "minute";
  if (rangeMs < 2 * DAY) return "hour";
  if (rangeMs < 64 * DAY) return "day";
  if (rangeMs < 183 * DAY) return "week";
  return "month";
}

/** Start of the period of `timeframe` that `t` falls in. */
export function periodStart(t: number, timeframe: Timeframe): number {
  if (timeframe === "month") {
    const d = new Date(t);
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  }
  if (timeframe === "week") return Math.floor((t - FIRST_MONDAY) / WEEK) * WEEK + FIRST_MONDAY;
  const width = FIXED_MS[timeframe];
  return Math.floor(t / width) * width;
}

/** `t` plus `months` calendar months, on the same day (or the month's last, when it is shorter) and time. */
function addMonths(t: number, months: number): number {
  const d = new Date(t);
  const year = d.getUTCFullYear();
  const month = d.getUTCMonth() + months;
  const lastDay = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  return Date.UTC(year, month, Math.min(d.getUTCDate(), lastDay), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds());
}

/**
 * The buckets of [`start`, `end`): the first starts at `start`, each lasts one `timeframe`, and the
 * last ends at `end` (shorter when `end` is not on a boundary).
 */
export class BucketGrid {
  readonly start: number;
  readonly end: number;
  readonly timeframe: Timeframe;
  /** Bucket width, for every timeframe but month. */
  readonly widthMs: number | null;
  readonly count: number;
  /** Month bucket starts (a range holds few months); null for the fixed-width timeframes. */
  readonly #monthStarts: number[] | null;

  constructor(start: number, end: number, timeframe: Timeframe) {
    if (!(end > start)) throw new Error(`Empty usage range [${start}, ${end})`);
    this.start = start;
    this.end = end;
    this.timeframe = timeframe;
    if (timeframe === "month") {
      const starts: number[] = [];
      for (let k = 0, t = start; t < end; k++, t = addMonths(start, k)) starts.push(t);
      this.#monthStarts = starts;
      this.widthMs = null;
      this.count = starts.length;
    } else {
      this.#monthStarts = null;
      this.widthMs = FIXED_MS[timeframe];
      this.count = Math.ceil((end - start) / this.widthMs);
    }
  }

  /**
   * The range asked for, aligned as fal's `bound_to_timeframe` does when `bound`: `start` back to
   * the start of its period, `end` on to the end of its period (the period holding `end` is whole).
   */
  static of(start: number, end: number, timeframe: Timeframe, bound: boolean): BucketGrid {
    if (!bound) return new BucketGrid(start, end, timeframe);
    const alignedStart = periodStart(start, timeframe);
    const lastPeriod = periodStart(end, timeframe);
    const alignedEnd = timeframe === "month" ? addMonths(lastPeriod, 1) : lastPeriod + FIXED_MS[timeframe];
    return new BucketGrid(alignedStart, alignedEnd, timeframe);
  }

  /** Start of bucket `i` (0 ≤ i ≤ count; `startOf(count)` is `end`). */
  startOf(i: number): number {
    if (i >= this.count) return this.end;
    return this.#monthStarts ? (this.#monthStarts[i] ?? this.end) : this.start + i * (this.widthMs ?? 0);
  }

  /** End of bucket `i`: the next one's start, or `end`. */
  endOf(i: number): number {
    return this.startOf(i + 1);
  }
}
