/**
 * Files that callers store are served on the gateway's origin, where the Playground keeps a signed-in
 * key. No stored file may run script there: not an uploaded HTML page, not a signed PUT that swaps
 * the signed type, not an app output made from a `data:text/html` URI. Checked on the headers, then
 * in Chromium with an admin signed in, where the stored page tries to read the key and mint another.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser } from "playwright-core";
import { contentDisposition } from "../../src/gateway/file-response-headers.js";
import { ADMIN_KEY, FIXTURES, http, startTestPlatform, type TestPlatform, uploadFile } from "../helpers/platform.js";
import { ensureWebBuild, launchChromium, signInAsAdmin } from "../web/browser.js";

/** A page that, were its script to run on the gateway's origin, would mint an admin key with the signed-in one. */
const HOSTILE_PAGE = `<!doctype html><html><head><title>stored page</title></head><body><script>
  document.title = "script ran";
  const key = sessionStorage.getItem("darkroom.key");
  fetch("/v1/keys", { method: "POST", headers: { authorization: "Key " + key, "content-type": "application/json" },
    body: JSON.stringify({ name: "stolen-by-stored-page", scope: "admin" }) });
</script></body></html>`;

const HOSTILE_SVG = `<svg xmlns="http://www.w3.org/2000/svg"><script>document.title = "script ran"</script></svg>`;

describe("stored files cannot run script on the gateway's origin", { timeout: 120_000 }, () => {
  let p: TestPlatform;
  let browser: Browser;

  before(async () => {
    ensureWebBuild();
    [p, browser] = await Promise.all([startTestPlatform(), launchChromium()]);
  });

  after(async () => {
    await browser?.close();
    await p?.close();
  });

  const upload = (body: string | Blob, contentType: string, fileName: string): Promise<string> => uploadFile(p, body, contentType, fileName);

  async function headersOf(url: string): Promise<Headers> {
    const res = await fetch(url);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    return res.headers;
  }

  it("serves active types (HTML, SVG, XML, JavaScript) as sandboxed attachments", async () => {
    for (const [type, name] of [
      ["text/html", "page.html"],
      ["image/svg+xml", "drawing.svg"],
      ["application/xml", "data.xml"],
      ["text/javascript", "code.js"],
      ["application/xhtml+xml", "page.xhtml"],
    ] as const) {
      const headers = await headersOf(await upload(HOSTILE_PAGE, type, name));
      assert.match(headers.get("content-security-policy") ?? "", /(^|; )sandbox($|;)/, type);
      assert.match(headers.get("content-security-policy") ?? "", /default-src 'none'/, type);
      assert.match(headers.get("content-disposition") ?? "", /^attachment; filename="/, type);
      assert.equal(headers.get("x-content-type-options"), "nosniff");
    }
  });

  it("serves pictures, audio, video and text inline, still sandboxed", async () => {
    const png = readFileSync(path.join(FIXTURES, "chelsea.png"));
    const headers = await headersOf(await upload(new Blob([png]), "image/png", "chelsea.png"));
    assert.equal(headers.get("content-type"), "image/png");
    assert.equal(headers.get("content-disposition"), `inline; filename="chelsea.png"; filename*=UTF-8''chelsea.png`);
    assert.match(headers.get("content-security-policy") ?? "", /sandbox/);
    for (const [type, name] of [["audio/wav", "speech.wav"], ["video/mp4", "clip.mp4"], ["text/plain", "notes.txt"], ["application/json", "data.json"]] as const) {
      assert.match((await headersOf(await upload("x", type, name))).get("content-disposition") ?? "", /^inline;/, type);
    }
  });

  it("names files in Content-Disposition safely, with the exact name as UTF-8", () => {
    assert.equal(contentDisposition("text/plain", 'naïve "quoted"\\.txt'), `inline; filename="na_ve _quoted__.txt"; filename*=UTF-8''na%C3%AFve%20%22quoted%22%5C.txt`);
    assert.equal(contentDisposition("text/html", "page.html"), `attachment; filename="page.html"; filename*=UTF-8''page.html`);
  });

  it("a signed PUT keeps the type it was signed for, whatever Content-Type the PUT sends", async () => {
    const initiated = await http(p, "POST", "/rest/storage/upload/initiate", { content_type: "image/png", file_name: "avatar.png" });
    assert.equal(initiated.status, 200);
    const put = await fetch(initiated.body.upload_url, { method: "PUT", headers: { "content-type": "text/html" }, body: HOSTILE_PAGE });
    assert.equal(put.status, 200);
    const headers = await headersOf(initiated.body.file_url);
    assert.equal(headers.get("content-type"), "image/png");
  });

  it("an app output made from a data:text/html URI downloads, sandboxed", async () => {
    const dataUri = `data:text/html;base64,${Buffer.from(HOSTILE_PAGE).toString("base64")}`;
    const run = await http(p, "POST", "/run/darkroom/echo", { file_url: dataUri });
    assert.equal(run.status, 200);
    assert.equal(run.body.file.content_type, "text/html");
    const headers = await headersOf(run.body.file.url);
    assert.match(headers.get("content-disposition") ?? "", /^attachment;/);
    assert.match(headers.get("content-security-policy") ?? "", /sandbox/);
  });

  it("in Chromium, with an admin signed in to the Playground, a stored page or SVG opened in that tab runs nothing", async () => {
    const pageUrl = await upload(HOSTILE_PAGE, "text/html", "page.html");
    const svgUrl = await upload(HOSTILE_SVG, "image/svg+xml", "drawing.svg");
    const pngUrl = await upload(new Blob([readFileSync(path.join(FIXTURES, "chelsea.png"))]), "image/png", "chelsea.png");
    const context = await browser.newContext({ baseURL: p.url, acceptDownloads: true });
    try {
      const tab = await context.newPage();
      await signInAsAdmin(tab);
      await tab.getByRole("list", { name: "Apps" }).waitFor();
      assert.equal(await tab.evaluate(() => sessionStorage.getItem("darkroom.key")), ADMIN_KEY);

      for (const url of [pageUrl, svgUrl]) {
        // An attachment does not replace the page: the navigation turns into a download.
        const download = tab.waitForEvent("download");
        await tab.goto(url).catch((error: Error) => assert.match(error.message, /Download is starting|net::ERR_ABORTED/));
        await download;
        assert.notEqual(await tab.title(), "script ran");
      }
      // Framed by a page of the same origin, the sandbox still stops the script.
      await tab.setContent(`<iframe src="${pageUrl}"></iframe><iframe src="${svgUrl}"></iframe>`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      for (const frame of tab.frames().slice(1)) assert.notEqual(await frame.title().catch(() => ""), "script ran");

      // A picture opened on its own still shows.
      await tab.goto(pngUrl);
      const size = await tab.evaluate(() => {
        const img = document.querySelector("img");
        return img ? [img.naturalWidth, img.naturalHeight] : null;
      });
      assert.deepEqual(size, [451, 300]);

      const keys = await http(p, "GET", "/v1/keys");
      assert.equal(keys.status, 200);
      assert.ok(!JSON.stringify(keys.body).includes("stolen-by-stored-page"), "the stored page minted no key");
    } finally {
      await context.close();
    }
  });
});
