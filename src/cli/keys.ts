/**
 * `darkroom keys create|list|revoke`, over the admin-only `/v1/keys` routes.
 * @module
 */
import { parseArgs } from "node:util";
import { table } from "./format.js";
import { api, CLIENT_OPTIONS, CliError, clientOptions, EXIT, printJson } from "./http.js";

export const KEYS_USAGE = `Usage:
  darkroom keys create [--name NAME] [--scope api|admin] [--json]
  darkroom keys list [--json]
  darkroom keys revoke <id> [--json]
`;

interface KeyView {
  id: string;
  name: string;
  scope: string;
  created_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
  key?: string;
}

export async function keysCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...CLIENT_OPTIONS, name: { type: "string" }, scope: { type: "string" } },
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
      const created = await api<KeyView>(clientOptions(values), "POST", "/v1/keys", { name: values.name ?? "api key", scope });
      print(created, `Created ${created.scope} key ${created.id} (${created.name}).\nKey (shown once, store it now):\n${created.key}\n`);
      return EXIT.OK;
    }
    case "list":
    case "ls": {
      const { keys } = await api<{ keys: KeyView[] }>(clientOptions(values), "GET", "/v1/keys");
      const rows = keys.map((k) => [k.id, k.scope, k.revoked_at ? "revoked" : "active", k.name, k.last_used_at ?? "never used"]);
      print(keys, table(["ID", "SCOPE", "STATE", "NAME", "LAST USED"], rows));
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
