/**
 * A runner on another machine: the HTTP transport of the runner protocol around the same
 * `RunnerHost` that local runner processes use. It registers its app with a gateway, long-polls for
 * leases, heartbeats the requests it holds (learning of cancellations and lost leases), streams
 * logs, progress and partial output, uploads output files, and reports each outcome once.
 *
 * What it guarantees: an outcome is reported only while the runner holds the request's lease at that
 * attempt (the gateway refuses it otherwise), so a request that was retried elsewhere after this
 * runner went silent is never completed twice. If this machine dies, its leases expire and the
 * gateways retry the requests.
 * @module
 */
import { hostname } from "node:os";
import { PlatformError, serializeError, type SerializedError } from "../core/errors.js";
import type { AppKnobs, AppManifest } from "../core/types.js";
import { AllowList } from "../net/allow-list.js";
import { buildManifest, importApp } from "./app-loader.js";
import { fileAccessForRun } from "./file-access.js";
import { GatewayClient, GatewayUnreachableError } from "./gateway-client.js";
import { createGatewayStorage } from "./gateway-storage.js";
import { RUNNER_PROTOCOL_VERSION, type FromRunner, type ToRunner } from "./protocol.js";
import { RunnerHost } from "./runner-host.js";

export interface RemoteRunnerOptions {
  gateways: string[];
  token: string;
  modulePath: string;
  /** Requests held at once; default the app's max_multiplexing. */
  slots?: number;
  /** Keep this id across restarts or gateways (rr-…); default a fresh one from the gateway. */
  runnerId?: string;
  /** Longest a lease call waits for work, ms. */
  pollWaitMs?: number;
  /** How long a cancelled or timed-out handler may run on before its request is reported anyway, ms. */
  cancelGraceMs?: number;
  /** Where the runner's own messages go (setup logs, connection trouble). */
  log?: (level: "info" | "warn" | "error", message: string, fields?: Record<string, unknown>) => void;
  allowHosts?: string;
  maxFileBytes?: number;
  fetchTimeoutMs?: number;
}

interface Registration {
  protocol: number;
  runner_id: string;
  lease_ms: number;
  heartbeat_ms: number;
  poll_wait_ms: number;
  knobs: AppKnobs;
}

interface LeasedRun {
  request_id: string;
  endpoint: string;
  input: unknown;
  attempt: number;
  base_url: string;
  /** The gateway's --files-url, when it has one: output URLs are built on it. */
  files_url?: string;
  sync_mode: boolean;
  cancel_requested: boolean;
  output_ttl_seconds?: number;
}

type OutboundEvent =
  | { type: "log"; level: string; message: string; timestamp: string }
  | { type: "progress"; step?: number; total?: number; fraction?: number; message?: string }
  | { type: "partial"; data: unknown };

interface Held {
  attempt: number;
  /** Events not yet sent. */
  pending: OutboundEvent[];
  /** Everything sent for this request, in order: events, then the outcome. */
  chain: Promise<void>;
  flushTimer: NodeJS.Timeout | null;
  /** Why the runner stopped the handler itself, if it did. */
  stopReason: "cancel" | "timeout" | "lost" | null;
  timers: NodeJS.Timeout[];
  /** Set once the outcome is decided: later messages from the handler are dropped. */
  settled: boolean;
}

const EVENT_FLUSH_MS = 20;
const MAX_BATCH = 200;

export class RemoteRunner {
  readonly #options: RemoteRunnerOptions;
  readonly #client: GatewayClient;
  readonly #held = new Map<string, Held>();
  readonly #stopController = new AbortController();
  #registration: Registration | null = null;
  #manifest: AppManifest | null = null;
  #host: RunnerHost | null = null;
  #slots = 1;
  #slotFreed: (() => void) | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #stopping = false;
  #drained: Promise<void> | null = null;
  #setupFailure: SerializedError | null = null;
  /** How this runner's start went, sent with its first registration only (a re-registration is no start). */
  #startPhases: { runtime_ms: number; import_ms: number; setup_ms: number; ready_ms: number } | null = null;
  #setupMs = 0;

  constructor(options: RemoteRunnerOptions) {
    this.#options = options;
    this.#client = new GatewayClient({
      gateways: options.gateways,
      token: options.token,
      onSwitch: (gateway) => {
        this.#log("warn", `switched to gateway ${gateway}`);
        // A gateway that does not load this app learns it from the registration; it is idempotent.
        if (this.#registration) void this.#register().catch((err: unknown) => this.#log("warn", `re-registering failed: ${String(err)}`));
      },
    });
  }

  get runnerId(): string | null {
    return this.#registration?.runner_id ?? null;
  }

  /** Requests held right now. */
  get inFlight(): string[] {
    return [...this.#held.keys()];
  }

  #log(level: "info" | "warn" | "error", message: string, fields?: Record<string, unknown>): void {
    this.#options.log?.(level, message, fields);
  }

  /** Loads the app, runs its setup, registers with a gateway. Resolves when the runner takes work. */
  async start(): Promise<void> {
    // Durations from this process's start (performance's time origin), by this machine's clock.
    const runtimeMs = performance.now();
    const app = await importApp(this.#options.modulePath);
    const importMs = performance.now() - runtimeMs;
    this.#manifest = await buildManifest(app, this.#options.modulePath);
    if (this.#manifest.unavailable) {
      throw new Error(`${app.id} cannot run on this machine: ${this.#manifest.unavailable.reason} (${this.#manifest.unavailable.remedy})`);
    }
    const allow = AllowList.parse(this.#options.allowHosts ?? "");
    // Output files go to the gateway, at the attempt this runner holds the request.
    const storage = createGatewayStorage({
      client: this.#client,
      heldAttempt: (requestId) => this.#held.get(requestId)?.attempt,
      runnerId: () => this.#registration?.runner_id ?? null,
    });
    let ready!: () => void;
    const readyPromise = new Promise<void>((resolve) => (ready = resolve));
    this.#host = new RunnerHost({
      app,
      send: (message) => this.#fromHost(message, ready),
      fileAccess: (run) =>
        fileAccessForRun(run, {
          storage,
          allow,
          ownOrigins: this.#options.gateways,
          maxFileBytes: this.#options.maxFileBytes ?? 512 * 1024 * 1024,
          fetchTimeoutMs: this.#options.fetchTimeoutMs ?? 60_000,
        }),
      onDrained: () => undefined,
      // The host's own heartbeats are for the IPC transport; this one sends its own.
      heartbeatMs: 2 ** 30,
    });
    await this.#host.start();
    if (this.#setupFailure) throw new Error(`setup() failed: ${this.#setupFailure.message}`);
    await readyPromise;
    this.#slots = this.#options.slots ?? this.#manifest.knobs.max_multiplexing;
    this.#startPhases = { runtime_ms: runtimeMs, import_ms: importMs, setup_ms: this.#setupMs, ready_ms: performance.now() };
    await this.#register();
    const registration = this.#registration;
    if (!registration) throw new Error("registration failed");
    this.#log("info", `serving ${app.id} as ${registration.runner_id} with ${this.#slots} slot(s) via ${this.#client.gateway}`);
    this.#heartbeat = setInterval(() => void this.#sendHeartbeat(), registration.heartbeat_ms);
    void this.#leaseLoop();
  }

  async #register(): Promise<void> {
    const manifest = this.#manifest;
    if (!manifest) return;
    const registration = await this.#client.json<Registration>(
      "POST",
      "/runner/v1/register",
      {
        protocol: RUNNER_PROTOCOL_VERSION,
        ...(this.#registration ? { runner_id: this.#registration.runner_id } : this.#options.runnerId ? { runner_id: this.#options.runnerId } : {}),
        app: {
          id: manifest.id,
          version: manifest.version,
          endpoints: manifest.endpoints.map((e) => ({ path: e.path, kind: e.kind, input: e.input, output: e.output, ...(e.description ? { description: e.description } : {}) })),
          knobs: manifest.knobs,
          metadata: manifest.metadata,
          ...(manifest.cache ? { cache: manifest.cache } : {}),
        },
        runner: { hostname: hostname(), pid: process.pid, slots: this.#options.slots ?? manifest.knobs.max_multiplexing },
        ...(this.#startPhases ? { start: this.#startPhases } : {}),
      },
      { retryForMs: 60_000 },
    );
    this.#registration = registration;
    this.#startPhases = null;
  }

  /**
   * Stops taking work and lets held requests finish for up to `graceMs`; those still running then
   * are handed back (ERR_RUNNER_DISCONNECTED, so the gateway retries them at once rather than after
   * the lease runs out).
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.#drained) return this.#drained;
    this.#stopping = true;
    this.#stopController.abort();
    this.#slotFreed?.();
    this.#drained = (async () => {
      const deadline = Date.now() + graceMs;
      while (this.#held.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      for (const [requestId, held] of this.#held) {
        this.#settle(requestId, held, { t: "error", requestId, error: serializeError(new PlatformError("ERR_RUNNER_DISCONNECTED", { message: "Runner stopped while the request ran" })) });
      }
      await Promise.all([...this.#held.values()].map((h) => h.chain));
      if (this.#heartbeat) clearInterval(this.#heartbeat);
      this.#host?.handle({ t: "drain" });
    })();
    return this.#drained;
  }

  // --- leases ---

  async #leaseLoop(): Promise<void> {
    const registration = this.#registration;
    const manifest = this.#manifest;
    if (!registration || !manifest) return;
    let backoff = 250;
    while (!this.#stopping) {
      const free = this.#slots - this.#held.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.#slotFreed = resolve));
        this.#slotFreed = null;
        continue;
      }
      let runs: LeasedRun[];
      try {
        const wait = Math.min(this.#options.pollWaitMs ?? registration.poll_wait_ms, registration.poll_wait_ms);
        const answer = await this.#client.json<{ runs: LeasedRun[] }>(
          "POST",
          "/runner/v1/lease",
          { runner_id: registration.runner_id, app_id: manifest.id, slots: free, wait_ms: wait },
          { timeoutMs: wait + 15_000, signal: this.#stopController.signal },
        );
        runs = answer.runs;
        backoff = 250;
      } catch (err) {
        if (this.#stopping) return;
        this.#log("warn", `lease call failed: ${err instanceof Error ? err.message : String(err)}`);
        if (err instanceof PlatformError && err.code === "ERR_APP_NOT_FOUND") await this.#register().catch(() => undefined);
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
        continue;
      }
      for (const run of runs) this.#begin(run);
    }
  }

  #begin(run: LeasedRun): void {
    const knobs = this.#registration?.knobs ?? this.#manifest?.knobs;
    const held: Held = { attempt: run.attempt, pending: [], chain: Promise.resolve(), flushTimer: null, stopReason: null, timers: [], settled: false };
    this.#held.set(run.request_id, held);
    if (knobs) {
      // request_timeout is enforced here: the gateway does not see the handler.
      const timer = setTimeout(() => this.#stopHandler(run.request_id, "timeout"), knobs.request_timeout * 1000);
      timer.unref();
      held.timers.push(timer);
    }
    const message: Extract<ToRunner, { t: "run" }> = {
      t: "run",
      requestId: run.request_id,
      endpoint: run.endpoint,
      input: run.input,
      attempt: run.attempt,
      baseUrl: run.base_url,
      ...(run.files_url ? { filesUrl: run.files_url } : {}),
      syncMode: run.sync_mode,
      ...(run.output_ttl_seconds !== undefined ? { outputTtlSeconds: run.output_ttl_seconds } : {}),
    };
    this.#host?.handle(message);
    if (run.cancel_requested) this.#stopHandler(run.request_id, "cancel");
  }

  /** Aborts a handler; if it ignores its signal past the grace period, its request is reported anyway. */
  #stopHandler(requestId: string, reason: "cancel" | "timeout" | "lost"): void {
    const held = this.#held.get(requestId);
    if (!held || held.settled || held.stopReason) return;
    held.stopReason = reason;
    this.#host?.handle({ t: "cancel", requestId });
    const timer = setTimeout(() => {
      const current = this.#held.get(requestId);
      if (current !== held || held.settled) return;
      this.#log("warn", `handler for ${requestId} ignored its abort signal for ${this.#options.cancelGraceMs ?? 5000} ms; reporting it anyway`);
      this.#settle(requestId, held, { t: "error", requestId, error: serializeError(new PlatformError("ERR_CLIENT_CANCELLED")) });
    }, this.#options.cancelGraceMs ?? 5000);
    timer.unref();
    held.timers.push(timer);
  }

  async #sendHeartbeat(): Promise<void> {
    const registration = this.#registration;
    if (!registration) return;
    await this.#refreshToken().catch((err: unknown) => this.#log("warn", `token refresh failed: ${String(err)}`));
    if (this.#held.size === 0) return;
    try {
      const answer = await this.#client.json<{ requests: { request_id: string; status: "ok" | "cancel" | "lost" }[] }>(
        "POST",
        "/runner/v1/heartbeat",
        { runner_id: registration.runner_id, requests: [...this.#held.entries()].filter(([, h]) => !h.settled).map(([id, h]) => ({ request_id: id, attempt: h.attempt })) },
        { timeoutMs: registration.heartbeat_ms },
      );
      for (const { request_id, status } of answer.requests) {
        if (status === "cancel") this.#stopHandler(request_id, "cancel");
        else if (status === "lost") this.#abandon(request_id);
      }
    } catch (err) {
      this.#log("warn", `heartbeat failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** The lease is gone (another runner may hold the request now): stop the handler and report nothing. */
  #abandon(requestId: string): void {
    const held = this.#held.get(requestId);
    if (!held) return;
    this.#log("warn", `lost the lease on ${requestId}; abandoning it`);
    held.stopReason = "lost";
    held.settled = true;
    this.#host?.handle({ t: "cancel", requestId });
    this.#release(requestId, held);
  }

  #release(requestId: string, held: Held): void {
    for (const t of held.timers) clearTimeout(t);
    if (held.flushTimer) clearTimeout(held.flushTimer);
    void held.chain.finally(() => {
      if (this.#held.get(requestId) === held) this.#held.delete(requestId);
      this.#slotFreed?.();
    });
  }

  // --- messages from the host ---

  #fromHost(message: FromRunner, ready: () => void): void {
    switch (message.t) {
      case "hello":
      case "heartbeat":
      case "spare":
        return;
      case "ready":
        this.#setupMs = message.setupMs;
        ready();
        return;
      case "setup_failed":
        this.#setupFailure = message.error;
        ready();
        return;
      case "log":
        if (message.requestId === null) {
          this.#log(message.level === "ERROR" ? "error" : "info", message.message);
          return;
        }
        this.#queueEvent(message.requestId, { type: "log", level: message.level, message: message.message, timestamp: message.timestamp });
        return;
      case "progress":
        this.#queueEvent(message.requestId, { type: "progress", ...message.progress });
        return;
      case "partial":
        this.#queueEvent(message.requestId, { type: "partial", data: message.data });
        return;
      case "result":
      case "error": {
        const held = this.#held.get(message.requestId);
        if (held && !held.settled) this.#settle(message.requestId, held, message);
        return;
      }
    }
  }

  #queueEvent(requestId: string, event: OutboundEvent): void {
    const held = this.#held.get(requestId);
    if (!held || held.settled) return;
    // Only the latest progress matters; older ones still waiting are dropped.
    if (event.type === "progress") held.pending = held.pending.filter((e) => e.type !== "progress");
    held.pending.push(event);
    if (held.pending.length >= MAX_BATCH) this.#flush(requestId, held);
    else held.flushTimer ??= setTimeout(() => this.#flush(requestId, held), EVENT_FLUSH_MS);
  }

  #flush(requestId: string, held: Held): void {
    if (held.flushTimer) clearTimeout(held.flushTimer);
    held.flushTimer = null;
    if (held.pending.length === 0) return;
    const events = held.pending;
    held.pending = [];
    const runnerId = this.#registration?.runner_id;
    held.chain = held.chain.then(async () => {
      if (held.stopReason === "lost") return;
      try {
        await this.#client.json("POST", `/runner/v1/requests/${encodeURIComponent(requestId)}/events`, { runner_id: runnerId, attempt: held.attempt, events }, { retryForMs: 10_000 });
      } catch (err) {
        if (err instanceof PlatformError && err.code === "ERR_LEASE_LOST") this.#abandon(requestId);
        else this.#log("warn", `dropping ${events.length} event(s) of ${requestId}: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
  }

  /** Decides a request's outcome (once) and reports it after its pending events. */
  #settle(requestId: string, held: Held, message: Extract<FromRunner, { t: "result" | "error" }>): void {
    held.settled = true;
    this.#flush(requestId, held);
    let outcome = message;
    if (outcome.t === "error" && held.stopReason === "timeout" && outcome.error.code === "ERR_CLIENT_CANCELLED") {
      const seconds = this.#registration?.knobs.request_timeout ?? this.#manifest?.knobs.request_timeout;
      outcome = { t: "error", requestId, error: serializeError(new PlatformError("ERR_REQUEST_TIMEOUT", { message: `Request ran longer than request_timeout (${seconds} s)` })) };
    }
    const runnerId = this.#registration?.runner_id;
    const leaseMs = this.#registration?.lease_ms ?? 30_000;
    held.chain = held.chain.then(async () => {
      if (held.stopReason === "lost") return;
      const path = `/runner/v1/requests/${encodeURIComponent(requestId)}/${outcome.t === "result" ? "result" : "error"}`;
      const body =
        outcome.t === "result"
          ? { runner_id: runnerId, attempt: held.attempt, output: outcome.output, ...(outcome.billableUnits !== undefined ? { billable_units: outcome.billableUnits } : {}) }
          : {
              runner_id: runnerId,
              attempt: held.attempt,
              error: { code: outcome.error.code, message: outcome.error.message, ...(outcome.error.status !== undefined ? { status: outcome.error.status } : {}), ...(outcome.error.fieldErrors ? { field_errors: outcome.error.fieldErrors } : {}) },
            };
      try {
        // While the lease lasts the outcome can still land (on any gateway); after that the
        // request is someone else's.
        await this.#client.json("POST", path, body, { retryForMs: leaseMs });
      } catch (err) {
        if (err instanceof PlatformError && err.code === "ERR_LEASE_LOST") this.#log("warn", `outcome of ${requestId} refused: the lease was lost`);
        else if (err instanceof GatewayUnreachableError) this.#log("error", `could not report ${requestId}: ${err.message}; its lease will expire and it will be retried`);
        else this.#log("error", `reporting ${requestId} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
    this.#release(requestId, held);
  }

  // --- token ---

  async #refreshToken(): Promise<void> {
    const token = this.#client.token;
    const parts = token.split(".");
    if (parts.length !== 3) return; // an admin key: nothing to refresh
    let claims: { iat?: number; exp?: number };
    try {
      claims = JSON.parse(Buffer.from(parts[1] as string, "base64url").toString("utf8")) as { iat?: number; exp?: number };
    } catch {
      return;
    }
    if (typeof claims.exp !== "number" || typeof claims.iat !== "number") return;
    const now = Date.now() / 1000;
    // Refresh in the last third of the token's life.
    if (now < claims.exp - (claims.exp - claims.iat) / 3) return;
    const fresh = await this.#client.json<{ token: string }>("POST", "/runner/v1/token", {}, { retryForMs: 5000 });
    this.#client.token = fresh.token;
    this.#log("info", "runner token refreshed");
  }
}
