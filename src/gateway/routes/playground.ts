/**
 * Serves the playground (the Vite build in `web/dist`) at `/`: its hashed assets under `/assets/`,
 * and `index.html` for each client route. Client routes are a fixed list of single segments, so
 * they cannot shadow an API route or the realtime route at `/{owner}/{alias}/…`; any other path
 * still gets the API's JSON 404. Without a build the same paths answer with a page that says how
 * to make one, and the API works as usual.
 * @module
 */
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply } from "fastify";
import { PlatformError } from "../../core/errors.js";

/** The SPA's routes (web/src/router.tsx): each is one path segment. */
export const PLAYGROUND_ROUTES: readonly string[] = ["/", "/app", "/history", "/ops", "/keys", "/usage"];

export const DEFAULT_DIST_DIR = fileURLToPath(new URL("../../../web/dist/", import.meta.url));

export interface PlaygroundOptions {
  /** The built playground. Default: `web/dist` of this checkout. */
  distDir?: string;
  /** `--public-url`: upload URLs point there, so the page must be allowed to connect to it. */
  publicUrl?: string | null;
  /** `--files-url`: output files are there, and the page fetches some (an audio waveform). */
  filesUrl?: string | null;
}

const CONTENT_TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".webp": "image/webp",
  ".woff2": "font/woff2",
  ".json": "application/json; charset=utf-8",
  ".wasm": "application/wasm",
};

/** Vite's asset names: `index-BfV2Yvnu.js`; nothing else is served from the folder. */
const ASSET_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

function contentSecurityPolicy(publicUrl: string | null | undefined, filesUrl: string | null | undefined): string {
  let connect = "'self'";
  for (const url of [publicUrl, filesUrl]) {
    if (!url) continue;
    try {
      connect += ` ${new URL(url).origin}`;
    } catch {
      // An unparsable URL is refused at start-up; nothing to add here.
    }
  }
  return [
    "default-src 'self'",
    "script-src 'self'",
    // React sets style properties from script, and a few attributes carry inline styles.
    "style-src 'self' 'unsafe-inline'",
    // Inputs and outputs may live on any host the user names (file URLs are an app's input).
    "img-src 'self' data: blob: http: https:",
    "media-src 'self' data: blob: http: https:",
    `connect-src ${connect}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

function notBuiltPage(distDir: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Darkroom: playground not built</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5}code,pre{background:#8882;padding:.1rem .3rem;border-radius:4px}pre{padding:.6rem}</style>
</head><body>
<h1>The playground is not built</h1>
<p>This server answers its API, but the web playground has not been built into <code>${path.basename(path.dirname(distDir))}/${path.basename(distDir)}</code>.</p>
<p>Build it in the server's folder, then reload this page (no restart needed):</p>
<pre>npm run build:web</pre>
<p>or directly: <code>npx vite build --config web/vite.config.ts</code>. <code>npm ci</code> and <code>npm install</code> build it too.</p>
<p>The HTTP API is described in <code>docs/api.md</code>; <code>/health</code> tells whether the server is up.</p>
</body></html>
`;
}

function securityHeaders(reply: FastifyReply, csp: string): FastifyReply {
  return reply
    .header("content-security-policy", csp)
    .header("x-content-type-options", "nosniff")
    .header("x-frame-options", "DENY")
    .header("referrer-policy", "no-referrer");
}

export function registerPlaygroundRoutes(app: FastifyInstance, options: PlaygroundOptions = {}): void {
  const distDir = path.resolve(options.distDir ?? DEFAULT_DIST_DIR);
  const assetsDir = path.join(distDir, "assets");
  const csp = contentSecurityPolicy(options.publicUrl, options.filesUrl);

  const serveIndex = async (reply: FastifyReply): Promise<FastifyReply> => {
    securityHeaders(reply, csp).header("cache-control", "no-cache");
    // Read per request: a build made while the server runs is picked up at the next reload.
    let html: string;
    try {
      html = await readFile(path.join(distDir, "index.html"), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      return reply.code(503).type("text/html; charset=utf-8").send(notBuiltPage(distDir));
    }
    return reply.type("text/html; charset=utf-8").send(html);
  };

  for (const url of PLAYGROUND_ROUTES) app.get(url, (_request, reply) => serveIndex(reply));

  // The gallery's thumbnails (web/public/thumbnails, made by scripts/make-thumbnails.ts).
  app.get("/thumbnails/*", async (request, reply) => {
    const name = (request.params as { "*": string })["*"];
    if (!ASSET_NAME.test(name) || path.extname(name) !== ".webp") throw new PlatformError("ERR_PATH_NOT_FOUND", { message: `Path /thumbnails/${name} not found` });
    const file = path.join(distDir, "thumbnails", name);
    const info = await stat(file).catch(() => null);
    if (!info?.isFile()) throw new PlatformError("ERR_PATH_NOT_FOUND", { message: `Path /thumbnails/${name} not found` });
    return securityHeaders(reply, csp).type("image/webp").header("content-length", String(info.size)).header("cache-control", "public, max-age=3600").send(createReadStream(file));
  });

  app.get("/assets/*", async (request, reply) => {
    const name = (request.params as { "*": string })["*"];
    if (!ASSET_NAME.test(name)) throw new PlatformError("ERR_PATH_NOT_FOUND", { message: `Path /assets/${name} not found` });
    const file = path.join(assetsDir, name);
    const info = await stat(file).catch(() => null);
    if (!info?.isFile()) throw new PlatformError("ERR_PATH_NOT_FOUND", { message: `Path /assets/${name} not found` });
    return securityHeaders(reply, csp)
      .type(CONTENT_TYPES[path.extname(name)] ?? "application/octet-stream")
      .header("content-length", String(info.size))
      // Names carry a content hash: a changed file is a new name.
      .header("cache-control", "public, max-age=31536000, immutable")
      .send(createReadStream(file));
  });
}
