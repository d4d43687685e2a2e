/**
 * The runner host: loads one app, runs `setup()` once, then executes handlers for the scheduler's
 * `run` messages, reporting logs, progress, partial results and outcomes. It knows nothing about the
 * transport: it gets a `send` function and is fed messages through `handle`.
 * @module
 */
import { PlatformError, serializeError, type FieldError } from "../core/errors.js";
import type { LogLevel } from "../core/types.js";
import type { FromRunner, StartPhases, ToRunner } from "./protocol.js";
import { RUNNER_PROTOCOL_VERSION, wantsSyncMode } from "./protocol.js";
import { SafetyGuard, safetyCheckerConfigFromEnv, type SafetyCheckerConfig } from "./safety-checker.js";
import type { DefinedApp, EndpointDefinition, FileAccess, HandlerContext } from "./sdk.js";

type RunMessage = Extract<ToRunner, { t: "run" }>;

/** A run whose input came as JSON bytes, with the input parsed (and fal's `sync_mode` read from it). */
function withParsedInput({ inputJson, ...run }: RunMessage): RunMessage {
  let input: unknown;
  try {
    input = JSON.parse(Buffer.from(inputJson!.buffer, inputJson!.byteOffset, inputJson!.byteLength).toString("utf8"));
  } catch (err) {
    throw new PlatformError("ERR_INTERNAL", { message: "The request's input is not valid JSON", cause: err });
  }
  return { ...run, input, syncMode: run.syncMode ?? wantsSyncMode(input) };
}

export interface RunnerHostOptions {
  app: DefinedApp;
  send: (message: FromRunner) => void;
  /** Builds `ctx.files` for one request. */
  fileAccess: (run: Extract<ToRunner, { t: "run" }>) => FileAccess;
  /** Called once the host has drained; the process exits afterwards. */
  onDrained: () => void;
  heartbeatMs?: number;
  /** How flagged images are treated; read from the environment when an endpoint declares the safety checker and this is unset. */
  safetyChecker?: SafetyCheckerConfig;
  /** How the runner's start went before setup, reported with `ready`. */
  startPhases?: StartPhases;
}

interface InFlight {
  controller: AbortController;
}

/** Turns a zod error into fal's `detail[]` entries. */
function zodFieldErrors(issues: readonly { path: PropertyKey[]; message: string; code: string }[]): FieldError[] {
  return issues.map((issue) => ({
    loc: ["body", ...issue.path.map((p) => (typeof p === "symbol" ? String(p) : p))],
    msg: issue.message,
    type: issue.code,
  }));
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === "object" && value !== null && Symbol.asyncIterator in value;
}

export class RunnerHost {
  readonly #options: RunnerHostOptions;
  readonly #inFlight = new Map<string, InFlight>();
  #state: unknown;
  #safetyChecker: SafetyCheckerConfig | undefined;
  #draining = false;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(options: RunnerHostOptions) {
    this.#options = options;
  }

  async start(): Promise<void> {
    const { app, send } = this.#options;
    send({ t: "hello", protocol: RUNNER_PROTOCOL_VERSION, appId: app.id, pid: process.pid });
    const started = performance.now();
    try {
      // A bad configuration stops the runner at setup, where the operator sees it, not at the first flagged image.
      if (app.endpoints.some((e) => e.safetyChecker)) {
        this.#safetyChecker = this.#options.safetyChecker ?? safetyCheckerConfigFromEnv(process.env);
      }
      this.#state = app.setup ? await app.setup((message) => this.#log(null, message, "INFO")) : undefined;
    } catch (err) {
      send({ t: "setup_failed", error: serializeError(err) });
      return;
    }
    const setupMs = Math.round(performance.now() - started);
    send({ t: "ready", setupMs, ...(this.#options.startPhases ? { phases: this.#options.startPhases } : {}) });
    this.#heartbeat = setInterval(() => send({ t: "heartbeat", inFlight: [...this.#inFlight.keys()] }), this.#options.heartbeatMs ?? 2000);
    this.#heartbeat.unref();
  }

  handle(message: ToRunner): void {
    switch (message.t) {
      case "run":
        void this.#run(message);
        return;
      case "cancel":
        this.#inFlight.get(message.requestId)?.controller.abort(new PlatformError("ERR_CLIENT_CANCELLED"));
        return;
      case "drain":
        this.#draining = true;
        this.#maybeDrained();
        return;
    }
  }

  #log(requestId: string | null, message: string, level: LogLevel): void {
    this.#options.send({ t: "log", requestId, level, message, timestamp: new Date().toISOString() });
  }

  #maybeDrained(): void {
    if (!this.#draining || this.#inFlight.size > 0) return;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    const finish = (): void => this.#options.onDrained();
    const teardown = this.#options.app.teardown;
    if (!teardown) return finish();
    Promise.resolve()
      .then(() => teardown(this.#state))
      .catch((err: unknown) => this.#log(null, `teardown failed: ${String(err)}`, "ERROR"))
      .finally(finish);
  }

  async #run(message: Extract<ToRunner, { t: "run" }>): Promise<void> {
    const { app, send } = this.#options;
    let run = message;
    const controller = new AbortController();
    this.#inFlight.set(run.requestId, { controller });
    let billableUnits: number | undefined;
    try {
      if (this.#draining) throw new PlatformError("ERR_RUNNER_DISCONNECTED", { message: "Runner is draining" });
      if (run.inputJson) run = withParsedInput(run);
      const endpoint = app.endpoints.find((e) => e.path === run.endpoint);
      if (!endpoint) throw new PlatformError("ERR_PATH_NOT_FOUND", { message: `Path /${run.endpoint} not found` });
      const parsed = endpoint.input.safeParse(run.input);
      if (!parsed.success) throw new PlatformError("ERR_VALIDATION", { fieldErrors: zodFieldErrors(parsed.error.issues) });
      const log = (message: string, level: LogLevel = "INFO"): void => this.#log(run.requestId, message, level);
      const files = this.#options.fileAccess(run);
      const guard = this.#safetyGuard(endpoint, parsed.data, files, log, controller.signal);
      const ctx: HandlerContext = {
        requestId: run.requestId,
        state: this.#state,
        signal: controller.signal,
        attempt: run.attempt,
        log,
        progress: (step, total, message) =>
          send({
            t: "progress",
            requestId: run.requestId,
            progress: { step, total, fraction: total > 0 ? Math.min(1, step / total) : 0, ...(message ? { message } : {}) },
          }),
        emit: (data) => send({ t: "partial", requestId: run.requestId, data }),
        bill: (units) => {
          billableUnits = units;
        },
        files: guard?.files ?? files,
        throwIfCancelled: () => {
          if (controller.signal.aborted) throw controller.signal.reason;
        },
      };
      let output = await this.#invoke(endpoint, parsed.data, ctx, run.requestId);
      if (guard) output = await guard.finish(output);
      if (controller.signal.aborted) throw controller.signal.reason;
      send({ t: "result", requestId: run.requestId, output, ...(billableUnits !== undefined ? { billableUnits } : {}) });
    } catch (err) {
      const error: unknown = controller.signal.aborted && !(err instanceof PlatformError) ? controller.signal.reason : err;
      if (!(error instanceof PlatformError)) {
        this.#log(run.requestId, error instanceof Error ? (error.stack ?? error.message) : String(error), "ERROR");
      }
      send({ t: "error", requestId: run.requestId, error: serializeError(error) });
    } finally {
      this.#inFlight.delete(run.requestId);
      this.#maybeDrained();
    }
  }

  /** A guard for requests that enable the safety checker on an endpoint that declares it; else undefined (no model work at all). */
  #safetyGuard(
    endpoint: EndpointDefinition<unknown>,
    input: unknown,
    files: FileAccess,
    log: (message: string) => void,
    signal: AbortSignal,
  ): SafetyGuard | undefined {
    if (!endpoint.safetyChecker || !this.#safetyChecker) return undefined;
    if ((input as { enable_safety_checker?: unknown }).enable_safety_checker !== true) return undefined;
    return new SafetyGuard({ files, config: this.#safetyChecker, log, signal });
  }

  async #invoke(endpoint: EndpointDefinition<unknown>, input: unknown, ctx: HandlerContext, requestId: string): Promise<unknown> {
    const result: unknown = await (endpoint.handler as (i: unknown, c: HandlerContext) => unknown)(input, ctx);
    if (!isAsyncIterable(result)) return result;
    // Streaming handler: every yielded value is a partial result; the last one is the output.
    let last: unknown;
    let any = false;
    for await (const item of result) {
      last = item;
      any = true;
      this.#options.send({ t: "partial", requestId, data: item });
      if (ctx.signal.aborted) throw ctx.signal.reason;
    }
    if (!any) throw new PlatformError("ERR_RUNNER_INCOMPLETE", { message: "Stream produced no output" });
    return last;
  }
}
