/**
 * `darkroom keys create|list|revoke`
 * @module
 */
import { parseArgs } from "node:util";
import { api, CliError, clientOptions } from "./http.js";

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
    options: {
      url: { type: "string" },
      "data-dir": { type: "string" },
      name: { type: "string" },
      scope: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const client = clientOptions(values);
  const [sub, id] = positionals;
  const print = (value: unknown, text: string): void => {
    process.stdout.write(values.json ? `${JSON.stringify(value, null, 2)}\n` : text);
  };
  switch (sub) {
    case "create": {
      const created = await api<KeyView>(client, "POST", "/v1/keys", { name: values.name ?? "api key", scope: values.scope ?? "api" });
      print(created, `Created ${created.scope} key ${created.id} (${created.name}).\nKey (shown once, store it now):\n${created.key}\n`);
      return 0;
    }
    case "list": {
      const { keys } = await api<{ keys: KeyView[] }>(client, "GET", "/v1/keys");
      const rows = keys.map((k) => `${k.id}\t${k.scope}\t${k.revoked_at ? "revoked" : "active"}\t${k.name}\t${k.last_used_at ?? "never used"}`);
      print(keys, `ID\tSCOPE\tSTATE\tNAME\tLAST USED\n${rows.join("\n")}\n`);
      return 0;
    }
    case "revoke": {
      if (!id) throw new CliError("usage: darkroom keys revoke <id>", 2);
      const result = await api<unknown>(client, "DELETE", `/v1/keys/${encodeURIComponent(id)}`);
      print(result, `Revoked ${id}.\n`);
      return 0;
    }
    default:
      throw new CliError("usage: darkroom keys create [--name N] [--scope api|admin] | list | revoke <id>", 2);
  }
}
