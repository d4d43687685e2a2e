/**
 * Starts a real Darkroom server for a test: temp data folder, port 0, a known admin key, real
 * runners as child processes.
 * @module
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { loadConfig } from "../../src/core/config.js";
import { startPlatform, type Platform, type StartOptions } from "../../src/platform.js";

export const ADMIN_KEY = "dk_testadmin:test-admin-secret-0123456789abcdef";
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const FIXTURES = path.join(REPO_ROOT, "test/fixtures/media");
export const ECHO_APP = path.join(REPO_ROOT, "src/apps/echo/app.ts");
export const TEST_APPS = path.join(REPO_ROOT, "test/fixtures/apps");

export interface TestPlatform extends Platform {
  dataDir: string;
  /** Headers with the admin key. */
  auth: Record<string, string>;
  /** Stops the server and deletes its data folder. */
  close(): Promise<void>;
}

export interface TestPlatformOptions extends StartOptions {
  /** Reuse a data folder (restart tests); it is not deleted on close then. */
  dataDir?: string;
  env?: Record<string, string>;
  port?: number;
  /** Load the apps the configuration names (built-ins, --apps, pulled models) instead of `appModules` or echo. */
  configuredApps?: boolean;
}

export async function startTestPlatform(options: TestPlatformOptions = {}): Promise<TestPlatform> {
  const ownDir = !options.dataDir;
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), "darkroom-test-"));
  const config = loadConfig(
    { port: String(options.port ?? 0), host: "127.0.0.1", "data-dir": dataDir },
    // No spare runner by default: a test server's first runner is spawned as before (the spares have tests of their own).
    { DARKROOM_ADMIN_KEY: ADMIN_KEY, DARKROOM_SPARE_RUNNERS: "0", ...options.env },
  );
  const platform = await startPlatform(config, {
    ...(options.configuredApps ? {} : { appModules: options.appModules ?? [ECHO_APP] }),
    logger: options.logger ?? pino({ level: process.env["DARKROOM_TEST_LOG"] ?? "silent" }),
    scheduler: { cancelGraceMs: 1500, tickMs: 100, ...options.scheduler },
    webhookPollIntervalMs: options.webhookPollIntervalMs ?? 100,
    ...(options.webhookBackoff ? { webhookBackoff: options.webhookBackoff } : {}),
  });
  return {
    ...platform,
    dataDir,
    auth: { authorization: `Key ${ADMIN_KEY}` },
    async close() {
      await platform.stop(2000);
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** JSON request against the test server. */
export async function http(
  platform: { url: string; auth: Record<string, string> },
  method: string,
  route: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${platform.url}${route}`, {
    method,
    headers: { ...platform.auth, ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
    ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** Uploads `body` in one POST to `/files/upload`, asserts 200 and returns the stored file's URL. */
export async function uploadFile(platform: { url: string; auth: Record<string, string> }, body: string | Blob, contentType: string, fileName: string): Promise<string> {
  const res = await fetch(`${platform.url}/files/upload`, { method: "POST", headers: { ...platform.auth, "content-type": contentType, "x-fal-file-name": fileName }, body });
  assert.equal(res.status, 200);
  return ((await res.json()) as { access_url: string }).access_url;
}

/** Polls until `fn` returns a truthy value or the timeout passes. */
export async function eventually<T>(
  fn: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  timeoutMs = 10_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms${last instanceof Error ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
