/**
 * `--files-url`: stored files on an origin of their own. The sandbox CSP on every file response
 * (file-response-headers.ts) keeps a stored page from running script; a separate origin is the
 * second wall, for whatever a browser gets wrong about the first: a page there shares no storage,
 * cookies or same-origin fetches with the Playground, which keeps a signed-in key.
 *
 * One listener serves both origins, told apart by the Host header (X-Forwarded-Host behind a trusted proxy). The files host answers file
 * reads and `/health` and nothing else, so a page that does run there cannot reach the API as
 * same-origin; every other host sends file reads to the files host with a 308, so a file URL handed
 * out before the setting (or by a client that built it from the API's base) never renders beside
 * the Playground. Uploads stay on the API's origin: they carry keys and signed URLs.
 * @module
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { PlatformError } from "../core/errors.js";

/** The route that serves stored files (routes/files.ts); uploads share its pattern, not its methods. */
const FILES_ROUTE = "/files/*";

/**
 * Whether the request reads a stored file. Judged by the route Fastify matched, not by the raw
 * path: the router decodes it first, so `/%66iles/<key>` is a file read too.
 */
function readsFile(request: FastifyRequest): boolean {
  return (request.method === "GET" || request.method === "HEAD") && request.routeOptions.url === FILES_ROUTE;
}

function pathOf(request: FastifyRequest): string {
  const url = request.raw.url ?? "/";
  const query = url.indexOf("?");
  return query === -1 ? url : url.slice(0, query);
}

/**
 * The request's host as `new URL(filesUrl).host` writes it: lower case, the scheme's default port
 * dropped. Parsed with the files URL's scheme, as the proxy in front may speak TLS where this
 * listener does not. Fastify's host: X-Forwarded-Host from a proxy that --trust-proxy names (one
 * that sets Host to its upstream), else the Host header. Null when it is missing or not a host.
 */
function hostOf(request: FastifyRequest, protocol: string): string | null {
  const header = request.host;
  if (!header || /[/?#@\\]/.test(header)) return null;
  try {
    return new URL(`${protocol}//${header}`).host;
  } catch {
    return null;
  }
}

/**
 * Installs the Host routing for `filesUrl` (an origin, as config.ts checks). Registered before
 * authentication: the files host refuses what it does not serve before any key is checked or any
 * body is read.
 */
export function registerFilesOrigin(app: FastifyInstance, filesUrl: string): void {
  const files = new URL(filesUrl);
  // A callback hook, not an async one: the authentication hook after it must still run in the tick
  // the request arrived in, before its body is read, as it watches the socket for a stalled body
  // (server.ts); started a microtask later, while a large body fills the buffer, it would stall it.
  app.addHook("onRequest", (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => {
    const path = pathOf(request);
    if (hostOf(request, files.protocol) === files.host) {
      // A CORS preflight has no route of its own: it is answered here, for file paths only.
      const preflight = request.method === "OPTIONS" && path.startsWith("/files/");
      const health = (request.method === "GET" || request.method === "HEAD") && request.routeOptions.url === "/health";
      if (!readsFile(request) && !preflight && !health) {
        done(new PlatformError("ERR_PATH_NOT_FOUND", { message: `Path ${path} not found: ${files.host} serves stored files only` }));
        return;
      }
      if (health) {
        done();
        return;
      }
      // The Playground, on the API's origin, reads files with fetch (an audio waveform): a file URL
      // is its own capability, given to whoever may read it, so any page holding one may.
      reply.header("access-control-allow-origin", "*").header("access-control-expose-headers", "content-length, content-range, content-disposition, accept-ranges");
      if (preflight) {
        void reply.code(204).header("access-control-allow-methods", "GET, HEAD").header("access-control-allow-headers", "range").header("access-control-max-age", "86400").send();
        return;
      }
      done();
      return;
    }
    if (readsFile(request)) {
      // Not cached: a redirect that outlived a change of --files-url would send readers to a host
      // that no longer serves files.
      void reply.code(308).header("location", `${files.origin}${request.raw.url ?? path}`).header("cache-control", "no-store").send();
      return;
    }
    done();
  });
}
