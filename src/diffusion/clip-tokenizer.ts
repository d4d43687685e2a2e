/**
 * CLIP's byte-level BPE tokenizer (openai/CLIP `simple_tokenizer.py`, transformers'
 * `CLIPTokenizer`), read from a model's own `tokenizer/vocab.json` and `tokenizer/merges.txt`.
 *
 * Prompt → clean (HTML entities, NFC, whitespace collapsed, lowercase) → split by CLIP's regex →
 * each piece's UTF-8 bytes mapped to printable characters → BPE merges by rank, the last symbol
 * carrying `</w>` → vocabulary ids → `<|startoftext|>` … `<|endoftext|>`, padded or truncated to 77.
 * @module
 */
import { readFile } from "node:fs/promises";
import path from "node:path";

export const START_OF_TEXT = "<|startoftext|>";
export const END_OF_TEXT = "<|endoftext|>";
/** The text encoder's position count; every SD 1.x/2.x/turbo text encoder takes exactly 77 ids. */
export const CLIP_MAX_LENGTH = 77;
/** transformers keeps `49152 - 256 - 2` merges from merges.txt; the rest were never trained into the vocab. */
const MAX_MERGES = 49152 - 256 - 2;

/**
 * GPT-2/CLIP's byte → character table: printable Latin-1 bytes map to themselves, the other 68
 * bytes (controls, space, soft hyphen…) to U+0100 onwards in byte order, so every byte string is
 * a string of visible characters with no whitespace.
 */
export function bytesToUnicode(): string[] {
  const table: string[] = new Array<string>(256);
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) table[b] = printable(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  return table;
}

const BYTE_ENCODER = bytesToUnicode();
const BYTE_DECODER = new Map(BYTE_ENCODER.map((c, b) => [c, b]));

// CLIP compiles this with re.IGNORECASE; the text is lowercased first, so it only matters for 'S, 'T…
const PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };

/** The common part of Python's `html.unescape`, which CLIP applies twice (`basic_clean`). */
function unescapeHtml(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, body: string) => {
    if (body[0] === "#") {
      const code = body[1] === "x" || body[1] === "X" ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return ENTITIES[body.toLowerCase()] ?? whole;
  });
}

/**
 * CLIP's `basic_clean` + `whitespace_clean` + lower(). ftfy's mojibake repair is not reproduced;
 * its NFC normalisation is.
 */
export function cleanText(text: string): string {
  return unescapeHtml(unescapeHtml(text)).normalize("NFC").replace(/\s+/gu, " ").trim().toLowerCase();
}

export interface ClipTokenizerFiles {
  /** vocab.json: token → id. */
  vocab: Record<string, number>;
  /** merges.txt as text: `#version` line, then one `a b` pair per line, best first. */
  merges: string;
  /** The padding token (tokenizer_config.json `pad_token`). SD 1.x pads with `<|endoftext|>`, SD 2.x and SD-Turbo with `!`. */
  padToken?: string;
  /** @default 77 */
  maxLength?: number;
}

export interface Encoded {
  /** Exactly `maxLength` ids: BOS, the prompt, EOS, padding. */
  ids: number[];
  /** 1 for BOS…EOS, 0 for padding. */
  attentionMask: number[];
  /** Whether prompt tokens were dropped to fit. */
  truncated: boolean;
}

export class ClipTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly maxLength: number;
  readonly #vocab: Map<string, number>;
  readonly #decoder: Map<number, string>;
  readonly #ranks = new Map<string, number>();
  readonly #cache = new Map<string, string[]>();

  constructor(files: ClipTokenizerFiles) {
    this.#vocab = new Map(Object.entries(files.vocab));
    this.#decoder = new Map([...this.#vocab].map(([t, id]) => [id, t]));
    const lines = files.merges.split("\n");
    let rank = 0;
    for (const [i, raw] of lines.entries()) {
      const line = raw.trim();
      if (!line || (i === 0 && line.startsWith("#version"))) continue;
      if (rank >= MAX_MERGES) break;
      const parts = line.split(" ");
      if (parts.length !== 2) throw new Error(`merges.txt line ${i + 1} is not a pair: '${line}'`);
      // \u0000 cannot occur in a byte-mapped symbol, so it separates the pair unambiguously.
      if (!this.#ranks.has(`${parts[0]}\u0000${parts[1]}`)) this.#ranks.set(`${parts[0]}\u0000${parts[1]}`, rank);
      rank++;
    }
    const id = (token: string): number => {
      const v = this.#vocab.get(token);
      if (v === undefined) throw new Error(`vocab.json has no '${token}'`);
      return v;
    };
    this.bosId = id(START_OF_TEXT);
    this.eosId = id(END_OF_TEXT);
    this.padId = id(files.padToken ?? END_OF_TEXT);
    this.maxLength = files.maxLength ?? CLIP_MAX_LENGTH;
    if (this.maxLength < 2) throw new Error("maxLength must leave room for BOS and EOS");
  }

  /**
   * Loads `<modelDir>/tokenizer/{vocab.json,merges.txt}`, with `pad_token` and `model_max_length`
   * from tokenizer_config.json or special_tokens_map.json when present.
   */
  static async load(modelDir: string): Promise<ClipTokenizer> {
    const dir = path.join(modelDir, "tokenizer");
    const vocab = JSON.parse(await readFile(path.join(dir, "vocab.json"), "utf8")) as Record<string, number>;
    const merges = await readFile(path.join(dir, "merges.txt"), "utf8");
    const optionalJson = async (name: string): Promise<Record<string, unknown>> => {
      try {
        return JSON.parse(await readFile(path.join(dir, name), "utf8")) as Record<string, unknown>;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
        throw err;
      }
    };
    const config = { ...(await optionalJson("special_tokens_map.json")), ...(await optionalJson("tokenizer_config.json")) };
    // transformers writes special tokens either as strings or as AddedToken objects.
    const tokenText = (v: unknown): string | undefined =>
      typeof v === "string" ? v : v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string" ? (v as { content: string }).content : undefined;
    const padToken = tokenText(config["pad_token"]);
    const maxLength = typeof config["model_max_length"] === "number" && config["model_max_length"] <= 1024 ? config["model_max_length"] : undefined;
    return new ClipTokenizer({ vocab, merges, ...(padToken ? { padToken } : {}), ...(maxLength ? { maxLength } : {}) });
  }

  /** BPE of one pre-tokenized piece, already byte-mapped: symbols merged by rank, lowest first. */
  #bpe(piece: string): string[] {
    const cached = this.#cache.get(piece);
    if (cached) return cached;
    const chars = [...piece];
    let word = [...chars.slice(0, -1), `${chars[chars.length - 1] ?? ""}</w>`];
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.#ranks.get(`${word[i]}\u0000${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best] ?? "";
      const second = word[best + 1] ?? "";
      // Every occurrence of the best pair merges in one pass, left to right, as CLIP's bpe() does.
      const next: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          next.push(first + second);
          i++;
        } else next.push(word[i] ?? "");
      }
      word = next;
      if (word.length === 1) break;
    }
    if (this.#cache.size < 10_000) this.#cache.set(piece, word);
    return word;
  }

  /** The BPE tokens of a prompt, without BOS/EOS (`a photo` → [`a</w>`, `photo</w>`]). */
  tokenize(text: string): string[] {
    const out: string[] = [];
    for (const match of cleanText(text).matchAll(PATTERN)) {
      const piece = match[0];
      if (piece === START_OF_TEXT || piece === END_OF_TEXT) {
        out.push(piece);
        continue;
      }
      let mapped = "";
      for (const b of Buffer.from(piece, "utf8")) mapped += BYTE_ENCODER[b];
      out.push(...this.#bpe(mapped));
    }
    return out;
  }

  /** Vocabulary ids of the prompt's tokens; a token missing from the vocabulary becomes `<|endoftext|>`, as transformers' unk_token does. */
  tokenIds(text: string): number[] {
    return this.tokenize(text).map((t) => this.#vocab.get(t) ?? this.eosId);
  }

  /** BOS, at most `maxLength - 2` prompt ids, EOS, then padding to `maxLength`. */
  encode(text: string): Encoded {
    const body = this.tokenIds(text);
    const room = this.maxLength - 2;
    const kept = body.slice(0, room);
    const ids = [this.bosId, ...kept, this.eosId];
    const attentionMask = ids.map(() => 1);
    while (ids.length < this.maxLength) {
      ids.push(this.padId);
      attentionMask.push(0);
    }
    return { ids, attentionMask, truncated: body.length > room };
  }

  /** Ids back to text, up to the first EOS: `</w>` as a space, bytes decoded as UTF-8. */
  decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    for (const [i, id] of ids.entries()) {
      if (id === this.bosId && i === 0) continue;
      // The pad token may be an ordinary one (`!`), so padding is recognised by position only.
      if (id === this.eosId) break;
      const token = this.#decoder.get(id);
      if (token === undefined) continue;
      for (const ch of token.replace(/<\/w>/g, " ")) {
        const b = ch === " " ? 0x20 : BYTE_DECODER.get(ch);
        if (b !== undefined) bytes.push(b);
      }
    }
    return Buffer.from(bytes).toString("utf8").trim();
  }
}
