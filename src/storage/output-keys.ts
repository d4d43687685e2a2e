/**
 * Where runners' output files go, and what their names may be: `outputs/<request id>/<random>/<file
 * name>`. The runner picks the key (it builds the URL it returns from it); whoever stores the file
 * for it (the runner API for remote runners, the scheduler for Python runners it started) holds it
 * to this shape and to the request it holds.
 * @module
 */

const OUTPUT_KEY = /^outputs\/([^/]+)\/[A-Za-z0-9_-]{8,64}\/[A-Za-z0-9._-]{1,100}$/;

export const OUTPUT_KEY_SHAPE = "Output keys look like outputs/<request id>/<random>/<file name>";

/** The request an output key belongs to, or null when the key is not an output key. */
export function requestOfOutputKey(key: string): string | null {
  return OUTPUT_KEY.exec(key)?.[1] ?? null;
}

/** A file name safe to store and serve: letters, digits, `.`, `_`, `-`; no leading dots; at most 100. */
export function storedFileName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "").slice(0, 100) || "output.bin";
}

/** A content type without its parameters (at most 200 characters); octet-stream when none is given. */
export function storedContentType(contentType: string): string {
  return contentType.split(";")[0]?.trim().slice(0, 200) || "application/octet-stream";
}
