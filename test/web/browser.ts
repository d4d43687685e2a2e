/**
 * What the playground's browser tests share: a fresh enough build of web/, and Debian's Chromium
 * driven by playwright-core with the flags of deps.md §6.
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser } from "playwright-core";
import { REPO_ROOT } from "../helpers/platform.js";

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

/**
 * Builds web/ into web/dist when the build is missing or older than its sources, so that the tests
 * never judge a stale bundle. `npm ci` builds it too (the prepare script); this covers edits since.
 */
export function ensureWebBuild(): void {
  const index = path.join(DIST_DIR, "index.html");
  const sourcesAt = Math.max(newestMtime(path.join(WEB_DIR, "src")), statSync(path.join(WEB_DIR, "index.html")).mtimeMs, statSync(path.join(WEB_DIR, "vite.config.ts")).mtimeMs);
  if (existsSync(index) && statSync(index).mtimeMs >= sourcesAt) return;
  const vite = path.join(REPO_ROOT, "node_modules", "vite", "bin", "vite.js");
  const built = spawnSync(process.execPath, [vite, "build", "--config", path.join(WEB_DIR, "vite.config.ts"), "--logLevel", "warn"], { cwd: REPO_ROOT, encoding: "utf8" });
  if (built.status !== 0) {
    throw new Error(`building the playground failed (npx vite build --config web/vite.config.ts):\n${built.stdout}\n${built.stderr}`);
  }
}

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's chromium package (.ci/run does), or set CHROMIUM_PATH`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
}
