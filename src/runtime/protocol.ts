/**
 * Runner protocol, version 1: the messages between the scheduler and a runner. The IPC transport
 * (child processes of the local scheduler) sends them as Node IPC messages; the HTTP transport
 * (runners on other machines) will carry the same messages. See docs/runner-protocol.md.
 * @module
 */
import type { SerializedError } from "../core/errors.js";
import type { AppManifest, LogLevel, Progress } from "../core/types.js";

export const RUNNER_PROTOCOL_VERSION = 1;

/** Scheduler → runner */
export type ToRunner =
  | {
      t: "run";
      requestId: string;
      endpoint: string;
      input: unknown;
      /**
       * The input as JSON bytes, in place of `input`: a large input the gateway kept unparsed
       * (src/core/unparsed-input.ts). The runner parses it; `syncMode` then comes from it too.
       */
      inputJson?: Uint8Array;
      attempt: number;
      /** Base URL clients use, for absolute /files/ URLs. */
      baseUrl: string;
      /**
       * The gateway's `--files-url`, which output URLs are built on instead of `baseUrl`. Remote
       * runners learn it with each claimed run (`files_url`); local ones from DARKROOM_FILES_URL.
       */
      filesUrl?: string;
      /** Ephemeral calls (realtime messages) have no durable record. */
      ephemeral?: boolean;
      /** Return files inline as data URIs (fal's sync_mode). */
      syncMode?: boolean;
      /** Seconds until this request's output files expire; absent keeps the runner's default. */
      outputTtlSeconds?: number;
    }
  | { t: "cancel"; requestId: string }
  /** Finish in-flight work, take no more, then exit. */
  | { t: "drain" }
  /** To a spare runner (started before any app needed it, see spare-runners.ts): load this app and set it up. */
  | { t: "become"; modulePath: string }
  /** The answer to a Python runner's `put_file`: stored, or why not. */
  | { t: "file_stored"; callId: string; key: string; size: number; contentType: string; fileName: string }
  | { t: "file_failed"; callId: string; error: SerializedError };

/**
 * When each part of a runner's start happened, as the runner saw it, for `/v1/ops` and `/metrics`
 * (the scheduler adds what only it sees: the spawn and the first request). Times are unix
 * milliseconds with fractions (`performance.timeOrigin` based), durations milliseconds.
 */
export interface StartPhases {
  /** The runner process began (Node's time origin). */
  processStartedAt: number;
  /** Node, the loader and the runner's own modules had loaded. */
  runtimeLoadedAt: number;
  /** The runner was given its app: at once for a runner started for it, later for a spare. */
  appAssignedAt: number;
  /** Importing the app's module graph. */
  importMs: number;
}

/** Runner → scheduler */
export type FromRunner =
  | { t: "hello"; protocol: number; appId: string; pid: number }
  | { t: "ready"; setupMs: number; phases?: StartPhases }
  /** A spare runner has loaded its runtime and waits for `become`. */
  | { t: "spare" }
  | { t: "setup_failed"; error: SerializedError }
  | { t: "log"; requestId: string | null; level: LogLevel; message: string; timestamp: string }
  | { t: "progress"; requestId: string; progress: Progress }
  | { t: "partial"; requestId: string; data: unknown }
  | { t: "result"; requestId: string; output: unknown; billableUnits?: number }
  | { t: "error"; requestId: string; error: SerializedError; /** app-level error body, e.g. 422 detail */ body?: unknown }
  | { t: "heartbeat"; inFlight: string[] }
  /**
   * From a Python runner, which cannot open the server's storage driver itself as Node runners do:
   * an output file of a request it holds, base64, for the scheduler to store under `key` (which
   * must be under `outputs/<requestId>/`). Answered with `file_stored` or `file_failed`.
   */
  | { t: "put_file"; callId: string; requestId: string; key: string; contentType: string; fileName: string; expiresInSeconds?: number; data: string };

/** Probe: a short-lived child that loads an app module and reports its manifest (no setup). */
export type ProbeReply = { ok: true; manifest: Omit<AppManifest, "modulePath"> } | { ok: false; error: string };

/** fal's `sync_mode` input field: return files inline as data URIs rather than as stored files. */
export function wantsSyncMode(input: unknown): boolean {
  return typeof input === "object" && input !== null && (input as Record<string, unknown>)["sync_mode"] === true;
}
