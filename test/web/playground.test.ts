/**
 * The playground in a real browser: Debian's Chromium, headless, against a real server with real
 * runners. One page walks through what a person would do: sign in, run echo from its form, upload
 * an image and upscale it, cancel a slow request, look through the history, the operations view and
 * the keys, then the same pages on a phone-sized screen. Screenshots of the main pages go to
 * test-artifacts/playground/.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import sharp from "sharp";
import { ADMIN_KEY, ECHO_APP, FIXTURES, REPO_ROOT, TEST_APPS, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { ARTIFACTS, ensureWebBuild, launchChromium, openPlaygroundTab } from "./browser.js";

/** The crop of chelsea.png that is uploaded: small, so that ESRGAN slim takes well under a second. */
const CROP = { left: 180, top: 40, width: 96, height: 72 };
const ADMIN_SECRET = ADMIN_KEY.slice(ADMIN_KEY.indexOf(":") + 1);

describe("playground in Chromium", { timeout: 150_000 }, () => {
  let p: TestPlatform;
  let browser: Browser;
  let page: Page;
  let tmp: string;
  let cropFile: string;
  const pageErrors: string[] = [];

  const shot = (name: string): Promise<Buffer> => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const status = () => page.getByTestId("run-status");

  before(async () => {
    ensureWebBuild();
    mkdirSync(ARTIFACTS, { recursive: true });
    tmp = mkdtempSync(path.join(tmpdir(), "darkroom-playground-"));
    cropFile = path.join(tmp, "chelsea-crop.png");
    await sharp(path.join(FIXTURES, "chelsea.png")).extract(CROP).png().toFile(cropFile);
    [p, browser] = await Promise.all([
      startTestPlatform({ appModules: [ECHO_APP, path.join(REPO_ROOT, "src/apps/upscale/app.ts"), path.join(TEST_APPS, "slow-single.ts"), path.join(TEST_APPS, "unavailable.ts")] }),
      launchChromium(),
    ]);
    // Error statuses the test provokes (a wrong key, a cancelled result) are checked by the steps. A
    // missing file is not expected.
    page = await openPlaygroundTab(browser, p.url, pageErrors, { report404: true });
  });

  after(async () => {
    await browser?.close();
    await p?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("opens the gallery: asks for a key, refuses a wrong one, then lists the apps", async () => {
    await page.goto("/");
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
    const keyInput = page.getByLabel("API key");
    assert.equal(await keyInput.getAttribute("type"), "password");
    await keyInput.fill("dk_testadmin:not-the-secret");
    await keyInput.press("Enter");
    await page.getByRole("alert").filter({ hasText: "refused" }).waitFor();
    await keyInput.fill(ADMIN_KEY);
    await page.getByRole("button", { name: "Sign in" }).click();

    const cards = page.getByRole("list", { name: "Apps" }).getByRole("listitem");
    await page.getByRole("link", { name: "Echo", exact: true }).waitFor();
    assert.equal(await cards.count(), 4);
    const upscale = cards.filter({ hasText: "darkroom/upscale" });
    assert.match(await upscale.innerText(), /image-to-image[\s\S]*Available[\s\S]*ESRGAN/);
    // Its thumbnail is a picture the app made, served by this server, and it has loaded.
    const thumb = upscale.locator("img");
    await thumb.waitFor();
    assert.match((await thumb.getAttribute("src")) ?? "", /\/thumbnails\/upscale\.webp$/);
    await page.waitForFunction((el) => (el as HTMLImageElement).complete && (el as HTMLImageElement).naturalWidth === 480, await thumb.elementHandle());
    const unavailable = cards.filter({ hasText: "darkroom-test/unavailable" });
    assert.match(await unavailable.innerText(), /Unavailable[\s\S]*'frobnicate' is not installed[\s\S]*Remedy: apt-get install frobnicate/);

    // The key is kept for this tab only and never shown: only its id is on the page.
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("darkroom.key")), ADMIN_KEY);
    assert.ok(!(await page.content()).includes(ADMIN_SECRET));
    assert.match(await page.locator(".account").innerText(), /dk_testadmin:•+/);
    await shot("gallery");
  });

  it("runs darkroom/echo from its form: logs, result JSON, timings, and code for the same input", async () => {
    await page.getByRole("link", { name: "Echo", exact: true }).click();
    await page.getByRole("heading", { name: "Echo", level: 1 }).waitFor();
    // Labels come from the schema and name the controls (the wire names beside them are hidden from screen readers).
    await page.getByRole("textbox", { name: "Message", exact: true }).fill('{"hello": "world"}');
    await page.getByRole("button", { name: "Add logs item" }).click();
    await page.getByRole("textbox", { name: "Logs 1", exact: true }).fill("first line");
    await page.getByRole("button", { name: "Add logs item" }).click();
    await page.getByRole("textbox", { name: "Logs 2", exact: true }).fill("second line");
    await page.locator("#in-progress_steps").fill("2");
    await page.getByRole("button", { name: "Run" }).click();

    await status().filter({ hasText: "Completed" }).waitFor({ timeout: 30_000 });
    assert.deepEqual(JSON.parse(await page.locator("pre.json").innerText()), { message: { hello: "world" }, attempt: 1 });
    assert.match(await page.getByTestId("logs").innerText(), /first line[\s\S]*second line/);
    assert.match(await page.getByLabel("Timings").innerText(), /In queue[\s\S]*Total/);

    // The URL now names the request, and the code is for exactly this input.
    assert.match(page.url(), /\/app\?id=darkroom%2Fecho&request=[0-9a-f-]{36}$/);
    const curl = await page.locator("pre.code[data-language=curl]").innerText();
    assert.match(curl, /curl -s -X POST 'http:\/\/127\.0\.0\.1:\d+\/queue\/darkroom\/echo'/);
    assert.match(curl, /"logs": \[\s*"first line",\s*"second line"\s*\]/);
    assert.match(curl, /"progress_steps": 2/);
    await page.getByRole("tab", { name: "Python (fal_client)" }).click();
    assert.match(await page.locator("pre.code[data-language=python]").innerText(), /arguments=\{[\s\S]*"hello": "world"/);
    // Arrow keys move between the tabs.
    await page.keyboard.press("ArrowLeft");
    assert.equal(await page.getByRole("tab", { name: "JavaScript (@fal-ai/client)" }).getAttribute("aria-selected"), "true");
    assert.match(await page.locator("pre.code[data-language=javascript]").innerText(), /fal\.subscribe\("darkroom\/echo"/);
    // Echo has a Replicate equivalent (its root endpoint) and no OpenAI one.
    await page.getByRole("tab", { name: "JavaScript (replicate)" }).click();
    assert.match(await page.locator("pre.code[data-language=replicate]").innerText(), /replicate\.run\("darkroom\/echo", \{\n\s+input: \{[\s\S]*"hello": "world"/);
    assert.equal(await page.getByRole("tab", { name: "JavaScript (openai)" }).count(), 0);
    await shot("app-echo-result");

    // The app's own 422 marks the field it names.
    await page.getByRole("combobox", { name: "Fail", exact: true }).selectOption("validation");
    await page.getByRole("button", { name: "Run" }).click();
    await status().filter({ hasText: "Failed" }).waitFor({ timeout: 15_000 });
    assert.match(await status().innerText(), /fail: echo refused the input on request/);
    assert.equal(await page.getByRole("combobox", { name: "Fail", exact: true }).getAttribute("aria-invalid"), "true");
    // A handler that throws: a failure the operations view lists among recent errors.
    await page.getByRole("combobox", { name: "Fail", exact: true }).selectOption("error");
    await page.getByRole("button", { name: "Run" }).click();
    await status().filter({ hasText: "echo failed on request" }).waitFor({ timeout: 15_000 });
    await page.getByRole("combobox", { name: "Fail", exact: true }).selectOption("");

    // The streaming endpoint through the queue: its partial results show while it runs.
    await page.locator("#endpoint").selectOption("stream");
    await page.locator("#in-progress_steps").fill("3");
    await page.locator("#in-sleep_ms").fill("3000");
    await page.getByRole("button", { name: "Run" }).click();
    await page.getByTestId("partial-result").filter({ hasText: '"step": 1' }).waitFor({ timeout: 15_000 });
    await status().filter({ hasText: "Completed" }).waitFor({ timeout: 30_000 });
    assert.equal(await page.getByTestId("partial-result").count(), 0, "the partial gives way to the result");
    await page.locator("#endpoint").selectOption("");
  });

  it("uploads an image and runs darkroom/upscale: the result is twice the input, with a before/after slider", async () => {
    await page.goto("/app?id=darkroom/upscale");
    await page.getByRole("heading", { name: "Upscale (ESRGAN)", level: 1 }).waitFor();
    // Checked before anything is sent: the summary names the field and takes the focus.
    await page.getByRole("button", { name: "Run" }).click();
    const summary = page.getByRole("alert").filter({ hasText: "Fix this field first" });
    await summary.waitFor();
    assert.match(await summary.innerText(), /image_url: Choose a file or enter a URL/);
    assert.equal(await summary.evaluate((el) => el === document.activeElement), true);
    await page.locator('input[type=file][data-field="image_url"]').setInputFiles(cropFile);
    // Uploaded through initiate + signed PUT: the field now holds this server's file URL.
    const url = page.locator("#in-image_url");
    await page.waitForFunction(() => /\/files\/uploads\/.+\/chelsea-crop\.png$/.test(document.querySelector<HTMLInputElement>("#in-image_url")?.value ?? ""));
    assert.ok((await url.inputValue()).startsWith(p.url));
    await page.getByRole("img", { name: "Preview of Image URL" }).waitFor();
    await page.getByRole("button", { name: "Run" }).click();

    await status().filter({ hasText: /Completed|Failed/ }).waitFor({ timeout: 60_000 });
    assert.equal(await status().innerText(), "Completed");
    const result = page.locator('img[data-output-path="image"]');
    await result.waitFor();
    const size = await result.evaluate(async (img: HTMLImageElement) => {
      await img.decode();
      return { width: img.naturalWidth, height: img.naturalHeight };
    });
    assert.deepEqual(size, { width: CROP.width * 2, height: CROP.height * 2 });
    const slider = page.getByRole("slider", { name: /Before and after/ });
    await slider.focus();
    await page.keyboard.press("ArrowLeft");
    assert.equal(await slider.inputValue(), "49");
    assert.match((await page.getByRole("img", { name: "Before" }).getAttribute("style")) ?? "", /inset\(0px 51%|inset\(0 51%/);
    assert.match((await page.locator("a.download").first().getAttribute("href")) ?? "", /\/files\/outputs\/.+\/upscaled-x2\.png$/);

    // Click to zoom: a modal dialog that Escape closes.
    await page.getByRole("button", { name: "Zoom into image" }).click();
    await page.getByRole("dialog").waitFor();
    await page.keyboard.press("Escape");
    await page.getByRole("dialog").waitFor({ state: "detached" });
    await shot("app-upscale-result");
  });

  it("cancels a slow request while it runs", async () => {
    await page.goto("/app?id=darkroom-test/slow-single");
    await page.locator("#in-ms").fill("60000");
    await page.locator("#in-label").fill("to-cancel");
    await page.getByRole("button", { name: "Run" }).click();
    await status().filter({ hasText: "Running" }).waitFor({ timeout: 30_000 });
    await page.getByTestId("logs").filter({ hasText: "started to-cancel" }).waitFor();
    await page.getByRole("button", { name: "Cancel" }).click();
    await status().filter({ hasText: "Cancelled" }).waitFor({ timeout: 15_000 });
    assert.match(await page.locator("pre.json").innerText(), /client_cancelled/);
    assert.equal(await page.getByRole("button", { name: "Cancel" }).count(), 0);
  });

  it("lists requests in the history, filters by status and app, and reopens one with its inputs", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "History" }).click();
    const rows = page.locator("tbody tr");
    await rows.first().waitFor();
    assert.equal(await rows.count(), 6);
    await page.getByLabel("Status").selectOption("CANCELLED");
    await page.waitForURL(/status=CANCELLED/);
    await rows.filter({ hasText: "darkroom-test/slow-single" }).waitFor();
    assert.equal(await rows.count(), 1);
    assert.match(await rows.first().innerText(), /Cancelled[\s\S]*client_cancelled/);
    await shot("history-cancelled");

    await page.getByLabel("Status").selectOption("");
    await page.getByLabel("App", { exact: true }).selectOption("darkroom/echo");
    await page.waitForURL(/app=darkroom%2Fecho/);
    await page.waitForFunction(() => [...document.querySelectorAll("tbody tr")].every((r) => r.textContent?.includes("darkroom/echo")));
    assert.equal(await rows.count(), 4);
    await page.getByLabel("App", { exact: true }).selectOption("");
    await page.waitForFunction(() => document.querySelectorAll("tbody tr").length === 6);
    await shot("history");

    await rows.filter({ hasText: "darkroom/echo" }).filter({ hasText: "Succeeded" }).filter({ hasNotText: "darkroom/echo/stream" }).getByRole("link", { name: /Open request/ }).click();
    await page.getByRole("heading", { name: "Echo", level: 1 }).waitFor();
    await status().filter({ hasText: "Completed" }).waitFor();
    assert.deepEqual(JSON.parse(await page.getByRole("textbox", { name: "Message", exact: true }).inputValue()), { hello: "world" });
    assert.equal(await page.getByRole("textbox", { name: "Logs 2", exact: true }).inputValue(), "second line");
    assert.equal(await page.locator("#in-progress_steps").inputValue(), "2");
  });

  it("shows the operations view: queue depth, runners, cold starts, recent errors", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Ops" }).click();
    const echo = page.getByRole("listitem").filter({ has: page.getByRole("heading", { name: "darkroom/echo" }) });
    await echo.waitFor();
    assert.equal(await echo.locator("[data-stat=cold_starts]").innerText(), "1");
    assert.equal(await echo.locator("[data-stat=queue_depth]").innerText(), "0");
    assert.match(await echo.innerText(), /Ready\s*1/);
    await echo.getByText(/^Recent errors/).click();
    assert.match(await echo.locator(".recent-errors").innerText(), /echo failed on request \(fail: error\)/);
    assert.match(await page.getByRole("listitem").filter({ has: page.getByRole("heading", { name: "darkroom/upscale" }) }).innerText(), /Cold starts\s*1/);
    // Where echo's start went, phase by phase, as /v1/ops reports it.
    const [start] = (await http(p, "GET", "/v1/ops")).body.apps.find((a: { app: string }) => a.app === "darkroom/echo").recent_cold_starts;
    assert.match(await echo.locator(".cold-starts summary").innerText(), new RegExp(`Latest cold start: ready in ${Math.round(start.ready_ms)} ms`));
    const bar = await echo.getByTestId("cold-start-bar").getAttribute("aria-label");
    assert.match(bar ?? "", new RegExp(`Runtime ${Math.round(start.runtime_ms)} ms`));
    assert.equal(await echo.locator("[data-phase=setup_ms]").first().innerText(), `${Math.round(start.setup_ms)} ms`);
    assert.equal(await echo.locator("[data-phase=import_ms]").first().innerText(), `${Math.round(start.import_ms)} ms`);
    assert.match(await echo.locator(".cold-starts summary").innerText(), /a new process/);
    assert.equal(await page.getByTestId("ops-spares").innerText(), "No spare runners (--spare-runners 0)");
    await shot("ops");
  });

  it("creates a key, shows its secret once, and revokes it", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Keys" }).click();
    await page.getByLabel("Name").fill("playground-test");
    await page.getByRole("button", { name: "Create key" }).click();
    const secret = page.getByLabel("New key");
    await secret.waitFor();
    const key = await secret.inputValue();
    assert.match(key, /^dk_[^:]+:.{20,}$/);
    // The new key works, as an api key.
    assert.equal((await http({ url: p.url, auth: { authorization: `Key ${key}` } }, "GET", "/v1/models")).status, 200);
    await page.getByRole("button", { name: "Done" }).click();
    assert.equal(await page.getByLabel("New key").count(), 0);
    assert.ok(!(await page.content()).includes(key.split(":")[1] ?? "never"));

    // Signed in with it: an api key sees the apps and its history, not the admin pages.
    const signInAs = async (k: string): Promise<void> => {
      await page.getByRole("button", { name: "Sign out" }).click();
      assert.equal(await page.evaluate(() => sessionStorage.getItem("darkroom.key")), null);
      await page.getByLabel("API key").fill(k);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("navigation", { name: "Main" }).waitFor();
    };
    await signInAs(key);
    const nav = page.getByRole("navigation", { name: "Main" });
    assert.deepEqual(await nav.getByRole("link").allInnerTexts(), ["Apps", "History"]);
    assert.match(await page.locator(".account").innerText(), /api/);
    await signInAs(ADMIN_KEY);
    await nav.getByRole("link", { name: "Keys" }).click();

    const row = page.locator("tbody tr").filter({ hasText: "playground-test" });
    await row.getByRole("button", { name: /^Revoke playground-test/ }).click();
    await row.getByRole("button", { name: /^Confirm revoking/ }).click();
    await row.filter({ hasText: "Revoked" }).waitFor();
    assert.equal((await http({ url: p.url, auth: { authorization: `Key ${key}` } }, "GET", "/v1/models")).status, 401);
    // The signed-in key cannot revoke itself from here.
    assert.match(await page.locator("tbody tr").filter({ hasText: "dk_testadmin" }).innerText(), /This session/);
    await shot("keys");
  });

  it("fits a 390 px wide screen", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [route, name] of [
      ["/", "gallery-390"],
      ["/app?id=darkroom/upscale", "app-upscale-390"],
      ["/history", "history-390"],
      ["/ops", "ops-390"],
    ] as const) {
      await page.goto(route);
      await page.locator("main h1").waitFor();
      await page.waitForLoadState("networkidle");
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${route} is ${overflow} px wider than the screen`);
      await shot(name);
    }
  });

  it("the page logged no errors", () => {
    assert.deepEqual(pageErrors, []);
  });
});
