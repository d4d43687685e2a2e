/**
 * `darkroom runner`: serves one app from this machine for gateways elsewhere, over the runner
 * protocol's HTTP transport; and `darkroom runner token`, which mints the runner token it needs.
 * @module
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { modelManagerAt, modelsDir, pulledModelAppModule } from "../apps/text-to-image/pulled-model-apps.js";
import { api, CLIENT_OPTIONS, CliError, clientOptions, EXIT, printJson } from "./http.js";

export const RUNNER_USAGE = `Usage:
  darkroom runner --gateway URL[,URL...] --token TOKEN --app PATH|APP_ID [--slots N] [--id rr-...]
  darkroom runner token --app APP_ID[,APP_ID...] [--ttl SECONDS] [--json]

  runner            serve one app from this machine: register with a gateway, long-poll for work,
                    heartbeat, stream logs and progress, upload outputs. Several --gateway URLs
                    give failover. SIGINT/SIGTERM drain: held requests finish (up to 30 s) or go
                    back to the queue.
    --gateway URLS  gateway base URLs, comma-separated ($DARKROOM_GATEWAY)
    --token T       runner token from 'darkroom runner token' ($DARKROOM_RUNNER_TOKEN), or an admin key
    --app A         an app module (.ts/.js), a built-in app id such as darkroom/upscale, or
                    darkroom/<name> of a diffusion model pulled here (DARKROOM_MODELS_DIR)
    --slots N       requests held at once (default: the app's max_multiplexing)
    --id rr-...     a stable runner id (default: one from the gateway)

  runner token      mint a runner token (needs an admin key: --url, DARKROOM_KEY or the saved one)
    --app IDS       the app ids it may serve
    --ttl SECONDS   lifetime (default 1 day, at most 30 days); a running runner refreshes it
`;

/** A module path, the module of a built-in app named by its id (darkroom/<folder>), or the app of a pulled model. */
export function resolveAppModule(app: string): string {
  if (/\.(ts|js|mjs|mts)$/.test(app) || app.startsWith(".") || app.startsWith("/")) {
    const resolved = path.resolve(app);
    if (!existsSync(resolved)) throw new CliError(`app module not found: ${resolved}`, EXIT.USAGE);
    return resolved;
  }
  const match = /^darkroom\/([a-z0-9][a-z0-9._-]*)$/.exec(app);
  const module = match ? fileURLToPath(new URL(`../apps/${match[1]}/app.ts`, import.meta.url)) : null;
  if (module && existsSync(module)) return module;
  // darkroom/<name> of a model pulled on this machine (`darkroom models pull gateway:<name>`).
  if (match && existsSync(modelManagerAt(modelsDir()).manifestPath(match[1]!))) return pulledModelAppModule(match[1]!);
  throw new CliError(`--app must be a module path, a built-in app id or darkroom/<pulled model> (darkroom/...), got '${app}'`, EXIT.USAGE);
}

async function tokenCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { ...CLIENT_OPTIONS, app: { type: "string" }, ttl: { type: "string" } } });
  const apps = (values.app ?? "").split(",").map((a) => a.trim()).filter(Boolean);
  if (apps.length === 0) throw new CliError("darkroom runner token needs --app APP_ID[,APP_ID...]", EXIT.USAGE);
  const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
  if (ttl !== undefined && (!Number.isInteger(ttl) || ttl <= 0)) throw new CliError(`--ttl must be a positive number of seconds, got '${values.ttl}'`, EXIT.USAGE);
  const issued = await api<{ token: string; apps: string[]; expires_at: string }>(clientOptions(values), "POST", "/v1/runner-tokens", { apps, ...(ttl !== undefined ? { ttl_seconds: ttl } : {}) });
  if (values.json) printJson(issued);
  else process.stdout.write(`${issued.token}\n`);
  process.stderr.write(`runner token for ${issued.apps.join(", ")}, expires ${issued.expires_at}\n`);
  return EXIT.OK;
}

export async function runnerCommand(argv: string[]): Promise<number> {
  if (argv[0] === "token") return tokenCommand(argv.slice(1));
  const { values } = parseArgs({
    args: argv,
    options: {
      gateway: { type: "string" },
      token: { type: "string" },
      app: { type: "string" },
      slots: { type: "string" },
      id: { type: "string" },
      "allow-hosts": { type: "string" },
    },
  });
  const gateways = (values.gateway ?? process.env["DARKROOM_GATEWAY"] ?? "").split(",").map((g) => g.trim()).filter(Boolean);
  const token = values.token ?? process.env["DARKROOM_RUNNER_TOKEN"];
  if (gateways.length === 0 || !token || !values.app) throw new CliError(`darkroom runner needs --gateway, --token and --app\n\n${RUNNER_USAGE}`, EXIT.USAGE);
  for (const g of gateways) {
    if (!/^https?:\/\//.test(g)) throw new CliError(`--gateway must be http(s) URLs, got '${g}'`, EXIT.USAGE);
  }
  const slots = values.slots === undefined ? undefined : Number(values.slots);
  if (slots !== undefined && (!Number.isInteger(slots) || slots < 1 || slots > 64)) throw new CliError(`--slots must be 1 to 64, got '${values.slots}'`, EXIT.USAGE);
  const modulePath = resolveAppModule(values.app);

  // Loaded here, not at the top: `runner token` must not pay for the app runtime's imports.
  const { RemoteRunner } = await import("../runtime/remote-runner.js");
  const runner = new RemoteRunner({
    gateways,
    token,
    modulePath,
    ...(slots !== undefined ? { slots } : {}),
    ...(values.id ? { runnerId: values.id } : {}),
    allowHosts: values["allow-hosts"] ?? process.env["DARKROOM_ALLOW_HOSTS"] ?? "",
    log: (level, message) => process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase()} ${message}\n`),
  });
  try {
    await runner.start();
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err), EXIT.FAILED);
  }
  process.stderr.write(`runner ready: ${runner.runnerId}\n`);
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string): void => {
      process.stderr.write(`${signal}: draining (${runner.inFlight.length} in flight)\n`);
      void runner.stop(30_000).finally(resolve);
    };
    process.once("SIGINT", () => shutdown("SIGINT"));
    process.once("SIGTERM", () => shutdown("SIGTERM"));
  });
  return EXIT.OK;
}
