/**
 * The JSON limits read from bytes (scanJson, which body workers run before parsing) agree with the
 * same limits measured on the parsed value (measureJson) for every text JSON.stringify can write:
 * escaped quotes and backslashes, structural characters inside strings, empty containers,
 * indentation and multi-byte characters included. Random values from a fixed seed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_JSON_DEPTH, MAX_JSON_VALUES, measureJson, scanJson } from "../../src/gateway/json-shape.js";

/** A small deterministic generator (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const AWKWARD_STRINGS = ["", "plain", 'a\\"b', "\\", "\\\\", '"', "[{,:}]", "naïve “quotes” \u{1F600}", "\n\t"];

function value(next: () => number, depth: number): unknown {
  const roll = next();
  if (depth > 7 || roll < 0.3) {
    const leaves = [0, -1.5e10, null, true, false, ...AWKWARD_STRINGS];
    return leaves[Math.floor(next() * leaves.length)];
  }
  const size = Math.floor(next() * 4);
  if (roll < 0.65) return Array.from({ length: size }, () => value(next, depth + 1));
  return Object.fromEntries(Array.from({ length: size }, (_, i) => [`${AWKWARD_STRINGS[i % AWKWARD_STRINGS.length]}${i}`, value(next, depth + 1)]));
}

describe("JSON limits read from bytes", () => {
  it("agree with the limits measured on the parsed value", () => {
    const next = random(13);
    const limits: [number, number][] = [
      [2, 2],
      [3, 5],
      [4, 12],
      [6, 40],
      [MAX_JSON_DEPTH, MAX_JSON_VALUES],
    ];
    let refused = 0;
    for (let n = 0; n < 5000; n++) {
      const v = value(next, 0);
      const text = JSON.stringify(v, null, next() < 0.5 ? 2 : undefined);
      const bytes = Buffer.from(text, "utf8");
      for (const [depth, values] of limits) {
        const scanned = scanJson(bytes, depth, values);
        const measured = measureJson(v, depth, values);
        assert.equal(scanned.ok, measured.ok, `depth ${depth}, values ${values}: ${text}`);
        if (!scanned.ok) refused++;
      }
    }
    assert.ok(refused > 1000, `the small limits refused ${refused} texts`);
  });

  it("refuses past the real limits, and passes a long string quickly whatever it holds", () => {
    assert.deepEqual(scanJson(Buffer.from(`${"[".repeat(MAX_JSON_DEPTH + 1)}${"]".repeat(MAX_JSON_DEPTH + 1)}`)), { ok: false, reason: "depth" });
    assert.deepEqual(scanJson(Buffer.from(`[${"0,".repeat(MAX_JSON_VALUES)}0]`)), { ok: false, reason: "values" });
    assert.deepEqual(scanJson(Buffer.from(`[${"0,".repeat(MAX_JSON_VALUES - 1)}0]`)), { ok: true });
    // Structure inside a string is not structure.
    assert.deepEqual(scanJson(Buffer.from(JSON.stringify({ s: `${"[{,".repeat(200_000)}\\"` }))), { ok: true });
  });
});
