/**
 * Audio probing with ffprobe and fal's `audio` output record (`AudioSchema` in `src/runtime/sdk.ts`
 * declares it to clients). Every number in the record is measured from the stored file, never
 * copied from the request, so that a client sees what the encoder actually produced (mp3 padding,
 * opus resampling to 48 kHz).
 * @module
 */
import { readFile } from "node:fs/promises";
import type { OutputFiles } from "../context.js";
import { FFPROBE, programPath, runProgram } from "./process.js";

/** fal's `audio` record, as the SDK's `AudioSchema` describes it. */
export interface AudioRecord {
  url: string;
  content_type: string;
  file_name: string;
  file_size: number;
  /** Seconds. */
  duration: number;
  /** Hz. */
  sample_rate: number;
  channels: number;
}

export interface AudioInfo {
  duration: number;
  sample_rate: number;
  channels: number;
  codec: string;
}

interface ProbeJson {
  streams?: { codec_type?: string; codec_name?: string; sample_rate?: string; channels?: number; duration?: string }[];
  format?: { duration?: string };
}

/** Describes the first audio stream of `file`; rejects when there is none (not audio, or undecodable). */
export async function probeAudio(file: string, signal?: AbortSignal): Promise<AudioInfo> {
  const out = await runProgram(
    programPath(FFPROBE),
    ["-v", "error", "-print_format", "json", "-show_streams", "-show_format", "-select_streams", "a:0", file],
    { signal },
  );
  const json = JSON.parse(out) as ProbeJson;
  const stream = json.streams?.find((s) => s.codec_type === "audio");
  if (!stream) throw new Error("no audio stream found");
  // The container's duration is the fallback: Ogg/Opus streams often lack a per-stream one.
  const duration = Number(stream.duration ?? json.format?.duration ?? 0) || 0;
  return {
    duration,
    sample_rate: Number(stream.sample_rate ?? 0) || 0,
    channels: stream.channels ?? 0,
    codec: stream.codec_name ?? "unknown",
  };
}

/** Probes `file`, stores it as an output of the request and returns fal's `audio` record. */
export async function storeAudio(ctx: OutputFiles, file: string, fileName: string, contentType: string): Promise<AudioRecord> {
  const info = await probeAudio(file, ctx.signal);
  const stored = await ctx.files.put(await readFile(file), { contentType, fileName });
  return {
    url: stored.url,
    content_type: contentType,
    file_name: stored.file_name,
    file_size: stored.file_size,
    duration: Math.round(info.duration * 1000) / 1000,
    sample_rate: info.sample_rate,
    channels: info.channels,
  };
}
