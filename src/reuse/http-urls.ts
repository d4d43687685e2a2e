/**
 * The http(s) URLs a JSON value names: the files an input reads (result-key.ts) and an output keeps
 * (result-reuse.ts).
 * @module
 */

const HTTP_URL = /^https?:\/\//i;

/**
 * Every string in `value`, at any depth, that is an http(s) URL: in document order, repeats kept.
 * Data URIs are not among them: their content is the string itself, not a file behind it.
 */
export function httpUrlsIn(value: unknown): string[] {
  const urls: string[] = [];
  collect(value, urls);
  return urls;
}

function collect(value: unknown, urls: string[]): void {
  if (typeof value === "string") {
    if (HTTP_URL.test(value)) urls.push(value);
  } else if (Array.isArray(value)) {
    for (const item of value) collect(item, urls);
  } else if (value !== null && typeof value === "object") {
    for (const item of Object.values(value)) collect(item, urls);
  }
}
