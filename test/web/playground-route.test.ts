/**
 * The server side of the playground (src/gateway/routes/playground.ts): the page and its assets at
 * `/`, the client routes, and that none of it shadows the API, the proxy or the realtime route.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import Fastify from "fastify";
import { PLAYGROUND_ROUTES, registerPlaygroundRoutes } from "../../src/gateway/routes/playground.js";
import { ECHO_APP, http, REPO_ROOT, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { ensureWebBuild } from "./browser.js";

/** A GET with the path sent as is (fetch would normalise `..` away). */
function rawGet(url: string, pathname: string): Promise<{ status: number; body: string; type: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, path: pathname, method: "GET" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers["content-type"]) }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("playground routes on the real server", () => {
  let p: TestPlatform;
  before(async () => {
    ensureWebBuild();
    p = await startTestPlatform({ appModules: [ECHO_APP, path.join(REPO_ROOT, "src/apps/upscale/app.ts")] });
  });
  after(async () => p?.close());

  it("serves the page at / and at every client route, with a strict CSP", async () => {
    for (const route of [...PLAYGROUND_ROUTES, "/app?id=darkroom/echo&request=x", "/history/"]) {
      const res = await fetch(`${p.url}${route}`);
      assert.equal(res.status, 200, route);
      assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
      assert.match(await res.text(), /<div id="root"><\/div>/);
      assert.match(res.headers.get("content-security-policy") ?? "", /script-src 'self';.*frame-ancestors 'none'/);
      assert.equal(res.headers.get("cache-control"), "no-cache");
    }
  });

  it("serves the hashed assets the page names, cacheable for good", async () => {
    const html = await (await fetch(`${p.url}/`)).text();
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1] ?? "");
    assert.ok(assets.some((a) => a.endsWith(".js")) && assets.some((a) => a.endsWith(".css")), html);
    for (const asset of assets) {
      const res = await fetch(`${p.url}${asset}`);
      assert.equal(res.status, 200, asset);
      assert.match(res.headers.get("content-type") ?? "", asset.endsWith(".js") ? /^text\/javascript/ : /^text\/css/);
      assert.equal(res.headers.get("cache-control"), "public, max-age=31536000, immutable");
      assert.equal(Number(res.headers.get("content-length")), (await res.arrayBuffer()).byteLength);
    }
    const head = await fetch(`${p.url}${assets[0] ?? ""}`, { method: "HEAD" });
    assert.equal(head.status, 200);
  });

  it("serves nothing outside web/dist/assets", async () => {
    for (const pathname of ["/assets/../index.html", "/assets/..%2f..%2fpackage.json", "/assets/%2e%2e/%2e%2e/package.json", "/assets/sub/x.js", "/assets/missing.js", "/assets/.hidden"]) {
      const res = await rawGet(p.url, pathname);
      assert.equal(res.status, 404, pathname);
      assert.match(res.type, /^application\/json/, pathname);
      assert.doesNotMatch(res.body, /"name": "darkroom"/);
    }
  });

  it("serves the gallery thumbnails the apps name, as absolute URLs in /v1/models, and nothing beside them", async () => {
    const models = await http(p, "GET", "/v1/models?endpoint_id=darkroom/upscale");
    const url = models.body.models[0].metadata.thumbnail_url as string;
    assert.equal(url, `${p.url}/thumbnails/upscale.webp`);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "image/webp");
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(bytes.toString("ascii", 8, 12), "WEBP");
    for (const pathname of ["/thumbnails/../index.html", "/thumbnails/%2e%2e/index.html", "/thumbnails/missing.webp", "/thumbnails/upscale.png", "/thumbnails/sub/x.webp"]) {
      assert.equal((await rawGet(p.url, pathname)).status, 404, pathname);
    }
    const echo = await http(p, "GET", "/v1/models?endpoint_id=darkroom/echo");
    assert.equal(echo.body.models[0].metadata.thumbnail_url, null, "apps without a picture keep the glyph");
  });

  it("leaves the API, the proxy, realtime paths and unknown paths as they were", async () => {
    assert.deepEqual((await http(p, "GET", "/health")).body.status, "ok");
    const models = await http(p, "GET", "/v1/models");
    assert.equal(models.status, 200);
    assert.ok(models.body.models.some((m: any) => m.endpoint_id === "darkroom/echo"));
    const noKey = await fetch(`${p.url}/v1/models`);
    assert.equal(noKey.status, 401);
    assert.match(noKey.headers.get("content-type") ?? "", /^application\/json/);
    const submitted = await http(p, "POST", "/queue/darkroom/echo", { message: "hi" });
    assert.equal(submitted.body.status, "IN_QUEUE");
    const viaProxy = await http(p, "GET", "/api/fal/proxy", undefined, { "x-fal-target-url": `https://queue.fal.run/darkroom/echo/requests/${submitted.body.request_id}/status` });
    assert.ok([200, 202].includes(viaProxy.status), JSON.stringify(viaProxy.body));
    assert.equal((await http(p, "GET", "/run/darkroom/echo/openapi.json")).status, 200);
    assert.equal((await http(p, "GET", "/.well-known/jwks.json")).status, 200);
    for (const pathname of ["/nothing", "/apps", "/darkroom/echo/realtime", "/app/darkroom/echo"]) {
      const res = await fetch(`${p.url}${pathname}`);
      assert.equal(res.status, 404, pathname);
      assert.match(res.headers.get("content-type") ?? "", /^application\/json/, pathname);
    }
    // A wrong key is refused everywhere, the page included, as on every other route.
    assert.equal((await fetch(`${p.url}/`, { headers: { authorization: "Key dk_x:wrong" } })).status, 401);
  });
});

describe("playground routes without a build", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "darkroom-web-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("answer with a page that says how to build, and pick up a build made later", async () => {
    const app = Fastify();
    registerPlaygroundRoutes(app, { distDir: path.join(dir, "dist") });
    try {
      const missing = await app.inject({ method: "GET", url: "/history" });
      assert.equal(missing.statusCode, 503);
      assert.match(missing.headers["content-type"] as string, /^text\/html/);
      assert.match(missing.body, /npm run build:web/);
      assert.match(missing.body, /npx vite build --config web\/vite\.config\.ts/);
      mkdirSync(path.join(dir, "dist"), { recursive: true });
      writeFileSync(path.join(dir, "dist", "index.html"), "<!doctype html><title>built</title>");
      const built = await app.inject({ method: "GET", url: "/history" });
      assert.equal(built.statusCode, 200);
      assert.match(built.body, /<title>built<\/title>/);
    } finally {
      await app.close();
    }
  });
});
