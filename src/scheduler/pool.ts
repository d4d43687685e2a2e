/**
 * What the scheduler keeps per app: its runner processes, the realtime calls that wait or run, the
 * suspects of crashes, and what `/v1/ops` shows of it.
 * @module
 */
import type { PlatformError } from "../core/errors.js";
import type { AppManifest } from "../core/types.js";
import type { ColdStart } from "./cold-start.js";
import { Suspects } from "./isolation.js";
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
  /** The latest runner starts, phase by phase, newest last. */
  recentColdStarts: ColdStart[];
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
  /** The latest runner starts, phase by phase, newest last (a runner's first request is filled in once it ended). */
  recent_cold_starts: ColdStart[];
  setup_failures: number;
  last_setup_error: string | null;
  recent_errors: { at: number; request_id: string | null; message: string }[];
}


/** A new pool for `app`: the given runners, nothing waiting, no suspects, no errors yet. */
export function createPool(app: AppManifest, runners: Iterable<RunnerProcess> = []): Pool {
  return {
    app,
    runners: new Map([...runners].map((r) => [r.id, r])),
    pumping: false,
    pumpAgain: false,
    setupFailures: 0,
    lastSetupError: null,
    ephemeralQueue: [],
    ephemeralInFlight: new Map(),
    coldStarts: 0,
    recentColdStarts: [],
    recentErrors: [],
    suspects: new Suspects(),
  };
}

/** How many recent errors `/v1/ops` shows per app. */
const RECENT_ERRORS_KEPT = 20;

/** Notes a server-side error of the app (a failed run or setup) for `/v1/ops`, dropping the oldest. */
export function recordRecentError(pool: Pool, requestId: string | null, message: string): void {
  pool.recentErrors.push({ at: Date.now(), requestId, message });
  if (pool.recentErrors.length > RECENT_ERRORS_KEPT) pool.recentErrors.shift();
}

/** How many recent cold starts `/v1/ops` shows per app. */
const RECENT_COLD_STARTS_KEPT = 5;

/** Notes a runner's start for `/v1/ops`, dropping the oldest. */
export function recordColdStart(pool: Pool, start: ColdStart): void {
  pool.recentColdStarts.push(start);
  if (pool.recentColdStarts.length > RECENT_COLD_STARTS_KEPT) pool.recentColdStarts.shift();
}
