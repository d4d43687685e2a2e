/**
 * Word error rate for speech tests: word-level edit distance (substitutions, insertions, deletions)
 * over the reference's length, after lower-casing and dropping punctuation.
 * @module
 */
export function wordErrorRate(reference: string, hypothesis: string): number {
  const words = (s: string): string[] => s.toLowerCase().replace(/[^a-z0-9' ]+/g, " ").split(/\s+/).filter(Boolean);
  const ref = words(reference);
  const hyp = words(hypothesis);
  let prev = Array.from({ length: hyp.length + 1 }, (_, j) => j);
  for (let i = 1; i <= ref.length; i++) {
    const row = [i];
    for (let j = 1; j <= hyp.length; j++) {
      const cost = ref[i - 1] === hyp[j - 1] ? 0 : 1;
      row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost));
    }
    prev = row;
  }
  return prev[hyp.length]! / Math.max(1, ref.length);
}
