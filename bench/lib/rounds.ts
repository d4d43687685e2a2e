/**
 * Statistics the end-to-end benchmarks share: each call's time in a sequence of calls, quantiles of
 * one round's samples, and the median and spread of each metric over rounds, printed as a Markdown
 * table.
 * @module
 */

/** Runs `call` n times in sequence and returns each call's milliseconds. */
export async function timed(n: number, call: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await call(i);
    out.push(performance.now() - t);
  }
  return out;
}

export const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};

export const median = (xs: number[]): number => quantile(xs, 0.5);

export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** Median, min and max of some samples. */
export const spread = (xs: number[]): Spread => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

export type Summary = Record<string, Spread>;

/** Median, min and max of every metric over the rounds; also printed as a table. */
export function summarizeRounds(rounds: Record<string, number>[]): Summary {
  const summary: Summary = Object.fromEntries(
    Object.keys(rounds[0] ?? {}).map((k) => {
      return [k, spread(rounds.map((r) => r[k] ?? NaN))];
    }),
  );
  console.log("\n| metric | median | min | max |\n|---|---|---|---|");
  for (const [k, v] of Object.entries(summary)) console.log(`| ${k} | ${v.median.toFixed(3)} | ${v.min.toFixed(3)} | ${v.max.toFixed(3)} |`);
  return summary;
}
