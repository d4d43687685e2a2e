/**
 * Audio in the formats OpenAI's speech endpoint returns: what darkroom/text-to-speech makes (wav, mp3,
 * opus) as it comes, the others (aac, flac, pcm) converted from its WAV with ffmpeg, which the
 * speech apps need anyway. `pcm` is OpenAI's: raw 24 kHz 16-bit little-endian mono.
 * @module
 */
import { spawn } from "node:child_process";
import { PlatformError } from "../../core/errors.js";

export type SpeechFormat = "mp3" | "opus" | "aac" | "flac" | "wav" | "pcm";
export const SPEECH_FORMATS: readonly SpeechFormat[] = ["mp3", "opus", "aac", "flac", "wav", "pcm"];

export const CONTENT_TYPES: Record<SpeechFormat, string> = {
  mp3: "audio/mpeg",
  opus: "audio/ogg",
  aac: "audio/aac",
  flac: "audio/flac",
  wav: "audio/wav",
  pcm: "audio/pcm",
};

/** What to ask the app for: the format itself where it makes it, else WAV to convert. */
export function appFormatFor(format: SpeechFormat): "wav" | "mp3" | "opus" {
  return format === "mp3" || format === "opus" ? format : "wav";
}

const FFMPEG_OUTPUT: Record<"aac" | "flac" | "pcm", string[]> = {
  aac: ["-c:a", "aac", "-b:a", "96k", "-f", "adts"],
  flac: ["-c:a", "flac", "-f", "flac"],
  pcm: ["-ar", "24000", "-ac", "1", "-f", "s16le"],
};

/** Converts WAV bytes to `format` (one of those the app does not make). */
export function convertWav(wav: Buffer, format: "aac" | "flac" | "pcm"): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.env["FFMPEG_PATH"] ?? "ffmpeg", ["-v", "error", "-f", "wav", "-i", "pipe:0", ...FFMPEG_OUTPUT[format], "pipe:1"], { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
    child.on("error", (error) => reject(new PlatformError("ERR_APP_UNAVAILABLE", { message: `ffmpeg could not start to make ${format}: ${error.message}` })));
    child.on("close", (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`ffmpeg made no ${format} (exit ${code}): ${err.slice(0, 500)}`))));
    child.stdin.on("error", () => undefined);
    child.stdin.end(wav);
  });
}
