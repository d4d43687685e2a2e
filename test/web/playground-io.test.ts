/**
 * The playground's other ways in and out, in Chromium against a real server with real runners:
 * a realtime endpoint over its WebSocket, speech and video outputs in media elements that really
 * load, JSON editors for fields the form cannot lay out (and the JSON view of the whole input), and
 * a file above the multipart threshold uploaded in parts. Screenshots go to test-artifacts/playground/.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import sharp from "sharp";
import { ADMIN_KEY, ECHO_APP, FIXTURES, REPO_ROOT, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { ARTIFACTS, ensureWebBuild, launchChromium, openPlaygroundTab, signInAsAdmin } from "./browser.js";

const FREE_FORM_APP = path.join(REPO_ROOT, "test/web/fixtures/free-form.ts");
/** Above the playground's multipart threshold (8 MiB), and not a whole number of 5 MiB parts. */
const LARGE_FILE_BYTES = 12 * 1024 * 1024 + 12345;

interface MediaState {
  src: string;
  readyState: number;
  duration: number;
  videoWidth?: number;
  error: number | null;
}

describe("playground in Chromium: realtime, media, JSON, large uploads", { timeout: 240_000 }, () => {
  let p: TestPlatform;
  let browser: Browser;
  let page: Page;
  let tmp: string;
  let imageFile: string;
  let largeFile: string;
  let largeSha: string;
  const pageErrors: string[] = [];

  const shot = (name: string): Promise<Buffer> => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const status = () => page.getByTestId("run-status");
  const outputJson = async (): Promise<Record<string, unknown>> => JSON.parse(await page.locator(".outputs pre.json").innerText()) as Record<string, unknown>;

  /** Waits until the media element has read enough to know its length (or failed), and reports what it knows. */
  const mediaState = async (selector: string): Promise<MediaState> => {
    await page.waitForFunction(
      (sel) => {
        const el = document.querySelector<HTMLMediaElement>(sel);
        return el !== null && (el.readyState >= 1 || el.error !== null);
      },
      selector,
      { timeout: 15_000 },
    );
    return page.locator(selector).evaluate((el: HTMLMediaElement) => ({
      src: el.currentSrc || el.src,
      readyState: el.readyState,
      duration: el.duration,
      ...(el instanceof HTMLVideoElement ? { videoWidth: el.videoWidth } : {}),
      error: el.error?.code ?? null,
    }));
  };

  before(async () => {
    ensureWebBuild();
    mkdirSync(ARTIFACTS, { recursive: true });
    tmp = mkdtempSync(path.join(tmpdir(), "darkroom-playground-io-"));
    imageFile = path.join(tmp, "chelsea-small.png");
    await sharp(path.join(FIXTURES, "chelsea.png")).resize(160, 120).png().toFile(imageFile);
    largeFile = path.join(tmp, "large.bin");
    const bytes = randomBytes(LARGE_FILE_BYTES);
    writeFileSync(largeFile, bytes);
    largeSha = createHash("sha256").update(bytes).digest("hex");
    [p, browser] = await Promise.all([
      startTestPlatform({
        appModules: [ECHO_APP, path.join(REPO_ROOT, "src/apps/text-to-speech/app.ts"), path.join(REPO_ROOT, "src/apps/image-to-video/app.ts"), FREE_FORM_APP],
      }),
      launchChromium(),
    ]);
    page = await openPlaygroundTab(browser, p.url, pageErrors, { report404: true });
    await signInAsAdmin(page);
    await page.getByRole("link", { name: "Echo", exact: true }).waitFor();
  });

  after(async () => {
    await browser?.close();
    await p?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("talks to darkroom/echo's realtime endpoint over a WebSocket: results with round-trip times, live sends, errors", async () => {
    const sockets: string[] = [];
    page.on("websocket", (ws) => sockets.push(ws.url()));
    await page.goto("/app?id=darkroom/echo");
    await page.locator("#endpoint").selectOption("realtime");
    await page.getByRole("heading", { name: "Realtime", level: 2 }).waitFor();
    const state = page.getByTestId("realtime-state");
    assert.match(await state.innerText(), /Not connected/);
    // The code is for a WebSocket, not the queue.
    assert.match(await page.locator("pre.code[data-language=javascript]").innerText(), /new WebSocket\(`ws:\/\/127\.0\.0\.1:\d+\/darkroom\/echo\/realtime\?fal_jwt_token=/);

    const message = page.getByRole("textbox", { name: "Message", exact: true });
    await message.fill('{"n": 1}');
    await page.getByRole("button", { name: "Send", exact: true }).click();
    const results = page.getByTestId("realtime-result");
    await results.filter({ hasText: '"n": 1' }).waitFor();
    await state.filter({ hasText: "Connected" }).waitFor();
    assert.deepEqual(JSON.parse(await page.getByTestId("realtime-latest").locator("pre.json").innerText()), { message: { n: 1 } });
    // fal's URL shape and a token in the query, never the key.
    assert.equal(sockets.length, 1);
    assert.match(sockets[0] ?? "", /^ws:\/\/127\.0\.0\.1:\d+\/darkroom\/echo\/realtime\?fal_jwt_token=[^&]+$/);
    assert.ok(!(sockets[0] ?? "").includes(ADMIN_KEY.split(":")[1] ?? "never"));

    await message.fill('{"n": 2}');
    await page.getByRole("button", { name: "Send", exact: true }).click();
    await results.filter({ hasText: '"n": 2' }).waitFor();
    assert.equal(await results.count(), 2);
    assert.equal(await results.first().getAttribute("data-seq"), "2");
    // Each result has its round trip, and the server's time once its timings frame is in.
    assert.match(await results.first().locator(".rtt").innerText(), /^\d+ ms$|^\d+\.\d+ s$/);
    await results.first().filter({ hasText: /server \d+ ms/ }).waitFor();
    assert.deepEqual(JSON.parse(await page.getByTestId("realtime-latest").locator("pre.json").innerText()), { message: { n: 2 } });

    // Live: every change is sent once typing pauses, on the same connection.
    await page.getByRole("checkbox", { name: "Send on every change" }).check();
    await results.nth(2).waitFor();
    await message.fill('"live"');
    await results.filter({ hasText: '"message": "live"' }).waitFor();
    await page.getByRole("checkbox", { name: "Send on every change" }).uncheck();
    assert.equal(sockets.length, 1);

    // A message the endpoint refuses: the error is listed, and the connection stays up.
    await page.getByRole("button", { name: "JSON", exact: true }).click();
    await page.locator("#in-json").fill('{"request_id": 5}');
    await page.getByRole("button", { name: "Send", exact: true }).click();
    const error = page.getByTestId("realtime-error");
    await error.waitFor();
    assert.match(await error.innerText(), /VALIDATION_ERROR[\s\S]*request_id: /);
    await page.locator("#in-json").fill('{"request_id": "r-7", "message": "after the error"}');
    await page.getByRole("button", { name: "Send", exact: true }).click();
    await results.filter({ hasText: "after the error" }).waitFor();
    assert.deepEqual(JSON.parse(await page.getByTestId("realtime-latest").locator("pre.json").innerText()), { request_id: "r-7", message: "after the error" });
    assert.match(await state.innerText(), /Connected/);
    await shot("app-echo-realtime");

    await page.getByRole("button", { name: "Disconnect" }).click();
    await state.filter({ hasText: "Not connected" }).waitFor();
    await page.getByRole("button", { name: "JSON", exact: true }).click();
  });

  it("speaks with darkroom/text-to-speech: the audio element plays the output file", async () => {
    await page.goto("/app?id=darkroom/text-to-speech");
    await page.getByRole("textbox", { name: "Text", exact: true }).fill("Hello there.");
    await page.getByRole("button", { name: "Run" }).click();
    await status().filter({ hasText: /Completed|Failed/ }).waitFor({ timeout: 60_000 });
    assert.equal(await status().innerText(), "Completed");
    const output = (await outputJson())["audio"] as { url: string; content_type: string };
    assert.match(output.content_type, /^audio\//);
    const audio = await mediaState("figure.output-audio audio[controls]");
    assert.equal(audio.src, output.url);
    assert.equal(audio.error, null);
    assert.ok(audio.readyState >= 1, `readyState ${audio.readyState}`);
    assert.ok(audio.duration > 0.3 && audio.duration < 5, `duration ${audio.duration}`);
    await page.locator("canvas.waveform").waitFor();
    await shot("app-tts-audio");
  });

  it("animates an image with darkroom/image-to-video, set up in the JSON view: the video element loads the MP4", async () => {
    await page.goto("/app?id=darkroom/image-to-video");
    await page.locator('input[type=file][data-field="image_url"]').setInputFiles(imageFile);
    await page.waitForFunction(() => /\/files\/uploads\/.+\/chelsea-small\.png$/.test(document.querySelector<HTMLInputElement>("#in-image_url")?.value ?? ""));
    // The whole input as JSON: what the form holds, editable as text.
    await page.getByRole("button", { name: "JSON", exact: true }).click();
    const json = page.locator("#in-json");
    const fromForm = JSON.parse(await json.inputValue()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(fromForm), ["image_url"]);
    await json.fill("{ not json");
    assert.match(await page.locator("#in-json-error").innerText(), /^Not valid JSON: /);
    assert.equal(await page.getByRole("button", { name: "JSON", exact: true }).isDisabled(), true, "no way back to the form with text it cannot show");
    await json.fill(JSON.stringify({ ...fromForm, duration: 1, fps: 6, resolution: { width: 128, height: 96 }, motion: "pan_left" }, null, 2));
    assert.equal(await page.locator("#in-json-error").innerText(), "");
    assert.match(await page.locator("pre.code[data-language=curl]").innerText(), /"resolution": \{\s*"width": 128/);
    // And back: the form shows what the JSON said.
    await page.getByRole("button", { name: "JSON", exact: true }).click();
    assert.equal(await page.locator("#in-duration").inputValue(), "1");
    assert.equal(await page.locator("#in-resolution").inputValue(), "__custom");
    assert.equal(await page.locator("#in-resolution-width").inputValue(), "128");
    await page.getByRole("button", { name: "Run" }).click();

    await status().filter({ hasText: /Completed|Failed/ }).waitFor({ timeout: 120_000 });
    assert.equal(await status().innerText(), "Completed");
    const output = (await outputJson())["video"] as { url: string; content_type: string };
    assert.equal(output.content_type, "video/mp4");
    const video = await mediaState("figure.output-video video[controls]");
    assert.equal(video.src, output.url);
    assert.equal(video.error, null);
    assert.ok(video.readyState >= 1, `readyState ${video.readyState}`);
    assert.ok(Math.abs(video.duration - 1) < 0.3, `duration ${video.duration}`);
    assert.equal(video.videoWidth, 128);
    await shot("app-image-to-video");
  });

  it("edits free-form fields as JSON: parse errors inline, values sent parsed", async () => {
    await page.goto("/app?id=darkroom-test/free-form");
    const weights = page.getByRole("textbox", { name: "Weights", exact: true });
    await weights.fill('{"a": 1,');
    const field = page.locator(".field").filter({ has: weights });
    assert.match(await field.getByTestId("json-error").innerText(), /^Not valid JSON: /);
    assert.equal(await weights.getAttribute("aria-invalid"), "true");
    await field.screenshot({ path: path.join(ARTIFACTS, "app-json-field-error.png") });
    await page.getByRole("button", { name: "Run" }).click();
    assert.match(await page.getByRole("alert").filter({ hasText: "Fix this field first" }).innerText(), /weights: Not valid JSON/);
    // Once marked, the field follows the edits: a new mistake replaces the old, a fix clears it.
    await weights.fill("[1, 2]");
    assert.match(await field.innerText(), /Must be a JSON object \(\{…\}\)/);
    assert.doesNotMatch(await field.innerText(), /Not valid JSON/);
    await weights.fill('{"a": 1, "b": 2.5}');
    assert.equal(await field.locator(".field-error").count(), 0);
    assert.equal(await weights.getAttribute("aria-invalid"), null);
    assert.equal(await page.getByRole("alert").filter({ hasText: "Fix this field first" }).count(), 0);
    await page.getByRole("textbox", { name: "Items", exact: true }).fill('[{"kind": "box", "size": [1, 2]}]');
    const value = page.getByRole("textbox", { name: "Value", exact: true });
    await value.fill("just text");
    assert.match(await page.locator(".field").filter({ has: value }).innerText(), /Not JSON: sent as this text/);
    await shot("app-json-fields");
    await page.getByRole("button", { name: "Run" }).click();
    await status().filter({ hasText: /Completed|Failed/ }).waitFor({ timeout: 30_000 });
    assert.deepEqual((await outputJson())["received"], { name: "run", weights: { a: 1, b: 2.5 }, items: [{ kind: "box", size: [1, 2] }], value: "just text" });
  });

  it("uploads a file above the multipart threshold in parts, with progress, to the same bytes", async () => {
    const requests: string[] = [];
    page.on("request", (r) => {
      if (r.url().includes("/files/multipart/") || r.url().includes("/rest/storage/upload/")) requests.push(`${r.method()} ${new URL(r.url()).pathname}`);
    });
    await page.goto("/app?id=darkroom/echo");
    await page.getByRole("heading", { name: "Echo", level: 1 }).waitFor();
    // Slow the link down so that the progress bar is there to be seen.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Network.enable");
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 6 * 1024 * 1024 });
    await page.locator('input[type=file][data-field="file_url"]').setInputFiles(largeFile);
    const percent = page.getByTestId("upload-percent");
    await percent.waitFor();
    await page.waitForFunction(() => {
      const n = Number.parseInt(document.querySelector('[data-testid="upload-percent"]')?.textContent ?? "0", 10);
      return n > 0 && n < 100;
    });
    assert.match(await page.locator(".upload-status").innerText(), /Uploading large\.bin \(12(\.\d)? MB, in parts\)/);
    await shot("app-multipart-upload");
    await page.waitForFunction(() => /\/files\/uploads\/.+\/large\.bin$/.test(document.querySelector<HTMLInputElement>("#in-file_url")?.value ?? ""), undefined, { timeout: 30_000 });
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    const fileUrl = await page.locator("#in-file_url").inputValue();
    assert.ok(fileUrl.startsWith(p.url));

    assert.deepEqual(
      requests.map((r) => r.replace(/[0-9a-f-]{36}/, "{id}")).sort(),
      ["POST /rest/storage/upload/initiate-multipart", "PUT /files/multipart/{id}/1", "PUT /files/multipart/{id}/2", "PUT /files/multipart/{id}/3", "POST /files/multipart/{id}/complete"].sort(),
    );
    const res = await fetch(fileUrl);
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(body.length, LARGE_FILE_BYTES);
    assert.equal(createHash("sha256").update(body).digest("hex"), largeSha);
  });

  it("fits a 390 px wide screen in the realtime view", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto("/app?id=darkroom/echo");
    await page.locator("#endpoint").selectOption("realtime");
    await page.getByRole("textbox", { name: "Message", exact: true }).fill('{"phone": true}');
    await page.getByRole("button", { name: "Send", exact: true }).click();
    await page.getByTestId("realtime-result").waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${overflow} px wider than the screen`);
    await shot("app-echo-realtime-390");
  });

  it("the page logged no errors", () => {
    assert.deepEqual(pageErrors, []);
  });
});
