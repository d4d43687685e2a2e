/**
 * When a failed webhook delivery is tried again. fal retries "10 times over 2 hours" (its
 * webhook documentation); Darkroom keeps at least that promise even in the worst case of its jitter:
 *
 * | retry | nominal delay | after the first attempt (nominal) |
 * |------:|--------------:|----------------------------------:|
 * |     1 |          30 s |                              30 s |
 * |     2 |           1 m |                              90 s |
 * |     3 |           2 m |                             3.5 m |
 * |     4 |           4 m |                             7.5 m |
 * |     5 |           8 m |                            15.5 m |
 * |     6 |          16 m |                            31.5 m |
 * |     7 |          30 m |                            61.5 m |
 * |     8 |          30 m |                            91.5 m |
 * |     9 |          30 m |                           121.5 m |
 * |    10 |          30 m |                           151.5 m |
 *
 * That is 30 s × 2^(n−1), capped at 30 minutes, 10 retries after the first attempt (11 sends in all),
 * totalling 9,090 s ≈ 2 h 31 m. Each delay gets ±10 % jitter so that the deliveries of a burst of requests
 * that failed together against the same receiver do not come back in lockstep; at −10 % throughout, the
 * total is still 8,181 s ≈ 2 h 16 m, over fal's 2 hours.
 * @module
 */

export const BASE_DELAY_MS = 30_000;
export const MAX_DELAY_MS = 30 * 60_000;
/** Retries after the first attempt. */
export const MAX_RETRIES = 10;
export const JITTER = 0.1;

/** The delay before retry `retry` (1-based) without jitter. */
export function nominalDelayMs(retry: number): number {
  return Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (retry - 1));
}

/** Sum of all nominal delays: 9,090,000 ms. */
export const TOTAL_NOMINAL_MS = Array.from({ length: MAX_RETRIES }, (_, i) => nominalDelayMs(i + 1)).reduce((a, b) => a + b, 0);

/**
 * How long to wait after attempt number `attemptNumber` (1 = the first send) failed, or null when that
 * was the last one and the delivery is given up. Pure apart from `random`, which picks the jitter
 * (uniform in [0, 1); 0.5 means none), so tests can pin it.
 */
export function nextDelayMs(attemptNumber: number, random: () => number = Math.random): number | null {
  if (!Number.isInteger(attemptNumber) || attemptNumber < 1) throw new RangeError(`attempt number must be a positive integer, got ${attemptNumber}`);
  if (attemptNumber > MAX_RETRIES) return null;
  const factor = 1 + JITTER * (2 * random() - 1);
  return Math.round(nominalDelayMs(attemptNumber) * factor);
}
