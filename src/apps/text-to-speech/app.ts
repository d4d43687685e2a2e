/**
 * `darkroom/text-to-speech`: English speech synthesis with the system `flite` (CMU Flite 2.2, the
 * Debian package), converted by ffmpeg to MP3 or Opus on request.
 *
 * Flite is the offline TTS that ships with its voices and is intelligible enough for a speech
 * recogniser to transcribe (see the round-trip test); no neural TTS ships offline with weights.
 * @module
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { AudioSchema, defineApp, endpoint, z, type HandlerContext } from "../../runtime/sdk.js";
import { runFfmpeg, withTempDir } from "../../media/video/ffmpeg.js";
import { probeAudio, storeAudio } from "../../media/audio/audio-file.js";
import { checkPrograms, FFMPEG, FFPROBE, FLITE, programPath, runProgram } from "../../media/audio/process.js";

/** 5000 characters: about 5 minutes of speech at normal speed, synthesised by flite in well under 15 s. */
export const MAX_TEXT_CHARS = 5000;

/**
 * Flite's built-in voices as compiled into Debian's build (`flite -lv`). `awb_time` is left out: it
 * is a limited-domain voice that can only say clock times.
 */
export const VOICES = ["slt", "kal16", "kal", "awb", "rms"] as const;

const FORMATS = {
  wav: { contentType: "audio/wav", args: [] as string[] },
  // 64 kbit/s: the most MPEG-2.5 allows at kal's 8 kHz (lame keeps the input rate), and ample for 16 kHz speech.
  mp3: { contentType: "audio/mpeg", args: ["-c:a", "libmp3lame", "-b:a", "64k"] },
  // Opus in Ogg; 32 kbit/s is transparent for speech. libopus runs at 48 kHz internally whatever the input.
  opus: { contentType: "audio/ogg", args: ["-c:a", "libopus", "-b:a", "32k", "-f", "ogg"] },
} as const;

const TextToSpeechInput = z.object({
  text: z
    .string()
    .min(1)
    .max(MAX_TEXT_CHARS)
    .describe(`English text to speak, 1 to ${MAX_TEXT_CHARS} characters`),
  voice: z
    .enum(VOICES)
    .default("slt")
    .describe(
      "Flite voice: slt (US English female, clustergen, 16 kHz; the default and the most intelligible), " +
        "kal16 (US male, diphone, 16 kHz), kal (US male, diphone, 8 kHz), awb (Scottish English male, 16 kHz), " +
        "rms (US male, 16 kHz)",
    ),
  output_format: z.enum(["wav", "mp3", "opus"]).default("wav").describe("wav (16-bit PCM), mp3 (64 kbit/s) or opus (Ogg, 32 kbit/s)"),
  speed: z.number().min(0.5).max(2).default(1).describe("Speaking rate, 0.5 (half speed) to 2 (twice as fast)"),
});

const TextToSpeechOutput = z.object({ audio: AudioSchema.describe("The synthesised speech") });

type Input = z.output<typeof TextToSpeechInput>;

async function textToSpeech(input: Input, ctx: HandlerContext<unknown>): Promise<z.input<typeof TextToSpeechOutput>> {
  const format = FORMATS[input.output_format];
  return withTempDir(`tts-${ctx.requestId}`, async (dir) => {
    // The text goes through a file, never argv: a text starting with "-" would read as an option,
    // and argv has a length limit.
    const textFile = path.join(dir, "input.txt");
    const wav = path.join(dir, "speech.wav");
    await writeFile(textFile, input.text, "utf8");

    ctx.progress(0, 3, "synthesising");
    await runProgram(
      programPath(FLITE),
      // Flite wants its options before the file arguments. duration_stretch multiplies every
      // segment's length, so it is the inverse of the speaking rate.
      ["-voice", input.voice, "--setf", `duration_stretch=${(1 / input.speed).toFixed(4)}`, "-f", textFile, "-o", wav],
      { signal: ctx.signal },
    );
    ctx.throwIfCancelled();

    let output = wav;
    if (input.output_format !== "wav") {
      ctx.progress(1, 3, `encoding ${input.output_format}`);
      const info = await probeAudio(wav, ctx.signal);
      output = path.join(dir, `speech.${input.output_format}`);
      await runFfmpeg(["-i", wav, ...format.args, output], {
        signal: ctx.signal,
        durationSec: info.duration,
        onProgress: (f) => ctx.progress(1 + f, 3, `encoding ${input.output_format}`),
      });
      ctx.throwIfCancelled();
    }

    ctx.progress(2, 3, "storing");
    const audio = await storeAudio(ctx, output, `speech.${input.output_format}`, format.contentType);
    ctx.bill(input.text.length);
    ctx.progress(3, 3, "done");
    return { audio };
  });
}

export default defineApp({
  id: "darkroom/text-to-speech",
  version: "1.0.0",
  metadata: {
    // Made from this app's own output by scripts/make-thumbnails.ts.
    thumbnail_url: "/thumbnails/text-to-speech.webp",
    display_name: "Text to speech (Flite)",
    category: "text-to-speech",
    description:
      "English speech synthesis with CMU Flite 2.2 and its built-in voices (slt, kal16, kal, awb, rms), with an " +
      "adjustable speaking rate and WAV, MP3 or Opus output. Classic (non-neural) synthesis: fast and CPU only, " +
      "clearly synthetic in tone.",
    tags: ["text-to-speech", "tts", "speech", "audio", "flite", "cpu"],
    license:
      "Uses the system flite (Debian package; CMU Flite is under a BSD-like licence, with a few files GPL-2 per " +
      "Debian's copyright file) and ffmpeg for MP3/Opus (LGPL-2.1-or-later / GPL-2.0-or-later in Debian's build); " +
      "the voices are compiled into flite under the same BSD-like terms",
    weights_origin: "the voices built into Debian's flite package (CMU ARCTIC / Festvox voices)",
  },
  // Two runners: flite synthesises on one thread, so two requests at once use both cores: 1.7× the
  // requests per second of one runner on 2 cores (bench/README.md). Fewer or more with --app-knobs.
  knobs: { max_runners: 2, keep_alive: 300, request_timeout: 300, startup_timeout: 60 },
  // The same input gives the same output; requests reuse results when they ask (X-Darkroom-Cache).
  cache: { reuse: "deterministic", default: "off" },
  checkAvailability: () => checkPrograms([FLITE, FFMPEG, FFPROBE]),
  endpoints: [
    endpoint({
      path: "",
      description: "Synthesise English speech from text",
      input: TextToSpeechInput,
      output: TextToSpeechOutput,
      handler: textToSpeech,
    }),
  ],
});
