/**
 * Where JSON text stops being JSON, as a line and column a person can find in an editor. Browsers
 * word `JSON.parse`'s errors differently (Chromium: "line 3 column 5", Firefox: "at line 3 column 5",
 * older engines only "at position 41", some nothing at all), so the place is found by a small
 * scanner of its own, which follows RFC 8259 exactly where JSON.parse has already refused the text.
 * @module
 */

export interface JsonSyntaxError {
  message: string;
  /** 1-based, as editors count. */
  line: number;
  column: number;
  /** 0-based offset into the text. */
  offset: number;
}

class Stop extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(message);
  }
}

/** Scans one JSON text; throws Stop at the first thing that is not JSON. */
function scan(text: string): void {
  let i = 0;
  const describe = (at: number): string => (at >= text.length ? "the end of the text" : `${JSON.stringify(text[at])}`);
  const fail = (expected: string): never => {
    throw new Stop(i, `Expected ${expected}, found ${describe(i)}`);
  };
  const space = (): void => {
    while (i < text.length && " \t\n\r".includes(text[i] as string)) i++;
  };
  const literal = (word: string): void => {
    if (text.startsWith(word, i)) i += word.length;
    else fail(`"${word}"`);
  };
  const string = (): void => {
    i++; // the opening quote
    for (;;) {
      if (i >= text.length) throw new Stop(i, "Unterminated string");
      const ch = text.charCodeAt(i);
      if (ch === 0x22) {
        i++;
        return;
      }
      if (ch < 0x20) throw new Stop(i, "A line break or control character inside a string (write \\n)");
      if (ch === 0x5c) {
        const next = text[i + 1];
        if (next === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) throw new Stop(i, "A \\u escape needs four hex digits");
          i += 6;
        } else if (next !== undefined && '"\\/bfnrt'.includes(next)) i += 2;
        else throw new Stop(i, `Not an escape in JSON: \\${next ?? ""}`);
        continue;
      }
      i++;
    }
  };
  const number = (): void => {
    const match = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i));
    if (!match || match[0] === "-") fail("a number");
    i += match?.[0].length ?? 0;
  };
  const value = (): void => {
    space();
    const ch = text[i];
    if (ch === "{") {
      i++;
      space();
      if (text[i] === "}") return void i++;
      for (;;) {
        space();
        if (text[i] !== '"') fail(text[i] === "}" ? "another property (no comma before })" : "a property name in double quotes");
        string();
        space();
        if (text[i] !== ":") fail("':' after the property name");
        i++;
        value();
        space();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") return void i++;
        fail("',' or '}'");
      }
    }
    if (ch === "[") {
      i++;
      space();
      if (text[i] === "]") return void i++;
      for (;;) {
        space();
        if (text[i] === "]") fail("another value (no comma before ])");
        value();
        space();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") return void i++;
        fail("',' or ']'");
      }
    }
    if (ch === '"') return string();
    if (ch === "t") return literal("true");
    if (ch === "f") return literal("false");
    if (ch === "n") return literal("null");
    if (ch === "-" || (ch !== undefined && ch >= "0" && ch <= "9")) return number();
    fail("a value");
  };
  value();
  space();
  if (i < text.length) throw new Stop(i, `Unexpected ${describe(i)} after the JSON value`);
}

/** Line and column (1-based) of an offset. */
export function lineColumnAt(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - (before.lastIndexOf("\n") + 1) + 1 };
}

/** Why `text` is not JSON, and where; null when it is. */
export function jsonSyntaxError(text: string): JsonSyntaxError | null {
  try {
    JSON.parse(text);
    return null;
  } catch (err) {
    try {
      scan(text);
    } catch (stop) {
      if (stop instanceof Stop) return { message: stop.message, offset: stop.offset, ...lineColumnAt(text, stop.offset) };
      throw stop;
    }
    // The scanner found nothing (it should not happen): the engine's own words, placed at the start.
    return { message: err instanceof Error ? err.message : String(err), offset: 0, line: 1, column: 1 };
  }
}
