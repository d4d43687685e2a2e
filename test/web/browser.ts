/**
 * What the playground's browser tests share: a fresh enough build of web/, and Debian's Chromium
 * driven by playwright-core with the flags a container
 * needs (headless, no sandbox, no GPU, nothing fetched in the background).
 * @module
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { ADMIN_KEY, REPO_ROOT } from "../helpers/platform.js";

export const WEB_DIR = path.join(REPO_ROOT, "web");
export const DIST_DIR = path.join(WEB_DIR, "dist");
export const ARTIFACTS = path.join(REPO_ROOT, "test-artifacts", "playground");
export const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

function isFresh(): boolean {
  const index = path.join(DIST_DIR, "index.html");
  const sourcesAt = Math.max(newestMtime(path.join(WEB_DIR, "src")), statSync(path.join(WEB_DIR, "index.html")).mtimeMs, statSync(path.join(WEB_DIR, "vite.config.ts")).mtimeMs);
  return existsSync(index) && statSync(index).mtimeMs >= sourcesAt;
}

const sleepSync = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Builds web/ into web/dist when the build is missing or older than its sources, so that the tests
 * never judge a stale bundle. `npm ci` builds it too (the prepare script); this covers edits since.
 * Test files may run in parallel (DARKROOM_TEST_CONCURRENCY): one builds, the others wait for it,
 * since Vite empties the output folder first.
 */
export function ensureWebBuild(): void {
  if (isFresh()) return;
  const lock = path.join(tmpdir(), `darkroom-web-build-${createHash("sha256").update(REPO_ROOT).digest("hex").slice(0, 12)}.lock`);
  for (const deadline = Date.now() + 120_000; ; sleepSync(200)) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // A lock left by a killed run is older than any build takes.
      if (Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) > 120_000) rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`waited 120 s for another test's build of web/ (lock ${lock})`);
    }
  }
  try {
    if (isFresh()) return;
    const vite = path.join(REPO_ROOT, "node_modules", "vite", "bin", "vite.js");
    const built = spawnSync(process.execPath, [vite, "build", "--config", path.join(WEB_DIR, "vite.config.ts"), "--logLevel", "warn"], { cwd: REPO_ROOT, encoding: "utf8" });
    if (built.status !== 0) {
      throw new Error(`building the playground failed (npx vite build --config web/vite.config.ts):\n${built.stdout}\n${built.stderr}`);
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's chromium package (.ci/run does), or set CHROMIUM_PATH`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
}

/**
 * A 1280×900 tab on `baseURL` whose actions wait 15 s at most. It collects into `errors` the page's
 * uncaught errors and its console errors other than "Failed to load resource" (error statuses a test
 * provokes, which its steps check), and with `report404`, every response that was a 404.
 */
export async function openPlaygroundTab(browser: Browser, baseURL: string, errors: string[], options: { report404?: boolean } = {}): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, baseURL });
  const page = await context.newPage();
  page.on("pageerror", (err) => errors.push(err.message));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) errors.push(msg.text());
  });
  if (options.report404) {
    page.on("response", (res) => {
      if (res.status() === 404) errors.push(`404 ${res.url()}`);
    });
  }
  page.setDefaultTimeout(15_000);
  return page;
}

/** Opens the Playground at "/" in `tab` and signs in with the admin key. */
export async function signInAsAdmin(tab: Page): Promise<void> {
  await tab.goto("/");
  await tab.getByLabel("API key").fill(ADMIN_KEY);
  await tab.getByRole("button", { name: "Sign in" }).click();
}
