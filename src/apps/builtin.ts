/**
 * Module paths of the built-in apps. The gateway never imports these modules: runners and the
 * probe do.
 * @module
 */
import { fileURLToPath } from "node:url";

const builtin = (folder: string): string => fileURLToPath(new URL(`./${folder}/app.ts`, import.meta.url));

export const BUILTIN_APP_MODULES: readonly string[] = [
  builtin("echo"),
  builtin("upscale"),
  builtin("face-analysis"),
  builtin("safety-checker"),
  builtin("ocr"),
  builtin("text-to-speech"),
  builtin("speech-to-text"),
  builtin("image-to-video"),
  builtin("frame-interpolation"),
  builtin("video-upscale"),
  builtin("remove-background"),
  builtin("video-remove-background"),
  builtin("text-to-image"),
];
