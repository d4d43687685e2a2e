/**
 * `--files-url`: stored files on an origin of their own (docs/security.md#where-files-are-served-from).
 * The server runs with its files URL at http://127.0.0.1:<port> and is called at
 * http://localhost:<port>: two origins, one listener, as on a laptop. Every file URL handed out
 * (uploads, local and remote runners' outputs) is on the files origin and serves the exact bytes
 * there; that host answers nothing but file reads and /health; file reads on the API's host
 * redirect there; uploads stay on the API's origin. In Chromium, with an admin signed in to the
 * Playground, an uploaded page's URL lands on the files origin, where no key is to be had.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { loadConfig } from "../../src/core/config.js";
import { cli } from "../cli/helpers.js";
import { freePort } from "../helpers/gateway-process.js";
import { ADMIN_KEY, FIXTURES, http, startTestPlatform, type TestPlatform, uploadFile } from "../helpers/platform.js";
import { startRunnerProcess, type RunnerProcess } from "../helpers/remote-runner.js";
import { ensureWebBuild, launchChromium, signInAsAdmin } from "../web/browser.js";

/** Were its script to run where its URL lands, it would read the signed-in key and list the keys with it. */
const HOSTILE_PAGE = `<!doctype html><html><head><title>stored page</title></head><body><script>
  document.title = "script ran";
  const key = sessionStorage.getItem("darkroom.key") ?? localStorage.getItem("darkroom.key");
  fetch("/v1/keys", { headers: { authorization: "Key " + key } }).then((r) => r.text()).then((t) => { document.title = "keys: " + t; });
</script></body></html>`;

const PNG = readFileSync(path.join(FIXTURES, "chelsea.png"));

/** What a script would get on the page open in `tab`: the key from either storage, and /v1/keys with it. */
async function whatAScriptGets(tab: Page): Promise<{ session: string | null; local: string | null; keys: { status: number; body: string } }> {
  // No named functions inside: the page would miss the helper tsx adds for their names.
  return tab.evaluate(async () => {
    let session: string | null = null;
    let local: string | null = null;
    try {
      session = sessionStorage.getItem("darkroom.key");
      local = localStorage.getItem("darkroom.key");
    } catch {
      // An opaque origin has no storage at all.
    }
    const res = await fetch("/v1/keys", { headers: { authorization: `Key ${session ?? local ?? ""}` } });
    return { session, local, keys: { status: res.status, body: await res.text() } };
  });
}

function keyOf(fileUrl: string): string {
  return new URL(fileUrl).pathname.slice("/files/".length);
}

describe("--files-url: stored files on an origin of their own", { timeout: 180_000 }, () => {
  let p: TestPlatform;
  let browser: Browser;
  /** Where the API and the Playground are called: http://localhost:<port>. */
  let api: { url: string; auth: Record<string, string> };
  /** The files origin: http://127.0.0.1:<port>, the same listener. */
  let files: string;

  before(async () => {
    ensureWebBuild();
    const port = await freePort();
    files = `http://127.0.0.1:${port}`;
    // The trailing slash is dropped: URLs are built as `${files}/files/…`.
    [p, browser] = await Promise.all([startTestPlatform({ port, env: { DARKROOM_FILES_URL: `${files}/` } }), launchChromium()]);
    api = { url: `http://localhost:${port}`, auth: p.auth };
  });

  after(async () => {
    await browser?.close();
    await p?.close();
  });

  const upload = (body: string | Blob, contentType: string, fileName: string): Promise<string> => uploadFile(api, body, contentType, fileName);

  async function download(url: string, init: RequestInit = {}): Promise<{ res: Response; bytes: Buffer }> {
    const res = await fetch(url, init);
    return { res, bytes: Buffer.from(await res.arrayBuffer()) };
  }

  it("refuses at start-up a files URL that is not an http(s) origin of its own", async () => {
    for (const [value, why] of [
      ["files.example.com", /expected an absolute URL/],
      ["ftp://files.example.com", /http:\/\/ or https:\/\//],
      ["https://files.example.com/cdn", /origin alone/],
      ["https://files.example.com/?", /no query or fragment/],
      ["https://files.example.com#top", /no query or fragment/],
      ["https://user:secret@files.example.com", /credentials/],
    ] as const) {
      assert.throws(() => loadConfig({ "files-url": value }, {}), { message: new RegExp(`^Invalid --files-url: '${value.replace(/[.?*+^$()[\]\\/|]/g, "\\$&")}' \\(`) }, value);
      assert.throws(() => loadConfig({}, { DARKROOM_FILES_URL: value }), (err: Error) => err.message.startsWith("Invalid DARKROOM_FILES_URL") && why.test(err.message), value);
    }
    assert.throws(() => loadConfig({ "public-url": "https://api.example.com", "files-url": "https://API.example.com:443/" }, {}), /an origin of their own/);
    assert.equal(loadConfig({ "files-url": "HTTPS://Files.Example.com:443/" }, {}).filesUrl, "https://files.example.com");
    assert.equal(loadConfig({}, { DARKROOM_FILES_URL: "http://127.0.0.1:8787" }).filesUrl, "http://127.0.0.1:8787");
    assert.equal(loadConfig({}, { DARKROOM_FILES_URL: "" }).filesUrl, null);
    assert.equal(loadConfig({}, {}).filesUrl, null);
    // `darkroom serve` takes the flag, and refuses a bad value as a usage error before starting anything.
    const refused = await cli(["serve", "--files-url", "ftp://files.example.com", "--port", "0"]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /Invalid --files-url: 'ftp:\/\/files\.example\.com'/);
  });

  it("hands out the URLs of uploads and app outputs on the files origin, which serves the exact bytes, sandboxed", async () => {
    // A signed upload: the upload URL stays on the API's origin, the file URL is on the files origin.
    const initiated = await http(api, "POST", "/rest/storage/upload/initiate", { content_type: "image/png", file_name: "chelsea.png" });
    assert.equal(initiated.status, 200);
    assert.ok(initiated.body.upload_url.startsWith(`${api.url}/files/upload/`), initiated.body.upload_url);
    assert.ok(initiated.body.file_url.startsWith(`${files}/files/uploads/`), initiated.body.file_url);
    const put = await fetch(initiated.body.upload_url, { method: "PUT", headers: { "content-type": "image/png" }, body: PNG });
    assert.equal(put.status, 200);
    assert.equal(((await put.json()) as { file_url: string }).file_url, initiated.body.file_url);
    const uploaded = await download(initiated.body.file_url);
    assert.equal(uploaded.res.status, 200);
    assert.deepEqual(uploaded.bytes, PNG);
    assert.equal(uploaded.res.headers.get("content-type"), "image/png");
    assert.match(uploaded.res.headers.get("content-security-policy") ?? "", /(^|; )sandbox($|;)/);
    assert.match(uploaded.res.headers.get("content-security-policy") ?? "", /default-src 'none'/);

    const multipart = await http(api, "POST", "/rest/storage/upload/initiate-multipart", { content_type: "video/mp4", file_name: "clip.mp4" });
    assert.ok(multipart.body.upload_url.startsWith(`${api.url}/files/multipart/`), multipart.body.upload_url);
    assert.ok(multipart.body.file_url.startsWith(`${files}/files/uploads/`), multipart.body.file_url);

    const posted = await upload("plain words", "text/plain", "notes.txt");
    assert.ok(posted.startsWith(`${files}/files/uploads/`), posted);
    assert.equal((await download(posted)).bytes.toString(), "plain words");

    // The runner reads its input from the files origin out of storage (it is this server's), and
    // its output URL is on the files origin too.
    const run = await http(api, "POST", "/run/darkroom/echo", { file_url: initiated.body.file_url });
    assert.equal(run.status, 200, JSON.stringify(run.body));
    assert.ok(run.body.file.url.startsWith(`${files}/files/outputs/`), run.body.file.url);
    const output = await download(run.body.file.url);
    assert.equal(output.res.status, 200);
    assert.deepEqual(output.bytes, PNG);
    assert.match(output.res.headers.get("content-security-policy") ?? "", /sandbox/);
  });

  it("answers nothing but file reads and /health on the files origin, with fal's 404 elsewhere", async () => {
    const filesHost = { url: files, auth: api.auth };
    assert.equal((await http(filesHost, "GET", "/health")).status, 200);
    for (const [method, route, body] of [
      ["POST", "/queue/darkroom/echo", { message: "hi" }],
      ["GET", "/v1/keys", undefined],
      ["POST", "/v1/keys", { name: "from the files origin" }],
      ["GET", "/", undefined],
      ["GET", "/keys", undefined],
      ["GET", "/run/darkroom/echo/openapi.json", undefined],
      // Uploads belong on the API's origin.
      ["POST", "/files/upload", "x"],
    ] as const) {
      const res = await http(filesHost, method, route, body);
      assert.equal(res.status, 404, `${method} ${route}`);
      assert.equal(res.body.error_type, "not_found", `${method} ${route}`);
      assert.match(res.body.detail, new RegExp(`^Path ${route.replace(/[.?*+^$()[\]\\/|]/g, "\\$&")} not found`), `${method} ${route}`);
      assert.equal(res.headers.get("x-darkroom-error-code"), "ERR_PATH_NOT_FOUND");
    }
    // Without credentials, and a body: still 404, not 401, and nothing is read.
    const anonymous = await fetch(`${files}/queue/darkroom/echo`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(anonymous.status, 404);
    const initiated = await http(api, "POST", "/rest/storage/upload/initiate", { content_type: "text/plain", file_name: "a.txt" });
    const onFilesHost = new URL(initiated.body.upload_url);
    const signedPut = await fetch(`${files}${onFilesHost.pathname}${onFilesHost.search}`, { method: "PUT", headers: { "content-type": "text/plain" }, body: "x" });
    assert.equal(signedPut.status, 404);

    // File reads there may be made by the Playground's own fetches (another origin): CORS allows them.
    const fileUrl = await upload("cors", "text/plain", "cors.txt");
    const read = await download(fileUrl, { headers: { origin: api.url } });
    assert.equal(read.res.headers.get("access-control-allow-origin"), "*");
    const preflight = await fetch(fileUrl, { method: "OPTIONS", headers: { origin: api.url, "access-control-request-method": "GET", "access-control-request-headers": "range" } });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
    assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /range/);
  });

  it("redirects file reads on the API's origin to the files origin with 308, path and query kept", async () => {
    const fileUrl = await upload("moved", "text/plain", "moved.txt");
    const onApi = `${api.url}/files/${keyOf(fileUrl)}?download=1&name=a%20b`;
    for (const method of ["GET", "HEAD"]) {
      const res = await fetch(onApi, { method, redirect: "manual" });
      assert.equal(res.status, 308, method);
      assert.equal(res.headers.get("location"), `${fileUrl}?download=1&name=a%20b`, method);
      assert.equal(res.headers.get("content-security-policy"), null, "nothing of the file is served there");
      await res.arrayBuffer();
    }
    const followed = await download(onApi);
    assert.equal(followed.res.url, `${fileUrl}?download=1&name=a%20b`);
    assert.equal(followed.bytes.toString(), "moved");
    // A file that does not exist redirects all the same: the API's host says nothing about files.
    assert.equal((await fetch(`${api.url}/files/uploads/nope/x.txt`, { redirect: "manual" })).status, 308);
    // The router decodes the path: a spelling of /files/ in escapes is a file read, and redirected too.
    const escaped = await fetch(`${api.url}/%66iles/${keyOf(fileUrl)}`, { redirect: "manual" });
    assert.equal(escaped.status, 308);
    assert.equal((await download(escaped.headers.get("location") ?? "")).bytes.toString(), "moved");
  });

  it("keeps uploads on the API's origin: Python's multipart parts go there, the finished file is on the files origin", async () => {
    const token = await http(api, "POST", "/rest/storage/auth/token?storage_type=fal-cdn-v3", {});
    assert.equal(token.status, 200);
    assert.equal(token.body.base_url, api.url, "fal_client uploads to {base_url}/files/upload");
    const auth = `${token.body.token_type} ${token.body.token}`;
    const created = await fetch(`${api.url}/files/upload/multipart`, { method: "POST", headers: { authorization: auth, "content-type": "text/plain", "x-fal-file-name": "parts.txt" } });
    assert.equal(created.status, 200);
    const { access_url, uploadId } = (await created.json()) as { access_url: string; uploadId: string };
    assert.ok(access_url.startsWith(`${api.url}/files/`), "the client PUTs its parts under access_url");
    const part = await fetch(`${access_url}/multipart/${uploadId}/1`, { method: "PUT", headers: { authorization: auth, "content-type": "text/plain" }, body: "two parts" });
    assert.equal(part.status, 200);
    const done = await fetch(`${access_url}/multipart/${uploadId}/complete`, {
      method: "POST",
      headers: { authorization: auth, "content-type": "application/json" },
      body: JSON.stringify({ parts: [{ partNumber: 1, etag: part.headers.get("etag") }] }),
    });
    assert.equal(done.status, 200);
    const completed = ((await done.json()) as { access_url: string }).access_url;
    assert.equal(completed, `${files}/files/${keyOf(access_url)}`);
    assert.equal((await download(completed)).bytes.toString(), "two parts");
    assert.equal((await download(access_url)).bytes.toString(), "two parts", "the API-origin URL redirects to it");
  });

  it("lets the Playground connect to the files origin", async () => {
    const page = await fetch(`${api.url}/`);
    assert.equal(page.status, 200);
    await page.arrayBuffer();
    assert.match(page.headers.get("content-security-policy") ?? "", new RegExp(`connect-src 'self' ${files.replace(/[.]/g, "\\.")}(;|$)`));
  });

  it("in Chromium, an uploaded page opened from the signed-in Playground lands on the files origin and gets no key", async () => {
    const pageUrl = await upload(HOSTILE_PAGE, "text/html", "page.html");
    const pngUrl = await upload(new Blob([PNG]), "image/png", "chelsea.png");
    const context = await browser.newContext({ baseURL: api.url, acceptDownloads: true });
    try {
      const tab = await context.newPage();
      await signInAsAdmin(tab);
      await tab.getByRole("list", { name: "Apps" }).waitFor();
      assert.equal(await tab.evaluate(() => sessionStorage.getItem("darkroom.key")), ADMIN_KEY);

      // Outputs on the files origin still load in the Playground: as pictures, and through fetch
      // (connect-src names the files origin; the file answers with CORS).
      const seen = await tab.evaluate(async (url) => {
        const img = new Image();
        img.src = url;
        await img.decode();
        const res = await fetch(url);
        return { size: [img.naturalWidth, img.naturalHeight], bytes: (await res.arrayBuffer()).byteLength };
      }, pngUrl);
      assert.deepEqual(seen, { size: [451, 300], bytes: PNG.length });

      // The page's URL, and the same path on the API's host, both end on the files origin (an
      // attachment: the navigation turns into a download and the Playground stays).
      const landed: string[] = [];
      for (const url of [pageUrl, `${api.url}/files/${keyOf(pageUrl)}`]) {
        const downloading = tab.waitForEvent("download");
        await tab.goto(url).catch((error: Error) => assert.match(error.message, /Download is starting|net::ERR_ABORTED/));
        const download = await downloading;
        landed.push(new URL(download.url()).origin);
        assert.notEqual(await tab.title(), "script ran");
        assert.notEqual(new URL(tab.url()).origin, files);
      }
      assert.deepEqual(landed, [files, files]);

      // The worst case, script that does run where the page lands, in the tab that was signed in:
      // that origin has no key in its storage, and its /v1/keys is not the API.
      await tab.goto(`${landed[0] ?? ""}/health`);
      const got = await whatAScriptGets(tab);
      assert.equal(got.session, null);
      assert.equal(got.local, null);
      assert.equal(got.keys.status, 404, got.keys.body);
      assert.ok(!got.keys.body.includes(ADMIN_KEY.split(":")[0] ?? ADMIN_KEY), "no key is listed there");
    } finally {
      await context.close();
    }
  });
});

describe("--files-url with a remote runner", { timeout: 120_000 }, () => {
  let p: TestPlatform;
  let runner: RunnerProcess | undefined;
  let api: { url: string; auth: Record<string, string> };
  let files: string;

  before(async () => {
    const port = await freePort();
    files = `http://127.0.0.1:${port}`;
    p = await startTestPlatform({ port, env: { DARKROOM_FILES_URL: files, DARKROOM_LOCAL_RUNNERS: "false", DARKROOM_LEASE_MS: "1500" } });
    api = { url: `http://localhost:${port}`, auth: p.auth };
    const minted = await http(api, "POST", "/v1/runner-tokens", { apps: ["darkroom/echo"] });
    assert.equal(minted.status, 201, JSON.stringify(minted.body));
    runner = await startRunnerProcess({ gateways: [api.url], token: minted.body.token as string, app: "darkroom/echo" });
  });

  after(async () => {
    await runner?.kill();
    await p?.close();
  });

  it("builds output URLs on the files_url of its claimed runs", async () => {
    const payload = Buffer.from("made on another machine");
    const run = await http(api, "POST", "/run/darkroom/echo", { file_url: `data:text/plain;base64,${payload.toString("base64")}` });
    assert.equal(run.status, 200, JSON.stringify(run.body));
    assert.ok(run.body.file.url.startsWith(`${files}/files/outputs/`), run.body.file.url);
    const res = await fetch(run.body.file.url);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), payload);
  });
});
