/**
 * Storage keys for new uploads (fal's REST initiation, the token uploads of Python's fal_client).
 * @module
 */
import { randomBytes } from "node:crypto";

const EXTENSION_BY_TYPE: Record<string, string> = {
  "image/png": "png",
  "image/jpeg": "jpg",
  "image/webp": "webp",
  "audio/wav": "wav",
  "audio/x-wav": "wav",
  "audio/mpeg": "mp3",
  "video/mp4": "mp4",
};

/** A storage key for a new upload: unguessable, with a sanitised file name for downloads. */
export function uploadKey(fileName: string | undefined, contentType: string): { key: string; fileName: string } {
  const fallback = `upload.${EXTENSION_BY_TYPE[contentType] ?? "bin"}`;
  const clean = (fileName ?? "").replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "").slice(0, 120) || fallback;
  return { key: `uploads/${randomBytes(12).toString("base64url")}/${clean}`, fileName: clean };
}
