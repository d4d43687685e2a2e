/**
 * One representative input per built-in app, from the media in test/fixtures/media, for the
 * per-app benchmarks (throughput and latency): the same inputs in both, so their figures compare.
 * @module
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const FIXTURES = fileURLToPath(new URL("../../test/fixtures/media/", import.meta.url));

export const dataUri = (file: string, type: string): string => `data:${type};base64,${readFileSync(file).toString("base64")}`;
const fixture = (name: string, type: string): string => dataUri(path.join(FIXTURES, name), type);

/** An 80×60, 0.5 s cut of the fixture clip: ESRGAN takes seconds a frame at 320×240 on CPU. */
function smallClip(): string {
  const out = path.join(mkdtempSync(path.join(os.tmpdir(), "darkroom-bench-clip-")), "clip-80x60.mp4");
  execFileSync("ffmpeg", ["-hide_banner", "-v", "error", "-y", "-i", path.join(FIXTURES, "clip-320x240-2s.mp4"), "-t", "0.5", "-vf", "scale=80:60", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", out]);
  return dataUri(out, "video/mp4");
}

export const APP_INPUTS: Record<string, () => Record<string, unknown>> = {
  upscale: () => ({ image_url: fixture("chelsea.png", "image/png"), scale: 2 }),
  "face-analysis": () => ({ image_url: fixture("astronaut.png", "image/png") }),
  "safety-checker": () => ({ image_url: fixture("coffee.png", "image/png") }),
  "image-to-video": () => ({ image_url: fixture("astronaut.png", "image/png"), duration: 2, fps: 12, resolution: "480p" }),
  "frame-interpolation": () => ({ video_url: fixture("clip-320x240-2s.mp4", "video/mp4"), target_fps: 24 }),
  ocr: () => ({ image_url: fixture("coffee.png", "image/png") }),
  "speech-to-text": () => ({ audio_url: fixture("speech-16k.wav", "audio/wav") }),
  "text-to-speech": () => ({ text: "The quick brown fox jumps over the lazy dog. Welcome to the media platform." }),
  "remove-background": () => ({ image_url: fixture("astronaut.png", "image/png") }),
  "video-remove-background": () => ({ video_url: fixture("clip-320x240-2s.mp4", "video/mp4") }),
  "video-upscale": () => ({ video_url: smallClip(), scale: 2 }),
};

/** What each input is, for result tables. */
export const APP_INPUT_LABELS: Record<string, string> = {
  upscale: "chelsea.png 451×300, ×2 slim",
  "face-analysis": "astronaut.png 512×512",
  "safety-checker": "coffee.png 600×400",
  "image-to-video": "astronaut.png → 2 s 480p 12 fps",
  "frame-interpolation": "clip-320x240-2s.mp4 → 24 fps",
  ocr: "coffee.png 600×400",
  "speech-to-text": "speech-16k.wav, 6 s",
  "text-to-speech": "a 13-word sentence, wav",
  "remove-background": "astronaut.png 512×512",
  "video-remove-background": "clip-320x240-2s.mp4, 24 frames",
  "video-upscale": "the clip cut to 80×60, 0.5 s, ×2 slim",
};
