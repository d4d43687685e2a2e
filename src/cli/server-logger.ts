/**
 * The logger `darkroom serve` writes with: readable lines on a terminal, one JSON object per line
 * elsewhere (a pipe, a file, a log collector), or whichever `--log-format` asks for.
 * @module
 */
import pino, { type DestinationStream, type Logger } from "pino";
import type { LogFormat, LogLevel } from "../core/config.js";

export interface ServerLoggerOptions {
  level: LogLevel;
  /** Null: pretty when `stdout` is a terminal, JSON otherwise. */
  format: LogFormat | null;
  /** Only its `isTTY` is read: the logs go to `destination`. */
  stdout?: { isTTY?: boolean };
  /** Where the lines go; by default file descriptor 1, written synchronously. */
  destination?: DestinationStream;
}

/**
 * Fields some log calls carry under pino's own key names: the scheduler logs the level an app's
 * runner logged at and the runner's pid, the runner API a remote runner's hostname.
 */
const RENAMED: Readonly<Record<string, string>> = { level: "app_level", pid: "runner_pid", hostname: "runner_hostname" };
const SHADOWING = Object.keys(RENAMED);

export function resolveLogFormat(format: LogFormat | null, stdout: { isTTY?: boolean } = process.stdout): LogFormat {
  return format ?? (stdout.isTTY === true ? "pretty" : "json");
}

/**
 * pino-pretty's formatter run in this thread on each line, written synchronously: unlike a
 * transport (a worker thread) or pino-pretty's own stream (asynchronous), nothing is left
 * unwritten when the process exits or crashes, and no worker has to start before the server does.
 */
async function prettyDestination(out: DestinationStream): Promise<DestinationStream> {
  // Loaded only when asked for, so JSON logging (servers, CI) does not pay for it at start-up.
  const { prettyFactory } = await import("pino-pretty");
  const pretty = prettyFactory({
    // The time of day is enough on a terminal; pid and hostname are the same on every line.
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname",
    // One line per entry, fields as compact JSON after the message; error stacks still get their lines.
    singleLine: true,
  });
  return { write: (line: string) => out.write(pretty(line)) };
}

export async function createServerLogger(options: ServerLoggerOptions): Promise<Logger> {
  const format = resolveLogFormat(options.format, options.stdout);
  const pinoOptions: pino.LoggerOptions = {
    level: options.level,
    formatters: {
      // Left as they are, these fields would repeat pino's own keys in the same JSON object, and JSON
      // readers (pino-pretty too) keep the last one: a runner's line would read as level "STDERR",
      // and its pid or hostname would pass for the server's.
      log: (object) => {
        if (!SHADOWING.some((key) => key in object)) return object;
        const out: Record<string, unknown> = {};
        for (const [key, value] of Object.entries(object)) out[RENAMED[key] ?? key] = value;
        return out;
      },
    },
  };
  // What pino itself would write to by default; synchronous, so no line is lost at exit.
  const out = options.destination ?? pino.destination({ fd: 1, sync: true });
  return pino(pinoOptions, format === "pretty" ? await prettyDestination(out) : out);
}
