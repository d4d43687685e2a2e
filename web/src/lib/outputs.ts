/**
 * Finds the files in an app's output (fal's `File` shape: an object with a `url`, usually
 * `content_type` and `file_name`) and decides how each is shown.
 * @module
 */
import type { Field, FileField } from "./schema-form.js";

export type OutputKind = "image" | "audio" | "video" | "other";

export interface OutputFile {
  /** Where in the output: `image`, `images[1]`, `mask_image`. */
  path: string;
  url: string;
  kind: OutputKind;
  contentType: string | null;
  fileName: string | null;
  fileSize: number | null;
  width: number | null;
  height: number | null;
}

const EXTENSION_KINDS: Record<string, OutputKind> = {
  png: "image",
  jpg: "image",
  jpeg: "image",
  webp: "image",
  gif: "image",
  avif: "image",
  bmp: "image",
  svg: "image",
  wav: "audio",
  mp3: "audio",
  ogg: "audio",
  opus: "audio",
  flac: "audio",
  m4a: "audio",
  aac: "audio",
  mp4: "video",
  webm: "video",
  mov: "video",
  mkv: "video",
};

/** The kind of a file from its content type, else its URL (or `data:` URI type), else "other". */
export function kindOf(contentType: string | null | undefined, url: string): OutputKind {
  const fromType = (t: string): OutputKind | null => {
    const major = t.split("/")[0]?.toLowerCase();
    return major === "image" || major === "audio" || major === "video" ? major : null;
  };
  if (contentType) {
    const k = fromType(contentType);
    if (k) return k;
  }
  if (url.startsWith("data:")) return fromType(url.slice(5, url.indexOf(";") === -1 ? url.indexOf(",") : url.indexOf(";"))) ?? "other";
  const ext = /\.([a-z0-9]+)(?:$|[?#])/i.exec(url)?.[1]?.toLowerCase();
  return (ext && EXTENSION_KINDS[ext]) || "other";
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === "string" ? v : null);

/** Every file object in an output, in document order. Depth-limited: outputs are small trees. */
export function findFiles(output: unknown, maxDepth = 6): OutputFile[] {
  const files: OutputFile[] = [];
  const visit = (value: unknown, path: string, depth: number): void => {
    if (depth > maxDepth || typeof value !== "object" || value === null) return;
    if (Array.isArray(value)) {
      value.forEach((v, i) => visit(v, `${path}[${i}]`, depth + 1));
      return;
    }
    const o = value as Record<string, unknown>;
    const url = o["url"];
    if (typeof url === "string" && /^(https?:|data:|blob:|\/)/i.test(url)) {
      const contentType = str(o["content_type"]);
      files.push({
        path,
        url,
        kind: kindOf(contentType, url),
        contentType,
        fileName: str(o["file_name"]),
        fileSize: num(o["file_size"]),
        width: num(o["width"]),
        height: num(o["height"]),
      });
      return;
    }
    for (const [k, v] of Object.entries(o)) visit(v, path ? `${path}.${k}` : k, depth + 1);
  };
  visit(output, "", 0);
  return files;
}

/**
 * The input image to compare an output image against, for apps that transform one image into
 * another of the same scene (upscale, background removal): the category says so, the input has
 * exactly one image, and the output has an image.
 */
export function compareSource(category: string | null | undefined, fields: readonly Field[], input: Record<string, unknown>, files: readonly OutputFile[]): string | null {
  if (category !== "image-to-image") return null;
  const imageFields = fields.filter((f): f is FileField => f.kind === "file" && f.media === "image");
  const urls = imageFields.map((f) => input[f.key]).filter((v): v is string => typeof v === "string" && v !== "");
  if (urls.length !== 1) return null;
  return files.some((f) => f.kind === "image") ? (urls[0] ?? null) : null;
}

/** A name for a downloaded file: its own name, else the URL's last segment. */
export function downloadName(file: OutputFile): string {
  if (file.fileName) return file.fileName;
  if (file.url.startsWith("data:")) return `${file.path || "output"}`.replace(/[^A-Za-z0-9._-]/g, "_");
  try {
    return decodeURIComponent(new URL(file.url, "http://x").pathname.split("/").pop() ?? "") || "output";
  } catch {
    return "output";
  }
}
