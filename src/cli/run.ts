/**
 * `darkroom run <app>[/<path>]`: submits through the queue, follows the status stream (queue
 * position, progress, logs) on stderr, prints the result and saves its files. Ctrl-C and
 * `--timeout` cancel the request on the server.
 * @module
 */
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { seconds } from "./format.js";
import { CLIENT_OPTIONS, CliError, clientOptions, EXIT, fieldErrors, errorDetail, isAbort, printJson, readReply, replyError, send, type ClientOptions } from "./http.js";
import { buildInput } from "./input.js";
import { downloadFiles, findFiles } from "./outputs.js";
import { createReporter, type LogLine, type ProgressInfo, type Reporter } from "./progress.js";
import { readSse } from "./sse.js";

export const RUN_USAGE = `Usage: darkroom run <owner/alias[/path]> [key=value ...] [options]

Input (merged in this order; later wins):
  -i, --input JSON        the input object
  -f, --input-file FILE   the input object from a JSON file ('-' reads stdin)
  key=value               one field; the value is parsed as JSON when it parses (3, true, [1,2],
                          {"a":1}, "007"), else taken as text. key=@path uploads a local file
                          and passes its URL.

Options:
  -o, --out DIR           where output files go (default ./darkroom-output/<request_id>/)
      --no-download       do not download output files
      --json              print only the result JSON on stdout
  -q, --quiet             no queue/progress/log lines on stderr
      --priority P        normal (default) or low
      --timeout S         give up after S seconds: cancel the request, exit 124
      --start-timeout S   the request must start within S seconds (x-fal-request-timeout)
      --no-wait           submit, print the request id, and exit
      --url URL           server (default $DARKROOM_URL or http://127.0.0.1:8787)
`;

/** `owner/alias[/path]`, optionally behind a fal namespace (`workflows/`, `comfy/`) that is ignored. */
export interface EndpointTarget {
  /** `owner/alias`: what status, result and cancel are addressed by. */
  appId: string;
  /** The submit path: the whole id, sub-path included. */
  submitPath: string;
}

export function parseEndpointId(id: string): EndpointTarget {
  const segments = id.split("/").filter((s) => s.length > 0);
  const offset = segments.length >= 3 && (segments[0] === "workflows" || segments[0] === "comfy") ? 1 : 0;
  const owner = segments[offset];
  const alias = segments[offset + 1];
  if (!owner || !alias) throw new CliError(`app id must look like owner/alias[/path], got '${id}'`, EXIT.USAGE);
  return { appId: `${owner}/${alias}`, submitPath: segments.map(encodeURIComponent).join("/") };
}

function positiveSeconds(flag: string, raw: string | undefined): number | null {
  if (raw === undefined) return null;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`${flag} must be a positive number of seconds, got '${raw}'`, EXIT.USAGE);
  return n;
}

interface StatusEvent {
  status: "IN_QUEUE" | "IN_PROGRESS" | "COMPLETED";
  request_id: string;
  queue_position?: number;
  logs?: LogLine[] | null;
  progress?: ProgressInfo;
  metrics?: { inference_time?: number | null };
  error?: string;
  error_type?: string;
}

/** How long the server may be gone while we wait before giving up (it may be restarting). */
const LOST_SERVER_MS = 60_000;

/**
 * Follows `status/stream?logs=1` until COMPLETED, reconnecting when the stream drops. Each
 * connection replays the log lines from the first one, so lines already shown are skipped by index.
 */
async function follow(client: ClientOptions, appId: string, requestId: string, reporter: Reporter, signal: AbortSignal): Promise<StatusEvent> {
  let logsShown = 0;
  let lostSince: number | null = null;
  const route = `/queue/${appId}/requests/${encodeURIComponent(requestId)}/status/stream?logs=1`;
  for (;;) {
    let res: Response;
    try {
      res = await send(client, "GET", route, { headers: { accept: "text/event-stream" }, signal });
    } catch (err) {
      if (!(err instanceof CliError) || err.exitCode !== EXIT.UNREACHABLE) throw err;
      lostSince ??= Date.now();
      if (Date.now() - lostSince > LOST_SERVER_MS) {
        throw new CliError(`${err.message}\nRequest ${requestId} may still be running: see 'darkroom requests show ${requestId}'.`, EXIT.UNREACHABLE);
      }
      await sleep(1000, undefined, { signal });
      continue;
    }
    if (!res.ok || !res.body) throw replyError(client, await readReply(res));
    lostSince = null;
    let received = 0;
    try {
      for await (const event of readSse(res.body)) {
        let status: StatusEvent;
        try {
          status = JSON.parse(event.data) as StatusEvent;
        } catch {
          continue;
        }
        if (status.status === "IN_QUEUE") reporter.queued(status.queue_position ?? 0);
        if (status.status === "IN_PROGRESS") reporter.running();
        for (const line of status.logs ?? []) {
          if (received++ >= logsShown) {
            reporter.log(line);
            logsShown = received;
          }
        }
        if (status.status === "IN_PROGRESS" && status.progress) reporter.progress(status.progress);
        if (status.status === "COMPLETED") return status;
      }
    } catch (err) {
      if (isAbort(err) || signal.aborted) throw err;
      // The stream broke (server restart, proxy timeout): reconnect below.
    }
    await sleep(500, undefined, { signal });
  }
}

async function cancelRequest(client: ClientOptions, appId: string, requestId: string, reporter: Reporter): Promise<void> {
  try {
    const reply = await readReply(
      await send(client, "PUT", `/queue/${appId}/requests/${encodeURIComponent(requestId)}/cancel`, { signal: AbortSignal.timeout(10_000) }),
    );
    if (reply.status === 202) reporter.info(`cancelled request ${requestId}`);
    else if (reply.status === 400) reporter.info(`request ${requestId} had already finished`);
    else reporter.info(`could not cancel request ${requestId}: ${errorDetail(reply.body)}`);
  } catch (err) {
    reporter.info(`could not cancel request ${requestId} (${err instanceof Error ? err.message : String(err)}); try 'darkroom requests cancel ${requestId}'`);
  }
}

function failureMessage(requestId: string, status: number, body: unknown, completed: StatusEvent): string {
  const errorType = (body as { error_type?: unknown } | null)?.error_type ?? completed.error_type;
  const type = typeof errorType === "string" ? ` ${errorType}` : "";
  if (status === 422) {
    const lines = fieldErrors((body as { detail?: unknown } | null)?.detail);
    if (lines.length > 0) return `request ${requestId} failed: invalid input (422):\n  ${lines.join("\n  ")}`;
  }
  return `request ${requestId} failed (HTTP ${status}${type}): ${errorDetail(body)}`;
}

function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative && !relative.startsWith("..") && !path.isAbsolute(relative) ? relative : file;
}

export async function runCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...CLIENT_OPTIONS,
      input: { type: "string", short: "i" },
      "input-file": { type: "string", short: "f" },
      out: { type: "string", short: "o" },
      "no-download": { type: "boolean", default: false },
      "no-wait": { type: "boolean", default: false },
      quiet: { type: "boolean", short: "q", default: false },
      priority: { type: "string" },
      timeout: { type: "string" },
      "start-timeout": { type: "string" },
    },
  });
  const [endpointId, ...assignments] = positionals;
  if (!endpointId) throw new CliError(`missing the app id\n\n${RUN_USAGE}`, EXIT.USAGE);
  const target = parseEndpointId(endpointId);
  const priority = values.priority ?? "normal";
  if (priority !== "normal" && priority !== "low") throw new CliError(`--priority must be normal or low, got '${priority}'`, EXIT.USAGE);
  const timeout = positiveSeconds("--timeout", values.timeout);
  const startTimeout = positiveSeconds("--start-timeout", values["start-timeout"]);
  const client = clientOptions(values);
  const reporter = createReporter(process.stderr, { quiet: values.quiet });

  let phase: "preparing" | "submitting" | "waiting" = "preparing";
  let stopped: "interrupt" | "timeout" | null = null;
  const controller = new AbortController();
  const stop = (reason: "interrupt" | "timeout"): void => {
    // A second Ctrl-C means "now": leave without waiting for the cancel call.
    if (stopped) process.exit(EXIT.INTERRUPTED);
    stopped = reason;
    if (phase === "preparing") {
      reporter.done();
      process.stderr.write(`${reason === "timeout" ? "timed out" : "interrupted"} before anything was submitted\n`);
      process.exit(reason === "timeout" ? EXIT.TIMEOUT : EXIT.INTERRUPTED);
    }
    // While submitting, the answer is awaited so that the request it creates can be cancelled.
    if (phase === "waiting") controller.abort();
  };
  const onSigint = (): void => stop("interrupt");
  process.on("SIGINT", onSigint);
  const timer = timeout !== null ? setTimeout(() => stop("timeout"), timeout * 1000) : null;

  try {
    const input = await buildInput(client, { input: values.input, inputFile: values["input-file"], assignments }, (file, url) =>
      reporter.info(`uploaded ${file} -> ${url}`),
    );

    phase = "submitting";
    const submitted = await readReply(
      await send(client, "POST", `/queue/${target.submitPath}`, {
        body: input,
        headers: {
          "x-fal-queue-priority": priority,
          ...(startTimeout !== null ? { "x-fal-request-timeout": String(startTimeout) } : {}),
        },
      }),
    );
    if (submitted.status === 404) {
      const detail = errorDetail(submitted.body);
      const hint = /^Application /.test(detail) ? ` on ${client.url}; see 'darkroom apps list'` : `; see 'darkroom apps show ${target.appId}'`;
      throw new CliError(`${detail}${hint}`);
    }
    if (submitted.status < 200 || submitted.status >= 300) throw replyError(client, submitted);
    const requestId = (submitted.body as { request_id: string }).request_id;

    if (values["no-wait"]) {
      if (values.json) printJson(submitted.body);
      else process.stdout.write(`${requestId}\n`);
      return EXIT.OK;
    }
    reporter.info(`submitted ${target.appId} request ${requestId}`);
    phase = "waiting";
    if (stopped) controller.abort();

    let completed: StatusEvent;
    try {
      completed = await follow(client, target.appId, requestId, reporter, controller.signal);
    } catch (err) {
      if (!stopped || !(isAbort(err) || controller.signal.aborted)) throw err;
      reporter.done();
      reporter.info(stopped === "timeout" ? `timed out after ${timeout} s; cancelling request ${requestId}` : `interrupted; cancelling request ${requestId}`);
      await cancelRequest(client, target.appId, requestId, reporter);
      return stopped === "timeout" ? EXIT.TIMEOUT : EXIT.INTERRUPTED;
    }
    reporter.done();
    // Done waiting: from here a Ctrl-C just ends the process (there is nothing left to cancel).
    process.off("SIGINT", onSigint);
    if (timer) clearTimeout(timer);

    const result = await readReply(await send(client, "GET", `/queue/${target.appId}/requests/${encodeURIComponent(requestId)}`));
    const took = completed.metrics?.inference_time;
    if (result.status < 200 || result.status >= 300) {
      throw new CliError(failureMessage(requestId, result.status, result.body, completed));
    }
    reporter.info(typeof took === "number" ? `completed in ${seconds(took)}` : "completed");

    printJson(result.body);
    if (values["no-download"]) return EXIT.OK;
    const refs = findFiles(result.body);
    const dir = values.out ?? path.join("darkroom-output", requestId);
    let saved;
    try {
      saved = await downloadFiles(refs, path.resolve(dir));
    } catch (err) {
      throw new CliError(`${err instanceof Error ? err.message : String(err)} (the request itself succeeded: ${requestId})`);
    }
    for (const s of saved) {
      const line = `saved ${s.ref.at} -> ${displayPath(s.file)} (${s.bytes} bytes)\n`;
      // --json keeps stdout to the result alone.
      if (values.json) {
        if (!values.quiet) process.stderr.write(line);
      } else {
        process.stdout.write(line);
      }
    }
    return EXIT.OK;
  } finally {
    reporter.done();
    process.off("SIGINT", onSigint);
    if (timer) clearTimeout(timer);
  }
}
