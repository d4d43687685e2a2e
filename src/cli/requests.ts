/**
 * `darkroom requests list|show|cancel`, over `GET /v1/requests[/{id}]` and the queue's cancel.
 * @module
 */
import { parseArgs } from "node:util";
import { between, seconds, table } from "./format.js";
import { api, CLIENT_OPTIONS, CliError, clientOptions, EXIT, errorDetail, printJson, readReply, replyError, send, type ClientOptions } from "./http.js";

export const REQUESTS_USAGE = `Usage:
  darkroom requests list [--app owner/alias] [--status S] [--limit N] [--json]
      S: QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED
  darkroom requests show <request_id> [--json]
  darkroom requests cancel <request_id> [--json]
`;

const STATES = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"] as const;

interface RequestSummary {
  request_id: string;
  endpoint_id: string;
  app_id: string;
  state: string;
  status: string;
  mode: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  attempt: number;
  error: string | null;
  error_type: string | null;
}

interface RequestDetail {
  request_id: string;
  status: string;
  state: string;
  app_id: string;
  endpoint: string;
  queue_position?: number;
  logs: { message: string; level: string; timestamp: string }[] | null;
  progress?: { fraction?: number; step?: number; total?: number; message?: string };
  error?: string;
  error_type?: string;
  input: unknown;
  output: unknown;
  status_code: number | null;
  attempt: number;
  priority: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  billable_units: number | null;
  webhook_url: string | null;
}

async function getRequest(client: ClientOptions, id: string): Promise<RequestDetail> {
  const reply = await readReply(await send(client, "GET", `/v1/requests/${encodeURIComponent(id)}`));
  if (reply.status === 404) throw new CliError(`request ${id} not found (unknown id, or submitted with another key)`);
  if (reply.status < 200 || reply.status >= 300) throw replyError(client, reply);
  return reply.body as RequestDetail;
}

function timeCell(iso: string): string {
  // `2026-05-01 12:34:56`: sortable, and local enough for a terminal table.
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function durationCell(r: { created_at: string; started_at: string | null; finished_at: string | null }): string {
  const total = between(r.created_at, r.finished_at);
  return total === null ? "" : seconds(total);
}

/** The error type when the platform set one, else the start of the app's message. */
function errorCell(r: RequestSummary): string {
  const text = (r.error_type ?? r.error ?? "").split("\n")[0] ?? "";
  return text.length > 60 ? `${text.slice(0, 59)}…` : text;
}

function describeRequest(r: RequestDetail): string {
  const out: string[] = [];
  const facts: [string, string][] = [
    ["request", r.request_id],
    ["app", r.endpoint ? `${r.app_id} (endpoint ${r.endpoint})` : r.app_id],
    ["state", `${r.state}${r.status_code !== null ? ` (HTTP ${r.status_code})` : ""}`],
  ];
  if (r.state === "QUEUED" && r.queue_position !== undefined) facts.push(["queue", `position ${r.queue_position}`]);
  if (r.progress) {
    const p = r.progress;
    const fraction = p.fraction ?? (p.step !== undefined && p.total ? p.step / p.total : undefined);
    facts.push(["progress", [fraction !== undefined ? `${Math.round(fraction * 100)}%` : "", p.message ?? ""].filter(Boolean).join(" ")]);
  }
  if (r.error) facts.push(["error", `${r.error}${r.error_type ? ` (${r.error_type})` : ""}`]);
  facts.push(["priority", r.priority], ["attempt", String(r.attempt)], ["created", timeCell(r.created_at)]);
  const queued = between(r.created_at, r.started_at);
  if (r.started_at) facts.push(["started", `${timeCell(r.started_at)}${queued !== null ? `  (waited ${seconds(queued)})` : ""}`]);
  const ran = between(r.started_at, r.finished_at);
  const total = between(r.created_at, r.finished_at);
  if (r.finished_at) {
    const parts = [ran !== null ? `ran ${seconds(ran)}` : "", total !== null ? `total ${seconds(total)}` : ""].filter(Boolean).join(", ");
    facts.push(["finished", `${timeCell(r.finished_at)}${parts ? `  (${parts})` : ""}`]);
  }
  if (r.billable_units !== null) facts.push(["billed", `${r.billable_units} units`]);
  if (r.webhook_url) facts.push(["webhook", r.webhook_url]);
  for (const [label, value] of facts) out.push(`${label.padEnd(10)}${value}`);
  const logs = r.logs ?? [];
  out.push("", `Logs (${logs.length})`);
  for (const l of logs) out.push(`  ${timeCell(l.timestamp)} ${l.level.padEnd(5)} ${l.message.replace(/\n/g, "\n    ")}`);
  out.push("", "Input", indent(JSON.stringify(r.input, null, 2)));
  if (r.output !== null && r.output !== undefined) out.push("", r.state === "SUCCEEDED" ? "Result" : "Error body", indent(JSON.stringify(r.output, null, 2)));
  return `${out.join("\n")}\n`;
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((l) => `  ${l}`)
    .join("\n");
}

export async function requestsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...CLIENT_OPTIONS, app: { type: "string" }, status: { type: "string" }, limit: { type: "string" } },
  });
  const [sub, id, ...extra] = positionals;
  if (extra.length > 0) throw new CliError(`unexpected argument '${extra[0]}'\n\n${REQUESTS_USAGE}`, EXIT.USAGE);
  switch (sub) {
    case "list":
    case "ls": {
      if (id) throw new CliError(`unexpected argument '${id}'\n\n${REQUESTS_USAGE}`, EXIT.USAGE);
      const params = new URLSearchParams();
      if (values.app) params.set("app", values.app);
      if (values.status) {
        const state = values.status.toUpperCase();
        if (!(STATES as readonly string[]).includes(state)) throw new CliError(`--status must be one of ${STATES.join(", ")}, got '${values.status}'`, EXIT.USAGE);
        params.set("status", state);
      }
      if (values.limit) {
        const n = Number(values.limit);
        if (!Number.isInteger(n) || n < 1 || n > 500) throw new CliError(`--limit must be an integer from 1 to 500, got '${values.limit}'`, EXIT.USAGE);
        params.set("limit", String(n));
      }
      const client = clientOptions(values);
      const { requests } = await api<{ requests: RequestSummary[] }>(client, "GET", `/v1/requests?${params.toString()}`);
      if (values.json) {
        printJson(requests);
        return EXIT.OK;
      }
      if (requests.length === 0) {
        process.stdout.write("No requests.\n");
        return EXIT.OK;
      }
      process.stdout.write(
        table(
          ["REQUEST ID", "ENDPOINT", "STATE", "MODE", "CREATED", "DURATION", "ERROR"],
          requests.map((r) => [r.request_id, r.endpoint_id, r.state, r.mode, timeCell(r.created_at), durationCell(r), errorCell(r)]),
        ),
      );
      return EXIT.OK;
    }
    case "show": {
      if (!id) throw new CliError("usage: darkroom requests show <request_id>", EXIT.USAGE);
      const detail = await getRequest(clientOptions(values), id);
      if (values.json) printJson(detail);
      else process.stdout.write(describeRequest(detail));
      return EXIT.OK;
    }
    case "cancel": {
      if (!id) throw new CliError("usage: darkroom requests cancel <request_id>", EXIT.USAGE);
      const client = clientOptions(values);
      // The queue's cancel is addressed by app, which only the record knows.
      const { app_id: appId } = await getRequest(client, id);
      const reply = await readReply(await send(client, "PUT", `/queue/${appId}/requests/${encodeURIComponent(id)}/cancel`));
      if (values.json) printJson({ request_id: id, http_status: reply.status, ...(reply.body as object) });
      if (reply.status === 202) {
        if (!values.json) process.stdout.write(`Cancellation requested for ${id}.\n`);
        return EXIT.OK;
      }
      if (reply.status === 400) {
        if (!values.json) process.stderr.write(`error: request ${id} has already finished; nothing to cancel\n`);
        return EXIT.FAILED;
      }
      if (reply.status === 401 || reply.status === 403) throw replyError(client, reply);
      throw new CliError(`cannot cancel ${id} (HTTP ${reply.status}): ${errorDetail(reply.body)}`);
    }
    default:
      throw new CliError(sub ? `unknown requests command '${sub}'\n\n${REQUESTS_USAGE}` : REQUESTS_USAGE, EXIT.USAGE);
  }
}
