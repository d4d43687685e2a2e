/**
 * `darkroom usage`: usage and its cost per endpoint over a period, as a table, JSON or the server's
 * CSV export, from the admin-only `GET /v1/models/usage` (docs/pricing-and-usage.md).
 * @module
 */
import { parseArgs } from "node:util";
import type { UsageLineView } from "../pricing/usage-lines.js";
import { table } from "./format.js";
import { api, CLIENT_OPTIONS, CliError, clientOptions, EXIT, printJson, readReply, replyError, send, type ClientOptions } from "./http.js";

export const USAGE_COMMAND_USAGE = `Usage:
  darkroom usage [--since T] [--until T] [--app ID,...] [--tenant NAME] [--key ID]
                 [--timeframe minute|hour|day|week|month] [--csv] [--json]

What was used in [--since, --until) and what it cost, per app endpoint and price, at the prices in
effect when each request finished (docs/pricing-and-usage.md). Needs an admin key.

  --since T       start: a date (2025-01-01), a date-time (2025-01-01T12:00:00Z) or a span back from
                  now (90m, 24h, 7d); default 24h
  --until T       end, not included, in the same forms; default now
  --app ID,...    only these apps (owner/alias) or endpoints (owner/alias/path)
  --tenant NAME   only this tenant's requests
  --key ID        only this key's requests
  --timeframe TF  one line per endpoint and time bucket instead of one per endpoint
  --csv           the CSV export (one row per endpoint and bucket) instead of a table
  --json          the API's JSON answer
`;

interface UsageAnswer {
  time_series?: { bucket: string; results: UsageLineView[] }[];
  summary?: UsageLineView[];
  next_cursor: string | null;
  has_more: boolean;
  start: string;
  end: string;
  timeframe: string;
}

const SPAN_UNITS: Readonly<Record<string, number>> = { m: 60_000, h: 3_600_000, d: 86_400_000 };
const TIMEFRAMES = ["minute", "hour", "day", "week", "month"];

/** An ISO time for the API from a flag: a span back from `now` (`24h`), or a date or date-time. */
function timeFlag(flag: string, value: string, now: number): string {
  const span = /^(\d+)([mhd])$/.exec(value.trim());
  if (span) return new Date(now - Number(span[1]) * (SPAN_UNITS[span[2] ?? "h"] ?? 0)).toISOString();
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw new CliError(`--${flag} must be a date, a date-time or a span such as 24h or 7d, got '${value}'`, EXIT.USAGE);
  return new Date(ms).toISOString();
}

/** `12`, `0.5`, `3.145728`: at most 6 decimals, no trailing zeros. */
function amount(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toFixed(6)));
}

function lineCells(line: UsageLineView): string[] {
  return [
    line.endpoint_id,
    line.unit,
    amount(line.quantity),
    String(line.unit_price),
    `${amount(line.cost)} ${line.currency}`,
    String(line.request_count),
    `${amount(line.compute_seconds)} s`,
  ];
}

const LINE_HEADER = ["ENDPOINT", "UNIT", "QUANTITY", "UNIT PRICE", "COST", "REQUESTS", "COMPUTE"];

/** `Total: 4.75 USD over 9 requests`, one per currency. */
function totals(lines: readonly UsageLineView[]): string {
  const byCurrency = new Map<string, number>();
  for (const line of lines) byCurrency.set(line.currency, (byCurrency.get(line.currency) ?? 0) + line.cost);
  const requests = lines.reduce((n, l) => n + l.request_count, 0);
  const costs = [...byCurrency].map(([currency, cost]) => `${amount(cost)} ${currency}`).join(" + ") || "0";
  return `Total: ${costs} over ${requests} request${requests === 1 ? "" : "s"}\n`;
}

async function csvExport(client: ClientOptions, query: URLSearchParams): Promise<string> {
  query.set("format", "csv");
  const res = await send(client, "GET", `/v1/models/usage?${query}`, { headers: { accept: "text/csv" } });
  if (res.status !== 200) throw replyError(client, await readReply(res));
  return res.text();
}

/** Every bucket of the period: the API answers a page of buckets at a time. */
async function allBuckets(client: ClientOptions, query: URLSearchParams): Promise<UsageAnswer> {
  let answer = await api<UsageAnswer>(client, "GET", `/v1/models/usage?${query}`);
  const buckets = [...(answer.time_series ?? [])];
  while (answer.next_cursor) {
    query.set("cursor", answer.next_cursor);
    answer = await api<UsageAnswer>(client, "GET", `/v1/models/usage?${query}`);
    buckets.push(...(answer.time_series ?? []));
  }
  return { ...answer, time_series: buckets, next_cursor: null, has_more: false };
}

/** `out` is where results go (stdout; tests pass a stream of their own). */
export async function usageCommand(argv: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...CLIENT_OPTIONS,
      since: { type: "string" },
      until: { type: "string" },
      app: { type: "string", multiple: true },
      tenant: { type: "string" },
      key: { type: "string" },
      timeframe: { type: "string" },
      csv: { type: "boolean", default: false },
    },
  });
  if (positionals.length > 0) throw new CliError(`unexpected argument '${positionals[0]}'\n\n${USAGE_COMMAND_USAGE}`, EXIT.USAGE);
  if (values.timeframe !== undefined && !TIMEFRAMES.includes(values.timeframe)) {
    throw new CliError(`--timeframe must be one of ${TIMEFRAMES.join(", ")}, got '${values.timeframe}'`, EXIT.USAGE);
  }
  const now = Date.now();
  const query = new URLSearchParams({
    start: timeFlag("since", values.since ?? "24h", now),
    end: values.until !== undefined ? timeFlag("until", values.until, now) : new Date(now).toISOString(),
    // The period as given: buckets start at --since and the last ends at --until.
    bound_to_timeframe: "false",
  });
  for (const app of (values.app ?? []).flatMap((a) => a.split(",")).map((a) => a.trim()).filter(Boolean)) query.append("endpoint_id", app);
  if (values.tenant !== undefined) query.set("tenant", values.tenant);
  if (values.key !== undefined) query.set("key_id", values.key);
  if (values.timeframe !== undefined) query.set("timeframe", values.timeframe);
  const client = clientOptions(values);

  if (values.csv) {
    out.write(await csvExport(client, query));
    return EXIT.OK;
  }
  if (values.timeframe === undefined) {
    query.set("expand", "summary");
    const answer = await api<UsageAnswer>(client, "GET", `/v1/models/usage?${query}`);
    if (values.json) printJson(answer, out);
    else {
      const lines = answer.summary ?? [];
      out.write(`Usage from ${answer.start} to ${answer.end}\n`);
      out.write(lines.length > 0 ? table(LINE_HEADER, lines.map(lineCells)) : "No usage in this period.\n");
      out.write(totals(lines));
    }
    return EXIT.OK;
  }
  const answer = await allBuckets(client, query);
  if (values.json) printJson(answer, out);
  else {
    const rows = (answer.time_series ?? []).flatMap((b) => b.results.map((line) => [b.bucket, ...lineCells(line)]));
    out.write(`Usage from ${answer.start} to ${answer.end}, by ${answer.timeframe}\n`);
    out.write(rows.length > 0 ? table(["BUCKET", ...LINE_HEADER], rows) : "No usage in this period.\n");
    out.write(totals((answer.time_series ?? []).flatMap((b) => b.results)));
  }
  return EXIT.OK;
}
