/**
 * The headers every stored file is served with. Files come from callers (uploads, data URIs, app
 * outputs) and are served on the gateway's origin, where the Playground keeps a signed-in key: a
 * stored HTML or SVG page that ran script there could act with that key. So no file response may
 * run script, whatever its type: the CSP sandboxes the document and allows it no sources, and only
 * types that a browser renders without running anything are shown inline; the rest download.
 * @module
 */

/** Rendered by browsers as passive media or text (with `nosniff`, the type is not guessed). */
const INLINE_TYPE = /^(image\/(png|jpeg|gif|webp|avif|bmp|tiff|x-icon)|audio\/[a-z0-9.+-]+|video\/[a-z0-9.+-]+|text\/plain|text\/csv|application\/json|application\/octet-stream)$/;

// `style-src 'unsafe-inline'` keeps the browser's own viewer pages for images and media styled;
// `sandbox` (no allow-scripts, an opaque origin) is what stops script even where a type slips by.
export const FILE_CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

export function isInlineType(contentType: string): boolean {
  return INLINE_TYPE.test(contentType.split(";")[0]?.trim().toLowerCase() ?? "");
}

/** RFC 6266 disposition: an ASCII fallback name plus the exact name as UTF-8 (RFC 8187). */
export function contentDisposition(contentType: string, fileName: string): string {
  const disposition = isInlineType(contentType) ? "inline" : "attachment";
  const ascii = fileName.replace(/[^\x20-\x7e]/g, "_").replace(/["\\]/g, "_");
  const exact = encodeURIComponent(fileName).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${disposition}; filename="${ascii}"; filename*=UTF-8''${exact}`;
}

export function fileResponseHeaders(contentType: string, fileName: string): Record<string, string> {
  return {
    "content-type": contentType,
    "content-disposition": contentDisposition(contentType, fileName),
    "content-security-policy": FILE_CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    // A file is never a page of this site: keep other sites from framing it as one.
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
  };
}
