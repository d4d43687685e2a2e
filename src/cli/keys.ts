/**
 * `darkroom keys create|list|revoke`, over the admin-only `/v1/keys` routes.
 * @module
 */
import { parseArgs } from "node:util";
import { table } from "./format.js";
import { api, CLIENT_OPTIONS, CliError, clientOptions, EXIT, printJson } from "./http.js";
import { LIMIT_FLAGS_USAGE, LIMIT_OPTIONS, limitsFromFlags, limitsSummary, type LimitsView } from "./tenants.js";

export const KEYS_USAGE = `Usage:
  darkroom keys create [--name NAME] [--scope api|admin] [--tenant NAME] [limits] [--json]
  darkroom keys list [--json]
  darkroom keys revoke <id> [--json]

A key created without --tenant is a tenant of its own. A tenant named here needs no creating: until
'darkroom tenants set' configures it, it has weight 1 and no limits. The key's limits and its
tenant's both hold (the stricter wins).

${LIMIT_FLAGS_USAGE}`;

interface KeyView {
  id: string;
  name: string;
  scope: string;
  tenant: string;
  limits: LimitsView;
  created_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
  key?: string;
}

export async function keysCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...CLIENT_OPTIONS, ...LIMIT_OPTIONS, name: { type: "string" }, scope: { type: "string" }, tenant: { type: "string" } },
  });
  const [sub, id] = positionals;
  const print = (value: unknown, text: string): void => {
    if (values.json) printJson(value);
    else process.stdout.write(text);
  };
  switch (sub) {
    case "create": {
      const scope = values.scope ?? "api";
      if (scope !== "api" && scope !== "admin") throw new CliError(`--scope must be api or admin, got '${scope}'`, EXIT.USAGE);
      const limits = limitsFromFlags(values);
      const body = { name: values.name ?? "api key", scope, ...(values.tenant !== undefined ? { tenant: values.tenant } : {}), ...(limits ? { limits } : {}) };
      const created = await api<KeyView>(clientOptions(values), "POST", "/v1/keys", body);
      const tenancy = created.tenant === created.id ? "its own tenant" : `tenant ${created.tenant}`;
      const limitsLine = limits ? `Limits: ${limitsSummary(created.limits)}.\n` : "";
      print(created, `Created ${created.scope} key ${created.id} (${created.name}) in ${tenancy}.\n${limitsLine}Key (shown once, store it now):\n${created.key}\n`);
      return EXIT.OK;
    }
    case "list":
    case "ls": {
      const { keys } = await api<{ keys: KeyView[] }>(clientOptions(values), "GET", "/v1/keys");
      const rows = keys.map((k) => [
        k.id,
        k.scope,
        k.revoked_at ? "revoked" : "active",
        k.name,
        // A key without a tenant is its own: its id again would only widen the table.
        k.tenant === k.id ? "(own)" : k.tenant,
        limitsSummary(k.limits),
        k.last_used_at ?? "never used",
      ]);
      print(keys, table(["ID", "SCOPE", "STATE", "NAME", "TENANT", "LIMITS", "LAST USED"], rows));
      return EXIT.OK;
    }
    case "revoke": {
      if (!id) throw new CliError("usage: darkroom keys revoke <id>", EXIT.USAGE);
      const result = await api<unknown>(clientOptions(values), "DELETE", `/v1/keys/${encodeURIComponent(id)}`);
      print(result, `Revoked ${id}.\n`);
      return EXIT.OK;
    }
    default:
      throw new CliError(sub ? `unknown keys command '${sub}'\n\n${KEYS_USAGE}` : KEYS_USAGE, EXIT.USAGE);
  }
}
