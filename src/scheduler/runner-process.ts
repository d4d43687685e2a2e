/**
 * One runner as the scheduler sees it: a child process speaking the runner protocol over IPC. A
 * Node runner gets Node's own channel (structured clone); a Python app's runner (python-apps.ts)
 * the same messages as JSON lines on a socket it inherits as fd 3.
 * @module
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { Socket } from "node:net";
import { randomUUID } from "node:crypto";
import { childStart, compiledPathOf, compiledRuntime, spareStart } from "../runtime/compiled-runtime.js";
import type { FromRunner, ToRunner } from "../runtime/protocol.js";
import { isPythonAppSpec, pythonCommand, pythonEnv, pythonRunnerArgs } from "../runtime/python-apps.js";
import type { AppKnobs } from "../core/types.js";
import type { ColdStart } from "./cold-start.js";

/** starting: spawned, setup() running · ready: takes work · draining: finishing, takes none · stopped: the process exited */
export type RunnerState = "starting" | "ready" | "draining" | "stopped";

/** One request a runner is working on. */
export interface Assignment {
  requestId: string;
  attempt: number;
  startedAt: number;
  /** When the lease was last extended (renewed at a third of its length, not every tick). */
  leaseRenewedAt: number;
  /** Realtime calls have no durable record; they resolve a promise instead. */
  ephemeral: boolean;
  /** Set when the scheduler decided to kill the runner because this request ran past request_timeout. */
  timedOut?: boolean;
}

/** What a runner reports to, for as long as it works for one app (or waits as a spare). */
export interface RunnerHandlers {
  onMessage: (runner: RunnerProcess, message: FromRunner) => void;
  onExit: (runner: RunnerProcess, code: number | null, signal: NodeJS.Signals | null) => void;
}

export interface SpawnOptions extends RunnerHandlers {
  /** The app to load; null starts a spare, which waits for `become` (spare-runners.ts). */
  app: { id: string; modulePath: string; knobs?: AppKnobs } | null;
  /** For a spare: the app modules it may become, which decide how it starts (compiled-runtime.ts spareStart). */
  spareFor?: readonly string[];
  env: Record<string, string>;
}

export class RunnerProcess {
  readonly id = `runner-${randomUUID()}`;
  /** The app this runner serves; "" while it is a spare. */
  appId: string;
  /** When the process was started. */
  readonly processSpawnedAt = Date.now();
  /** When its start for its app began: the spawn, or the moment a spare was taken. */
  spawnedAt = this.processSpawnedAt;
  /** Whether it was started as a spare, and when it was handed its app (null: not yet). */
  readonly startedAsSpare: boolean;
  /**
   * Whether it runs the runtime compiled in dist/ rather than src/ through tsx (compiled-runtime.ts).
   * A compiled spare can become the runner of an app compiled in the same build only.
   */
  readonly compiled: boolean;
  readonly #build: string | null;
  takenAt: number | null = null;
  /** A spare that has loaded its runtime and waits for `become`. */
  spareReady = false;
  readonly assignments = new Map<string, Assignment>();
  state: RunnerState = "starting";
  readyAt: number | null = null;
  /** Its start, phase by phase, once it said ready. */
  coldStart: ColdStart | null = null;
  idleSince = Date.now();
  lastHeartbeat = Date.now();
  readonly #child: ChildProcess;
  /** A Python runner's channel (JSON lines); null for a Node runner, which uses Node's own. */
  #lines: Socket | null = null;
  #handlers: RunnerHandlers;
  #exitReported = false;

  constructor(options: SpawnOptions) {
    this.appId = options.app?.id ?? "";
    this.startedAsSpare = options.app === null;
    this.#handlers = { onMessage: options.onMessage, onExit: options.onExit };
    if (options.app && isPythonAppSpec(options.app.modulePath)) {
      this.#build = null;
      this.compiled = false;
      // The knobs in force (the operator's --app-knobs included): the Python runner keeps request_timeout itself too.
      const env = pythonEnv({ ...process.env, ...options.env, DARKROOM_RUNNER_ID: this.id, ...(options.app.knobs ? { DARKROOM_APP_KNOBS_JSON: JSON.stringify(options.app.knobs) } : {}) });
      this.#child = spawn(pythonCommand(env), pythonRunnerArgs(options.app.modulePath), { env, stdio: ["ignore", "inherit", "inherit", "pipe"] });
      const channel = this.#child.stdio[3] as Socket;
      this.#lines = channel;
      // A line that is not a message (it cannot come from the runner's own code) is dropped.
      createInterface({ input: channel, crlfDelay: Infinity }).on("line", (line) => {
        let message: FromRunner;
        try {
          message = JSON.parse(line) as FromRunner;
        } catch {
          return;
        }
        this.#handlers.onMessage(this, message);
      });
      channel.on("error", () => undefined);
    } else {
      // From dist/ when the build is fresh and the app (for a spare: every app of this server) was
      // compiled in it, else from src/ through tsx, as the gateway runs.
      const start = options.app ? childStart("runner-main", [options.app.modulePath]) : spareStart(options.spareFor ?? []);
      this.#build = start.build;
      this.compiled = start.build !== null;
      this.#child = fork(start.main, [], {
        // DARKROOM_RUNNER_NODE_ARGS adds Node flags to runners only (e.g. "--cpu-prof --cpu-prof-dir=prof").
        execArgv: [...start.execArgv, ...(process.env["DARKROOM_RUNNER_NODE_ARGS"] ?? "").split(" ").filter(Boolean)],
        env: {
          ...process.env,
          ...options.env,
          DARKROOM_APP_MODULE: start.modulePaths[0] ?? "",
          DARKROOM_RUNNER_ID: this.id,
        },
        stdio: ["ignore", "inherit", "inherit", "ipc"],
        serialization: "advanced",
      });
      this.#child.on("message", (message: FromRunner) => {
        if (message.t === "spare") this.spareReady = true;
        this.#handlers.onMessage(this, message);
      });
    }
    const report = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (this.#exitReported) return;
      this.#exitReported = true;
      this.#handlers.onExit(this, code, signal);
    };
    // 'exit' can come before the last messages in the IPC pipe have been read (a result sent just
    // before the runner exited); 'close' comes once the channel is read to its end. The exit is
    // reported on 'close', so that a runner's last result is never mistaken for a lost request.
    this.#child.once("close", report);
    this.#child.once("exit", (code, signal) => {
      this.state = "stopped";
      // Should something else hold the channel open (a grandchild that inherited it), do not wait forever.
      setTimeout(() => report(code, signal), 2000).unref();
    });
    // An IPC write to a dying child raises EPIPE here; the exit handler deals with the consequences.
    // A process that never started (no such Python) has no exit to wait for: it is reported now.
    this.#child.on("error", () => {
      if (this.#child.pid !== undefined) return;
      this.state = "stopped";
      report(null, null);
    });
  }

  /** Whether this spare can load `modulePath`: any app through tsx; compiled, only one compiled in its own build, which is still fresh. */
  canBecome(modulePath: string): boolean {
    return this.#build === null || compiledPathOf(modulePath, this.#build) !== null;
  }

  /** Compiled from a build that is no longer the fresh one (src/ changed, or dist/ was rebuilt): as a spare it can load no app. */
  get outdated(): boolean {
    const freshness = compiledRuntime();
    return this.#build !== null && (!freshness.fresh || freshness.fingerprint !== this.#build);
  }

  /**
   * Hands a spare its app: from now on it starts like a runner spawned for the app, and reports to
   * `handlers`. A spare still loading its runtime goes on to the app once it is loaded. False when
   * the spare is gone (its exit is reported to its old handlers), or is compiled and cannot load the
   * app (canBecome).
   */
  become(app: { id: string; modulePath: string }, handlers: RunnerHandlers): boolean {
    if (!this.startedAsSpare || this.takenAt !== null) throw new Error(`runner ${this.id} is not a spare waiting for its app`);
    const modulePath = this.#build === null ? app.modulePath : compiledPathOf(app.modulePath, this.#build);
    if (modulePath === null || !this.send({ t: "become", modulePath })) return false;
    this.appId = app.id;
    this.takenAt = Date.now();
    this.spawnedAt = this.takenAt;
    this.idleSince = this.takenAt;
    this.lastHeartbeat = this.takenAt;
    this.#handlers = handlers;
    return true;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** False once the scheduler has been told of the exit (all of the runner's messages handled before). */
  get alive(): boolean {
    return !this.#exitReported;
  }

  /**
   * Queues a message for the runner. False only when it cannot be delivered (the channel is closed).
   * Node's own `send` also answers false when its write backlog is long (a large input still being
   * written) while it does queue the message: that is backpressure, not a failure.
   * Throws when the message itself cannot be serialized (a value nested too deeply to clone).
   * `onWritten` is called once the message was written to the pipe (or failed to be), only when
   * this answers true.
   */
  send(message: ToRunner, onWritten?: () => void): boolean {
    if (this.#lines) return this.#sendLine(this.#lines, message, onWritten);
    if (!this.#child.connected) return false;
    try {
      // Called once the message left for the pipe, or failed to (the runner died meanwhile).
      this.#child.send(message, onWritten && (() => onWritten()));
      return true;
    } catch (err) {
      // The channel closed under us: the exit handler deals with the consequences.
      if (!this.#child.connected) return false;
      throw err;
    }
  }

  /** A message to a Python runner: one JSON line. A large input's bytes go as its JSON text. */
  #sendLine(channel: Socket, message: ToRunner, onWritten?: () => void): boolean {
    if (channel.destroyed || !channel.writable) return false;
    const wire = message.t === "run" && message.inputJson ? { ...message, input: undefined, inputJson: undefined, inputJsonText: Buffer.from(message.inputJson).toString("utf8") } : message;
    // Throws, as Node's channel does, for what cannot be sent (a BigInt); the caller fails the request.
    const line = `${JSON.stringify(wire)}\n`;
    channel.write(line, () => onWritten?.());
    return true;
  }

  /** Lets in-flight work finish, then the runner exits by itself. */
  drain(): void {
    if (this.state === "stopped") return;
    this.state = "draining";
    if (!this.send({ t: "drain" })) this.kill();
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill(signal);
  }
}
