/**
 * A darkroom/speech-to-text result (`text`, `chunks` with `[start, end]`, `words`) in the shapes of
 * OpenAI's `response_format`: json, text, srt, vtt and verbose_json (with `segments` and, when asked,
 * `words`).
 * @module
 */
export interface SpeechToTextResult {
  text: string;
  chunks: { timestamp: [number, number]; text: string }[];
  words?: { word: string; start: number; end: number }[];
}

export type TranscriptFormat = "json" | "text" | "srt" | "vtt" | "verbose_json";
export const TRANSCRIPT_FORMATS: readonly TranscriptFormat[] = ["json", "text", "srt", "vtt", "verbose_json"];

export function verboseJson(result: SpeechToTextResult, options: { language: string; duration: number; words: boolean; segments: boolean }): Record<string, unknown> {
  return {
    task: "transcribe",
    language: options.language,
    duration: options.duration,
    text: result.text,
    ...(options.segments
      ? {
          segments: result.chunks.map((chunk, id) => ({
            id,
            seek: 0,
            start: chunk.timestamp[0],
            end: chunk.timestamp[1],
            text: chunk.text,
            tokens: [],
            temperature: 0,
            // pocketsphinx gives no such figures: neutral values where OpenAI's shape has fields.
            avg_logprob: 0,
            compression_ratio: 1,
            no_speech_prob: 0,
          })),
        }
      : {}),
    ...(options.words ? { words: (result.words ?? []).map((w) => ({ word: w.word, start: w.start, end: w.end })) } : {}),
  };
}

/** `00:00:01,500` (SubRip) or `00:00:01.500` (WebVTT). */
function clock(seconds: number, separator: "," | "."): string {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const pad = (n: number, width = 2): string => String(n).padStart(width, "0");
  return `${pad(Math.floor(ms / 3_600_000))}:${pad(Math.floor(ms / 60_000) % 60)}:${pad(Math.floor(ms / 1000) % 60)}${separator}${pad(ms % 1000, 3)}`;
}

export function srt(result: SpeechToTextResult): string {
  return result.chunks.map((c, i) => `${i + 1}\n${clock(c.timestamp[0], ",")} --> ${clock(c.timestamp[1], ",")}\n${c.text}\n`).join("\n");
}

export function vtt(result: SpeechToTextResult): string {
  return `WEBVTT\n\n${result.chunks.map((c) => `${clock(c.timestamp[0], ".")} --> ${clock(c.timestamp[1], ".")}\n${c.text}\n`).join("\n")}`;
}
