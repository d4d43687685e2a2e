/**
 * `darkroom tenants list|show|set`, over the admin-only `/v1/tenants` routes; and the limit flags
 * that `tenants set` and `keys create` share.
 * @module
 */
import { parseArgs } from "node:util";
import { table } from "./format.js";
import { api, CLIENT_OPTIONS, CliError, clientOptions, EXIT, printJson } from "./http.js";

export const LIMIT_FLAGS_USAGE = `Limits (a flag left out is no limit):
  --max-concurrency N   requests running at once; more wait in the queue
  --rpm N               requests per minute; past it, 429 with Retry-After
  --apps a,b            the only apps that may be called: ids (darkroom/echo) or owners (darkroom/*)
  --max-queued N        requests waiting at once; past it, 429
  --monthly-budget X    spend per calendar month (UTC); once spent, 403
`;

export const TENANTS_USAGE = `Usage:
  darkroom tenants list [--json]
  darkroom tenants show <name> [--json]
  darkroom tenants set <name> [--weight W] [limits] [--json]

A tenant groups keys ('darkroom keys create --tenant NAME'): they share the queue as one, by its
weight (a number above 0, at most 1000; default 1), and are held to its limits as well as their own.
'set' replaces the tenant's settings: what it leaves out goes back to weight 1 and no limit.

${LIMIT_FLAGS_USAGE}`;

/** The limit flags, for `util.parseArgs`. */
export const LIMIT_OPTIONS = {
  "max-concurrency": { type: "string" },
  rpm: { type: "string" },
  apps: { type: "string" },
  "max-queued": { type: "string" },
  "monthly-budget": { type: "string" },
} as const;

type LimitFlags = { [K in keyof typeof LIMIT_OPTIONS]?: string | undefined };

/** Limits as the API shows them (docs/api.md, Tenants and limits). */
export interface LimitsView {
  max_concurrency: number | null;
  requests_per_minute: number | null;
  apps: string[] | null;
  monthly_budget: number | null;
  max_queued: number | null;
}

interface TenantView {
  name: string;
  weight: number;
  limits: LimitsView;
  keys: number;
  configured: boolean;
  created_at: string | null;
  updated_at: string | null;
}

function positiveInteger(flag: string, value: string): number {
  // Checked here: a value JSON cannot carry (NaN) would reach the server as null, which is no limit.
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new CliError(`--${flag} must be a whole number above 0, got '${value}'`, EXIT.USAGE);
  return Number(value);
}

function nonNegativeNumber(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0) throw new CliError(`--${flag} must be a number of 0 or more, got '${value}'`, EXIT.USAGE);
  return n;
}

/** The `limits` body the flags ask for; undefined when none was given. */
export function limitsFromFlags(flags: LimitFlags): Record<string, unknown> | undefined {
  const limits: Record<string, unknown> = {};
  if (flags["max-concurrency"] !== undefined) limits["max_concurrency"] = positiveInteger("max-concurrency", flags["max-concurrency"]);
  if (flags.rpm !== undefined) limits["requests_per_minute"] = positiveInteger("rpm", flags.rpm);
  if (flags.apps !== undefined) limits["apps"] = flags.apps.split(",").map((a) => a.trim()).filter(Boolean);
  if (flags["max-queued"] !== undefined) limits["max_queued"] = positiveInteger("max-queued", flags["max-queued"]);
  if (flags["monthly-budget"] !== undefined) limits["monthly_budget"] = nonNegativeNumber("monthly-budget", flags["monthly-budget"]);
  return Object.keys(limits).length > 0 ? limits : undefined;
}

/** `rpm=60 apps=darkroom/*` for a table cell; `-` when no limit is set. */
export function limitsSummary(limits: LimitsView): string {
  const parts: string[] = [];
  if (limits.requests_per_minute !== null) parts.push(`rpm=${limits.requests_per_minute}`);
  if (limits.max_concurrency !== null) parts.push(`concurrency=${limits.max_concurrency}`);
  if (limits.max_queued !== null) parts.push(`queued=${limits.max_queued}`);
  if (limits.monthly_budget !== null) parts.push(`budget=${limits.monthly_budget}`);
  if (limits.apps !== null) parts.push(`apps=${limits.apps.join(",") || "(none)"}`);
  return parts.length > 0 ? parts.join(" ") : "-";
}

function tenantText(t: TenantView): string {
  const rows: [string, string][] = [
    ["weight", String(t.weight)],
    ["active keys", String(t.keys)],
    ["max concurrency", String(t.limits.max_concurrency ?? "-")],
    ["requests/minute", String(t.limits.requests_per_minute ?? "-")],
    ["apps", t.limits.apps === null ? "-" : t.limits.apps.join(", ") || "(none)"],
    ["max queued", String(t.limits.max_queued ?? "-")],
    ["monthly budget", String(t.limits.monthly_budget ?? "-")],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  const heading = `Tenant ${t.name}${t.configured ? "" : " (not configured: defaults)"}\n`;
  return heading + rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}\n`).join("");
}

export async function tenantsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...CLIENT_OPTIONS, ...LIMIT_OPTIONS, weight: { type: "string" } },
  });
  const [sub, name] = positionals;
  const print = (value: unknown, text: string): void => {
    if (values.json) printJson(value);
    else process.stdout.write(text);
  };
  const route = (tenant: string): string => `/v1/tenants/${encodeURIComponent(tenant)}`;
  switch (sub) {
    case "list":
    case "ls": {
      const { tenants } = await api<{ tenants: TenantView[] }>(clientOptions(values), "GET", "/v1/tenants");
      const rows = tenants.map((t) => [t.name, String(t.weight), String(t.keys), limitsSummary(t.limits)]);
      print(tenants, table(["NAME", "WEIGHT", "KEYS", "LIMITS"], rows));
      return EXIT.OK;
    }
    case "show": {
      if (!name) throw new CliError("usage: darkroom tenants show <name>", EXIT.USAGE);
      const tenant = await api<TenantView>(clientOptions(values), "GET", route(name));
      print(tenant, tenantText(tenant));
      return EXIT.OK;
    }
    case "set": {
      if (!name) throw new CliError("usage: darkroom tenants set <name> [--weight W] [limits]", EXIT.USAGE);
      const body: Record<string, unknown> = {};
      if (values.weight !== undefined) {
        const weight = Number(values.weight);
        if (values.weight.trim() === "" || !Number.isFinite(weight)) throw new CliError(`--weight must be a number, got '${values.weight}'`, EXIT.USAGE);
        body["weight"] = weight;
      }
      const limits = limitsFromFlags(values);
      if (limits) body["limits"] = limits;
      const tenant = await api<TenantView>(clientOptions(values), "PUT", route(name), body);
      print(tenant, `Set tenant ${tenant.name}: weight ${tenant.weight}, limits ${limitsSummary(tenant.limits)}.\n`);
      return EXIT.OK;
    }
    default:
      throw new CliError(sub ? `unknown tenants command '${sub}'\n\n${TENANTS_USAGE}` : TENANTS_USAGE, EXIT.USAGE);
  }
}
