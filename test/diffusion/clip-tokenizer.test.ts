/**
 * The CLIP tokenizer against ids worked out by hand from the algorithm, on a tiny vocabulary
 * written here. Each expectation's comment shows the derivation.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { bytesToUnicode, cleanText, ClipTokenizer } from "../../src/diffusion/clip-tokenizer.js";

const BOS = 49406;
const EOS = 49407;

const VOCAB: Record<string, number> = {
  "!": 0,
  "!</w>": 1,
  a: 2,
  c: 3,
  e: 4,
  h: 5,
  t: 6,
  "t</w>": 7,
  "e</w>": 8,
  "s</w>": 9,
  "'": 10,
  "4</w>": 11,
  "2</w>": 12,
  th: 13,
  "the</w>": 14,
  ca: 15,
  "cat</w>": 16,
  "he</w>": 17,
  "'s</w>": 18,
  Ã: 19,
  "©</w>": 20,
  "Ã©</w>": 21,
  ð: 22,
  Ł: 23,
  Ļ: 24,
  "Ĥ</w>": 25,
  "ā</w>": 26,
  "&</w>": 27,
  "<|startoftext|>": BOS,
  "<|endoftext|>": EOS,
};

// Rank = line number after the #version line; lower merges first.
const MERGES = ["#version: 0.2", "t h", "th e</w>", "c a", "ca t</w>", "h e</w>", "' s</w>", "Ã ©</w>"].join("\n");

const tok = new ClipTokenizer({ vocab: VOCAB, merges: MERGES });
const body = (text: string): number[] => tok.tokenIds(text);

describe("CLIP tokenizer", () => {
  it("maps bytes to printable characters as GPT-2/CLIP do", () => {
    const table = bytesToUnicode();
    assert.equal(new Set(table).size, 256);
    assert.equal(table[0x41], "A"); // printable ASCII maps to itself
    assert.equal(table[0x00], "\u0100"); // first non-printable byte → U+0100
    assert.equal(table[0x20], "Ġ"); // space is the 33rd non-printable (bytes 0..32) → U+0100 + 32
    assert.equal(table[0x7f], "\u0121"); // DEL: after 0..32 (33 bytes) → U+0100 + 33
    assert.equal(table[0xad], "Ń"); // soft hyphen: 33 + 34 (127..160) = 67th → U+0143
    assert.equal(table[0xe9], "é"); // printable Latin-1 maps to itself
  });

  it("merges by rank, not left to right", () => {
    // "the" → t h e</w>; pairs (t,h) rank 0 and (h,e</w>) rank 4 → th e</w>; (th,e</w>) rank 1 → the</w> = 14.
    // Applying (h,e</w>) first would have left t he</w>, which no merge joins.
    assert.deepEqual(tok.tokenize("the"), ["the</w>"]);
    // "cat" → c a t</w>; (c,a) rank 2 → ca t</w>; (ca,t</w>) rank 3 → cat</w> = 16.
    // "he" → h e</w>; (h,e</w>) rank 4 → he</w> = 17.
    assert.deepEqual(body("the cat he"), [14, 16, 17]);
  });

  it("adds BOS and EOS and pads to 77 with the pad token", () => {
    const { ids, attentionMask, truncated } = tok.encode("the cat");
    assert.equal(ids.length, 77);
    assert.deepEqual(ids.slice(0, 4), [BOS, 14, 16, EOS]);
    // No pad_token configured: transformers' CLIPTokenizer default, <|endoftext|>.
    assert.deepEqual(ids.slice(4), new Array(73).fill(EOS));
    assert.deepEqual(attentionMask.slice(0, 5), [1, 1, 1, 1, 0]);
    assert.equal(truncated, false);
    // SD 2.x / SD-Turbo tokenizers say pad_token "!": id 0.
    const bang = new ClipTokenizer({ vocab: VOCAB, merges: MERGES, padToken: "!" });
    assert.deepEqual(bang.encode("the cat").ids.slice(3, 6), [EOS, 0, 0]);
    // The empty prompt is BOS, EOS, then padding.
    assert.deepEqual(tok.encode("").ids.slice(0, 3), [BOS, EOS, EOS]);
  });

  it("lowercases, collapses whitespace and unescapes HTML as CLIP's clean-up does", () => {
    assert.equal(cleanText("  THE\n\t Cat  "), "the cat");
    assert.deepEqual(body("  THE\n\t Cat  "), [14, 16]);
    // "&amp;amp;" → "&amp;" → "&" (CLIP unescapes twice); "&" → &</w> = 27.
    assert.deepEqual(body("cat &amp;amp; the"), [16, 27, 14]);
  });

  it("splits contractions, punctuation runs and single digits", () => {
    // "cat's" → "cat" + "'s"; "'s" → ' s</w>; (',s</w>) rank 5 → 's</w> = 18.
    assert.deepEqual(body("CAT'S"), [16, 18]);
    // "!!" is one piece ([^\s\p{L}\p{N}]+) → ! !</w>, no merge → 0, 1.
    assert.deepEqual(body("cat!!"), [16, 0, 1]);
    // Digits are single pieces ([\p{N}]): "42" → 4</w>, 2</w>.
    assert.deepEqual(body("42"), [11, 12]);
  });

  it("encodes characters outside ASCII through their UTF-8 bytes", () => {
    // é = C3 A9 → Ã © ; word Ã ©</w>; (Ã,©</w>) rank 6 → Ã©</w> = 21. A decomposed e + U+0301 is NFC-composed first.
    assert.deepEqual(body("é"), [21]);
    assert.deepEqual(body("e\u0301"), [21]);
    // 🙂 = F0 9F 99 82: F0 → ð (printable); 9F → U+0100 + 33 + (0x9F − 0x7F) = U+0141 Ł;
    // 99 → U+0100 + 33 + 26 = U+013B Ļ; 82 → U+0100 + 33 + 3 = U+0124 Ĥ. No merges → 22, 23, 24, 25.
    assert.deepEqual(tok.tokenize("🙂"), ["ð", "Ł", "Ļ", "Ĥ</w>"]);
    assert.deepEqual(body("🙂"), [22, 23, 24, 25]);
    // Byte 01 → U+0101 ā → ā</w> = 26.
    assert.deepEqual(body("\u0001"), [26]);
    // "z</w>" is not in this vocabulary: the unknown token is <|endoftext|>.
    assert.deepEqual(body("z"), [EOS]);
  });

  it("keeps special tokens written in the prompt whole", () => {
    assert.deepEqual(tok.tokenize("<|startoftext|>cat<|endoftext|>"), ["<|startoftext|>", "cat</w>", "<|endoftext|>"]);
    assert.deepEqual(tok.encode("<|startoftext|>cat").ids.slice(0, 4), [BOS, BOS, 16, EOS]);
  });

  it("truncates to 75 prompt tokens and keeps EOS at position 76", () => {
    const long = tok.encode("cat ".repeat(100));
    assert.equal(long.ids.length, 77);
    assert.equal(long.ids[0], BOS);
    assert.deepEqual(long.ids.slice(1, 76), new Array(75).fill(16));
    assert.equal(long.ids[76], EOS);
    assert.equal(long.truncated, true);
    assert.deepEqual(long.attentionMask, new Array(77).fill(1));
    const exact = tok.encode("cat ".repeat(75));
    assert.equal(exact.truncated, false);
    assert.equal(exact.ids[76], EOS);
  });

  it("decodes ids back to text", () => {
    assert.equal(tok.decode(tok.encode("The cat's 🙂").ids), "the cat 's 🙂");
  });

  it("loads vocab.json, merges.txt and the pad token from a model folder", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "darkroom-tokenizer-"));
    try {
      mkdirSync(path.join(dir, "tokenizer"));
      writeFileSync(path.join(dir, "tokenizer/vocab.json"), JSON.stringify(VOCAB));
      writeFileSync(path.join(dir, "tokenizer/merges.txt"), `${MERGES}\n`);
      // transformers writes special tokens as AddedToken objects too.
      writeFileSync(path.join(dir, "tokenizer/tokenizer_config.json"), JSON.stringify({ pad_token: { content: "!", lstrip: false }, model_max_length: 77 }));
      const loaded = await ClipTokenizer.load(dir);
      assert.equal(loaded.padId, 0);
      assert.deepEqual(loaded.encode("the cat").ids.slice(0, 5), [BOS, 14, 16, EOS, 0]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
