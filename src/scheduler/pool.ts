/**
 * What the scheduler keeps per app: its runner processes, the realtime calls that wait or run, the
 * suspects of crashes, and what `/v1/ops` shows of it.
 * @module
 */
import type { PlatformError } from "../core/errors.js";
import type { AppManifest } from "../core/types.js";
import type { Suspects } from "./isolation.js";
import type { RunnerProcess } from "./runner-process.js";

export interface EphemeralCall {
  id: string;
  endpoint: string;
  input: unknown;
  baseUrl: string;
  resolve: (output: unknown) => void;
  reject: (err: PlatformError) => void;
  onPartial?: (data: unknown) => void;
}

export interface Pool {
  app: AppManifest;
  runners: Map<string, RunnerProcess>;
  pumping: boolean;
  pumpAgain: boolean;
  setupFailures: number;
  lastSetupError: string | null;
  ephemeralQueue: EphemeralCall[];
  ephemeralInFlight: Map<string, EphemeralCall>;
  coldStarts: number;
  recentErrors: { at: number; requestId: string | null; message: string }[];
  /**
   * Requests that must run apart from other work: they were in flight when a runner died for no
   * reason that another request explains (a crash), or they hung it past request_timeout. One of them
   * may crash every runner it runs on. Each group of them runs on a runner that takes nothing else
   * meanwhile; the pool's other runners go on multiplexing (see isolation.ts). Entries leave when
   * their request ends.
   */
  suspects: Suspects;
}

export interface PoolSnapshot {
  app: string;
  runners: { id: string; state: string; pid: number | undefined; in_flight: number; spawned_at: number; ready_at: number | null }[];
  cold_starts: number;
  setup_failures: number;
  last_setup_error: string | null;
  recent_errors: { at: number; request_id: string | null; message: string }[];
}

