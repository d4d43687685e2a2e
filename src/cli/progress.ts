/**
 * What `darkroom run` shows on stderr while a request waits: on a terminal, one live line (queue
 * position, a progress bar, elapsed time) with log lines scrolling above it; elsewhere (pipes, CI
 * logs) plain lines, one per change.
 * @module
 */

/** The server's `progress` field on IN_PROGRESS status events (docs/api.md). */
export interface ProgressInfo {
  fraction?: number;
  step?: number;
  total?: number;
  message?: string;
}

export interface LogLine {
  message: string;
  level?: string;
  timestamp?: string;
}

export interface Reporter {
  /** A line of its own ("submitted …", "cancelling …"). */
  info(text: string): void;
  queued(position: number): void;
  running(): void;
  progress(progress: ProgressInfo): void;
  log(line: LogLine): void;
  /** Removes the live line; later output starts on a clean line. */
  done(): void;
}

export interface ReporterStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export function fractionOf(p: ProgressInfo): number | null {
  if (typeof p.fraction === "number" && Number.isFinite(p.fraction)) return Math.min(Math.max(p.fraction, 0), 1);
  if (typeof p.step === "number" && typeof p.total === "number" && p.total > 0) return Math.min(Math.max(p.step / p.total, 0), 1);
  return null;
}

/** `[########------------]` */
export function renderBar(fraction: number, width = 20): string {
  const filled = Math.round(Math.min(Math.max(fraction, 0), 1) * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
}

/** `50% (2/4) step 2/4`: what is known of a progress report, without repeating the message's own count. */
export function describeProgress(p: ProgressInfo): string {
  const parts: string[] = [];
  const fraction = fractionOf(p);
  if (fraction !== null) parts.push(`${Math.round(fraction * 100)}%`);
  if (typeof p.step === "number") parts.push(typeof p.total === "number" ? `(${p.step}/${p.total})` : `(step ${p.step})`);
  if (p.message) parts.push(p.message);
  return parts.join(" ");
}

function logText(line: LogLine): string {
  const level = line.level && line.level !== "INFO" ? ` [${line.level}]` : "";
  return `log${level}: ${line.message}`;
}

function plainReporter(stream: ReporterStream): Reporter {
  let lastPosition: number | null = null;
  let running = false;
  let lastProgress = "";
  return {
    info: (text) => stream.write(`${text}\n`),
    queued(position) {
      if (position === lastPosition) return;
      lastPosition = position;
      stream.write(`queued: position ${position}\n`);
    },
    running() {
      if (running) return;
      running = true;
      stream.write("running\n");
    },
    progress(p) {
      const text = describeProgress(p);
      if (!text || text === lastProgress) return;
      lastProgress = text;
      stream.write(`progress: ${text}\n`);
    },
    log: (line) => stream.write(`${logText(line)}\n`),
    done: () => undefined,
  };
}

const CLEAR_LINE = "\r\x1b[2K";

function ttyReporter(stream: ReporterStream, now: () => number): Reporter {
  const started = now();
  let status = "";
  let progress: ProgressInfo | null = null;
  // The live line exists between the first status and done(); before and after, output is plain.
  let live = false;
  let timer: NodeJS.Timeout | null = null;

  const line = (): string => {
    const elapsed = `${((now() - started) / 1000).toFixed(1)}s`;
    let text = `${status}  ${elapsed}`;
    if (status === "running" && progress) {
      const fraction = fractionOf(progress);
      const bar = fraction !== null ? `${renderBar(fraction)} ${String(Math.round(fraction * 100)).padStart(3)}%` : "";
      text = ["running", bar, progress.message ?? "", elapsed].filter(Boolean).join("  ");
    }
    // A line wider than the terminal wraps, and \r then only rewinds its last row.
    const width = Math.max((stream.columns || 80) - 1, 20);
    return text.length > width ? text.slice(0, width) : text;
  };
  const draw = (): void => {
    if (live) stream.write(`${CLEAR_LINE}${line()}`);
  };
  const start = (): void => {
    live = true;
    if (timer) return;
    timer = setInterval(draw, 200);
    // The live line must never keep the process alive.
    timer.unref();
  };
  const above = (text: string): void => {
    stream.write(live ? `${CLEAR_LINE}${text}\n` : `${text}\n`);
    draw();
  };
  return {
    info: above,
    queued(position) {
      status = `queued, position ${position}`;
      start();
      draw();
    },
    running() {
      if (status === "running") return;
      status = "running";
      start();
      draw();
    },
    progress(p) {
      status = "running";
      progress = p;
      start();
      draw();
    },
    log: (l) => above(logText(l)),
    done() {
      if (timer) clearInterval(timer);
      timer = null;
      if (live) stream.write(CLEAR_LINE);
      live = false;
    },
  };
}

const silent: Reporter = { info: () => undefined, queued: () => undefined, running: () => undefined, progress: () => undefined, log: () => undefined, done: () => undefined };

export function createReporter(stream: ReporterStream, options: { quiet?: boolean; now?: () => number } = {}): Reporter {
  if (options.quiet) return silent;
  return stream.isTTY ? ttyReporter(stream, options.now ?? Date.now) : plainReporter(stream);
}
