/**
 * Where things end up on the screen, in Chromium against a real server: a long remedy stays inside
 * its card (gallery and operations view, desktop and 390 px), a blank optional slider says "auto"
 * and is left out of the input, the result panel comes into view when Run is pressed at the foot of
 * a long form, and the operations view marks the apps that cannot run. Screenshots go to
 * test-artifacts/playground/.
 */
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Locator, Page } from "playwright-core";
import { ECHO_APP, REPO_ROOT, TEST_APPS, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { ARTIFACTS, ensureWebBuild, launchChromium, openPlaygroundTab, signInAsAdmin } from "./browser.js";
import { LONG_DATA_DIR } from "./fixtures/long-remedy.js";

const LONG_REMEDY_APP = path.join(REPO_ROOT, "test/web/fixtures/long-remedy.ts");
const LONG_FORM_APP = path.join(REPO_ROOT, "test/web/fixtures/long-form.ts");

interface Box {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

const boxOf = (locator: Locator): Promise<Box> =>
  locator.evaluate((el) => {
    const r = el.getBoundingClientRect();
    return { left: r.left, top: r.top, right: r.right, bottom: r.bottom };
  });

/** Half a pixel of slack for subpixel layout. */
function assertInside(inner: Box, outer: Box, what: string): void {
  const ok = inner.left >= outer.left - 0.5 && inner.right <= outer.right + 0.5 && inner.top >= outer.top - 0.5 && inner.bottom <= outer.bottom + 0.5;
  assert.ok(ok, `${what}: ${JSON.stringify(inner)} is not inside ${JSON.stringify(outer)}`);
}

describe("playground layout in Chromium", { timeout: 180_000 }, () => {
  let p: TestPlatform;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];
  /** Bodies of the queue submissions the page made, newest last. */
  const submitted: Record<string, unknown>[] = [];

  const shot = (name: string): Promise<Buffer> => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const status = () => page.getByTestId("run-status");
  const resultPanel = () => page.locator("section.result-panel");
  const viewportHeight = (): Promise<number> => page.evaluate(() => window.innerHeight);
  /** Scrolling may be smooth: waits until the page has stopped moving. */
  const scrollSettled = async (): Promise<void> => {
    let last = Number.NaN;
    for (let i = 0; i < 50; i++) {
      const y = await page.evaluate(() => window.scrollY);
      if (y === last) return;
      last = y;
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    throw new Error("the page kept scrolling");
  };

  before(async () => {
    ensureWebBuild();
    mkdirSync(ARTIFACTS, { recursive: true });
    [p, browser] = await Promise.all([
      startTestPlatform({ appModules: [ECHO_APP, LONG_FORM_APP, LONG_REMEDY_APP, path.join(TEST_APPS, "unavailable.ts")] }),
      launchChromium(),
    ]);
    page = await openPlaygroundTab(browser, p.url, pageErrors);
    page.on("request", (req) => {
      if (req.method() === "POST" && new URL(req.url()).pathname === "/queue/darkroom-test/long-form") submitted.push(JSON.parse(req.postData() ?? "null") as Record<string, unknown>);
    });
    await signInAsAdmin(page);
    await page.getByRole("link", { name: "Echo", exact: true }).waitFor();
  });

  after(async () => {
    await browser?.close();
    await p?.close();
  });

  it("keeps a long remedy inside its gallery card, at desktop width and at 390 px", async () => {
    for (const [width, name] of [
      [1280, "gallery-long-remedy"],
      [390, "gallery-long-remedy-390"],
    ] as const) {
      await page.setViewportSize({ width, height: 900 });
      await page.goto("/");
      const card = page.getByRole("list", { name: "Apps" }).getByRole("listitem").filter({ hasText: "darkroom-test/long-remedy" });
      const remedy = card.getByTestId("remedy");
      await remedy.waitFor();
      assert.equal(await remedy.innerText(), `darkroom models pull jdp8/sd-turbo-onnx --name sd-turbo --data-dir ${LONG_DATA_DIR}, then restart the server`);
      assertInside(await boxOf(remedy), await boxOf(card), `remedy at ${width} px`);
      // The reason names the same long path.
      assert.match(await card.innerText(), new RegExp(`looked in ${LONG_DATA_DIR}/models`));
      assertInside(await boxOf(card.locator(".card-why")), await boxOf(card), `reason at ${width} px`);
      // Wrapped, not cut off: nothing of it is hidden inside its own box either.
      assert.ok(await remedy.evaluate((el) => el.scrollWidth <= el.clientWidth + 1 || getComputedStyle(el).display === "inline"), "the remedy is clipped");
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the gallery is ${overflow} px wider than the screen`);
      await card.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it("marks the apps that cannot run in the operations view, with reason and remedy", async () => {
    await page.goto("/ops");
    const cardOf = (app: string): Locator => page.getByRole("listitem").filter({ has: page.getByRole("heading", { name: app, exact: true }) });
    const unavailable = cardOf("darkroom-test/unavailable");
    await unavailable.waitFor();
    assert.equal(await unavailable.getAttribute("data-available"), "false");
    assert.match(await unavailable.innerText(), /^darkroom-test\/unavailable\s*Unavailable\s/);
    assert.equal(await unavailable.locator(".badge").innerText(), "Unavailable");
    assert.match(await unavailable.innerText(), /Unavailable: the program 'frobnicate' is not installed\.\s*Remedy:\s*apt-get install frobnicate/);
    assert.equal(await unavailable.getByTestId("remedy").innerText(), "apt-get install frobnicate");
    // An app that runs is not marked.
    const echo = cardOf("darkroom/echo");
    assert.equal(await echo.getAttribute("data-available"), "true");
    assert.doesNotMatch(await echo.innerText(), /Unavailable|Remedy/);
    // The page says up front how many cannot run, and which.
    assert.match(await page.getByTestId("ops-unavailable").innerText(), /2 apps cannot run here: darkroom-test\/long-remedy, darkroom-test\/unavailable/);
    await shot("ops-unavailable");

    await page.setViewportSize({ width: 390, height: 844 });
    const long = cardOf("darkroom-test/long-remedy");
    await long.scrollIntoViewIfNeeded();
    assertInside(await boxOf(long.getByTestId("remedy")), await boxOf(long), "ops remedy at 390 px");
    assertInside(await boxOf(long.getByRole("note")), await boxOf(long), "ops reason at 390 px");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the operations view is ${overflow} px wider than the screen`);
    await long.screenshot({ path: path.join(ARTIFACTS, "ops-long-remedy-390.png") });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it("shows a blank optional slider as auto, sets it, clears it, and leaves it out of the input", async () => {
    await page.goto("/app?id=darkroom-test/long-form");
    const number = page.locator("#in-downsample_ratio");
    const field = page.locator(".field").filter({ has: number });
    const slider = field.getByRole("slider", { name: "Downsample ratio slider" });
    await number.waitFor();
    const shows = async (): Promise<{ number: string; placeholder: string | null; valuetext: string | null; unset: string | null; opacity: number }> => ({
      number: await number.inputValue(),
      placeholder: await number.getAttribute("placeholder"),
      valuetext: await slider.getAttribute("aria-valuetext"),
      unset: await slider.getAttribute("data-unset"),
      opacity: Number(await slider.evaluate((el) => getComputedStyle(el).opacity)),
    });
    const blank = await shows();
    assert.deepEqual({ ...blank, opacity: blank.opacity < 1 }, { number: "", placeholder: "auto", valuetext: "auto", unset: "true", opacity: true });
    assert.match(await field.getByTestId("unset-note").innerText(), /^auto$/);
    assert.doesNotMatch(await field.innerText(), /0\.05(?!\s*to)/, "nothing claims the value is 0.05");
    await field.screenshot({ path: path.join(ARTIFACTS, "slider-auto.png") });

    // Set from the slider: the middle of its track.
    await slider.click();
    const set = await shows();
    assert.ok(Math.abs(Number(set.number) - 0.525) < 0.02, `slider set ${set.number}`);
    assert.deepEqual({ valuetext: set.valuetext, unset: set.unset, opacity: set.opacity }, { valuetext: null, unset: null, opacity: 1 });
    assert.equal(await field.getByTestId("unset-note").count(), 0);
    await field.screenshot({ path: path.join(ARTIFACTS, "slider-set.png") });

    // Back to auto with its button, then typed and cleared by hand.
    await field.getByRole("button", { name: "Use auto for Downsample ratio" }).click();
    assert.deepEqual((await shows()).valuetext, "auto");
    assert.equal(await number.inputValue(), "");
    await number.fill("0.25");
    assert.equal(await slider.inputValue(), "0.25");
    assert.equal(await slider.getAttribute("data-unset"), null);
    await number.fill("");
    assert.equal(await slider.getAttribute("aria-valuetext"), "auto");

    assert.doesNotMatch(await page.locator("pre.code[data-language=curl]").innerText(), /downsample_ratio/);
    await page.getByRole("button", { name: "Run" }).click();
    await status().filter({ hasText: "Completed" }).waitFor({ timeout: 30_000 });
    assert.ok(submitted.length > 0);
    assert.ok(!("downsample_ratio" in (submitted.at(-1) ?? {})), `sent ${JSON.stringify(submitted.at(-1))}`);

    await number.fill("0.25");
    await page.getByRole("button", { name: "Run" }).click();
    await status().filter({ hasText: "Completed" }).waitFor({ timeout: 30_000 });
    assert.equal(submitted.at(-1)?.["downsample_ratio"], 0.25);
  });

  for (const [width, height] of [
    [1280, 500],
    [390, 700],
  ] as const) {
    it(`brings the result panel into view when Run is pressed at the foot of a long form (${width}×${height})`, async () => {
      await page.setViewportSize({ width, height });
      await page.goto("/app?id=darkroom-test/long-form");
      const run = page.getByRole("button", { name: "Run" });
      await run.waitFor();
      // Scrolled so that Run sits at the bottom of the screen, as after filling in the form.
      await run.evaluate((el) => window.scrollBy(0, el.getBoundingClientRect().bottom - window.innerHeight + 8));
      const before = await boxOf(resultPanel());
      assert.ok(before.bottom <= 0 || before.top >= (await viewportHeight()), `the result panel was already on screen: ${JSON.stringify(before)}`);
      await run.click();
      await status().filter({ hasText: "Completed" }).waitFor({ timeout: 30_000 });
      await scrollSettled();
      const after = await boxOf(resultPanel());
      assert.ok(after.bottom > 0 && after.top < (await viewportHeight()), `the result panel is off screen: ${JSON.stringify(after)}`);
      // Its top, not some edge of it: the heading is on screen.
      assertInside(await boxOf(page.locator("#result-heading")), { left: 0, top: 0, right: width, bottom: await viewportHeight() }, "the result heading");
      assertInside(await boxOf(status()), { left: 0, top: 0, right: width, bottom: await viewportHeight() }, "the run status");
      await page.screenshot({ path: path.join(ARTIFACTS, `app-long-form-run-${width}.png`) });
    });
  }

  it("leaves the page where it is when the result panel is already on screen", async () => {
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto("/app?id=darkroom/echo");
    await page.getByRole("button", { name: "Run" }).waitFor();
    await page.evaluate(() => window.scrollTo(0, 40));
    const scrolled = await page.evaluate(() => window.scrollY);
    assert.equal(scrolled, 40);
    // A DOM click: Playwright's own would scroll the button into view first.
    await page.getByRole("button", { name: "Run" }).evaluate((el: HTMLButtonElement) => el.click());
    await status().filter({ hasText: "Completed" }).waitFor({ timeout: 30_000 });
    await scrollSettled();
    assert.equal(await page.evaluate(() => window.scrollY), scrolled);
  });

  it("the page logged no errors", () => {
    assert.deepEqual(pageErrors, []);
  });
});
