/**
 * `darkroom/speech-to-text`: English transcription with CMU PocketSphinx (Debian's
 * `pocketsphinx_continuous` and the `pocketsphinx-en-us` models), answering in the shape of fal's
 * whisper apps: `{text, chunks: [{timestamp: [start, end], text}], inferred_languages}`.
 *
 * PocketSphinx is the only offline recogniser whose models ship in a package here (Whisper needs a
 * download). It is good on clear speech and weak on noisy recordings.
 * @module
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fieldError, PlatformError } from "../../core/errors.js";
import { defineApp, endpoint, FileUrl, z, type HandlerContext } from "../../runtime/sdk.js";
import { runFfmpeg, withTempDir } from "../../media/video/ffmpeg.js";
import { probeAudio } from "../../media/audio/audio-file.js";
import { checkPrograms, FFMPEG, FFPROBE, POCKETSPHINX, programPath, runProgram } from "../../media/audio/process.js";

/** 10 minutes: pocketsphinx runs at about half real time on one core, so this bounds a request to ~5 minutes. */
export const MAX_AUDIO_SECONDS = 600;
/** 100 MB of input: 10 minutes of 48 kHz stereo 16-bit WAV is 115 MB, so compressed or mono inputs fit easily. */
export const MAX_INPUT_BYTES = 100 * 1024 * 1024;

/**
 * A pause this long between two words starts a new chunk even where the decoder emitted no `<sil>`,
 * so chunks read as phrases rather than one chunk per (possibly minutes-long) utterance.
 */
const PHRASE_GAP_SECONDS = 0.3;

const SpeechToTextInput = z.object({
  audio_url: FileUrl.describe(
    `Audio to transcribe (http(s) URL or data: URI), any format ffmpeg decodes (WAV, MP3, Ogg/Opus, FLAC, M4A, ` +
      `or the audio track of a video); at most ${MAX_AUDIO_SECONDS / 60} minutes and ${MAX_INPUT_BYTES / 1024 / 1024} MB`,
  ),
  language: z
    .string()
    .default("en")
    .describe('Language of the speech. Only "en" (US English) is installed; any other value is refused with a 422'),
  word_timestamps: z.boolean().default(false).describe("Also return each word with its start and end (`words`)"),
});

const Chunk = z.object({
  timestamp: z.tuple([z.number(), z.number()]).describe("Start and end in seconds from the beginning of the audio"),
  text: z.string(),
});

const SpeechToTextOutput = z.object({
  text: z.string().describe("The whole transcript, lower case, without punctuation"),
  chunks: z.array(Chunk).describe("Phrases with their times: split at pauses and utterance boundaries"),
  inferred_languages: z.array(z.string()),
  words: z
    .array(z.object({ word: z.string(), start: z.number(), end: z.number() }))
    .optional()
    .describe("Each word with its start and end in seconds, when word_timestamps is set"),
});

type Input = z.output<typeof SpeechToTextInput>;
type Output = z.input<typeof SpeechToTextOutput>;

export interface TimedWord {
  word: string;
  start: number;
  end: number;
}

/**
 * Turns `pocketsphinx_continuous -time yes` output into phrases. Each utterance prints its
 * hypothesis line and then one `word start end confidence` line per segment, times counted from
 * the start of the file. `<s>`, `</s>` and `<sil>` segments and fillers (`[NOISE]`, `++BREATH++`)
 * are pauses, not words; they and utterance ends close the current phrase. Alternate
 * pronunciations (`to(2)`) lose their marker.
 */
export function parsePocketsphinx(stdout: string): { text: string; chunks: { timestamp: [number, number]; text: string }[]; words: TimedWord[] } {
  const phrases: TimedWord[][] = [];
  let current: TimedWord[] = [];
  const close = (): void => {
    if (current.length > 0) phrases.push(current);
    current = [];
  };
  for (const line of stdout.split("\n")) {
    const match = /^(\S+) (\d+(?:\.\d+)?) (\d+(?:\.\d+)?) (-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)$/i.exec(line.trim());
    // Hypothesis lines have no numbers and are rebuilt from the words instead.
    if (!match) continue;
    const [, token = "", startText = "0", endText = "0"] = match;
    if (/^(<.*>|\[.*\]|\+\+.*\+\+)$/.test(token)) {
      close();
      continue;
    }
    const word = { word: token.replace(/\(\d+\)$/, "").toLowerCase(), start: Number(startText), end: Number(endText) };
    const previous = current.at(-1);
    if (previous && word.start - previous.end > PHRASE_GAP_SECONDS) close();
    current.push(word);
  }
  close();
  const chunks = phrases.map((words) => ({
    timestamp: [words[0]?.start ?? 0, words.at(-1)?.end ?? 0] as [number, number],
    text: words.map((w) => w.word).join(" "),
  }));
  return { text: chunks.map((c) => c.text).join(" "), chunks, words: phrases.flat() };
}

async function speechToText(input: Input, ctx: HandlerContext<unknown>): Promise<Output> {
  if (input.language.toLowerCase() !== "en") {
    throw fieldError(
      "language",
      `language ${JSON.stringify(input.language)} is not available: only English models are installed (pocketsphinx-en-us); use "en"`,
    );
  }

  let data: Buffer;
  try {
    ({ data } = await ctx.files.read(input.audio_url, { maxBytes: MAX_INPUT_BYTES }));
  } catch (err) {
    // The 413 from the file layer becomes a 422 on the field, naming this app's limit.
    if (err instanceof PlatformError && err.code === "ERR_FILE_TOO_LARGE") {
      throw fieldError("audio_url", `audio file exceeds the limit of ${MAX_INPUT_BYTES / 1024 / 1024} MB (${MAX_INPUT_BYTES} bytes)`);
    }
    throw err;
  }
  ctx.throwIfCancelled();

  return withTempDir(`stt-${ctx.requestId}`, async (dir) => {
    const source = path.join(dir, "input");
    const wav = path.join(dir, "speech-16k.wav");
    await writeFile(source, data);

    ctx.progress(0, 100, "decoding audio");
    let declared: number;
    try {
      declared = (await probeAudio(source, ctx.signal)).duration;
    } catch (err) {
      ctx.throwIfCancelled();
      throw fieldError("audio_url", `could not read the audio: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (declared > MAX_AUDIO_SECONDS) {
      throw fieldError("audio_url", `audio is ${declared.toFixed(1)} s long; the limit is ${MAX_AUDIO_SECONDS / 60} minutes (${MAX_AUDIO_SECONDS} s)`);
    }

    // PocketSphinx's en-us model wants 16 kHz mono 16-bit. -bitexact and no metadata give the
    // canonical 44-byte WAV header that pocketsphinx_continuous knows how to skip. -t caps the
    // decode just past the limit for inputs whose header understates their length.
    await runFfmpeg(
      ["-i", source, "-vn", "-t", String(MAX_AUDIO_SECONDS + 1), "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", "-bitexact", "-map_metadata", "-1", wav],
      { signal: ctx.signal, durationSec: declared, onProgress: (f) => ctx.progress(Math.round(f * 10), 100, "decoding audio") },
    );
    ctx.throwIfCancelled();
    const seconds = (await probeAudio(wav, ctx.signal)).duration;
    if (seconds > MAX_AUDIO_SECONDS) {
      throw fieldError("audio_url", `audio is longer than the limit of ${MAX_AUDIO_SECONDS / 60} minutes (${MAX_AUDIO_SECONDS} s)`);
    }

    ctx.progress(10, 100, "transcribing");
    const stdout = await runProgram(programPath(POCKETSPHINX), ["-infile", wav, "-time", "yes", "-logfn", "/dev/null"], {
      signal: ctx.signal,
      // Word lines carry their end time: as each utterance is decoded, report how far into the audio it got.
      onLine: (line) => {
        const end = Number(/^\S+ \d+(?:\.\d+)? (\d+(?:\.\d+)?) /.exec(line)?.[1]);
        if (Number.isFinite(end) && seconds > 0) ctx.progress(10 + Math.min(89, Math.round((end / seconds) * 89)), 100, "transcribing");
      },
    });
    ctx.throwIfCancelled();

    const { text, chunks, words } = parsePocketsphinx(stdout);
    ctx.bill(seconds);
    ctx.progress(100, 100, "done");
    return { text, chunks, inferred_languages: ["en"], ...(input.word_timestamps ? { words } : {}) };
  });
}

export default defineApp({
  id: "darkroom/speech-to-text",
  version: "1.0.0",
  metadata: {
    // Made from this app's own output by scripts/make-thumbnails.ts.
    thumbnail_url: "/thumbnails/speech-to-text.webp",
    display_name: "Speech to text (PocketSphinx, English)",
    category: "speech-to-text",
    description:
      "Transcribes English speech with CMU PocketSphinx and its US English acoustic and language models, returning " +
      "the text and phrases with timestamps in the shape of fal's whisper apps. CPU only, about half real time; " +
      "accurate on clear speech, weak on noisy recordings. Up to 10 minutes of audio.",
    tags: ["speech-to-text", "asr", "transcription", "speech", "audio", "pocketsphinx", "cpu"],
    license:
      "Uses the system pocketsphinx and pocketsphinx-en-us (Debian packages; BSD-2-Clause, models included) and " +
      "ffmpeg for decoding (LGPL-2.1-or-later / GPL-2.0-or-later in Debian's build)",
    weights_origin: "CMU Sphinx US English acoustic model, dictionary and language model from Debian's pocketsphinx-en-us package",
  },
  // Two runners: pocketsphinx decodes on one thread, so two requests at once use both cores: 1.8×
  // the requests per second of one runner on 2 cores (bench/README.md). Fewer or more with --app-knobs.
  knobs: { max_runners: 2, keep_alive: 300, request_timeout: 900, startup_timeout: 60 },
  // The same input gives the same output; requests reuse results when they ask (X-Darkroom-Cache).
  cache: { reuse: "deterministic", default: "off" },
  checkAvailability: () => checkPrograms([POCKETSPHINX, FFMPEG, FFPROBE]),
  endpoints: [
    endpoint({
      path: "",
      description: "Transcribe English speech with word-level phrase timestamps",
      input: SpeechToTextInput,
      output: SpeechToTextOutput,
      handler: speechToText,
    }),
  ],
});
