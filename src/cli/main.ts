/**
 * The `darkroom` command line. Commands load lazily: the client commands never pay for the
 * server's imports (Fastify, SQLite, the scheduler), which roughly halves their start-up time.
 * @module
 */
import { readFileSync } from "node:fs";
import { CliError, EXIT } from "./http.js";

const USAGE = `darkroom — self-hosted generative media platform (fal-compatible)

Usage:
  darkroom serve [--port 8787] [--host 127.0.0.1] [--data-dir ./.darkroom] [--apps a.ts,b.ts] [--only id,id]
  darkroom run <owner/alias[/path]> [key=value ...] [--input JSON | --input-file F] [--out DIR] [--json]
  darkroom run path/app.py[::Class] [--app-id ID] [--port N | --url URL]   serve a Python (fal) app file, restarted on change
  darkroom apps list | show <owner/alias>
  darkroom requests list [--app A] [--status S] [--limit N] | show <id> | cancel <id>
  darkroom keys create [--name NAME] [--scope api|admin] [--tenant NAME] [limits] | list | revoke <id>
  darkroom tenants list | show <name> | set <name> [--weight W] [limits]
  darkroom usage [--since T] [--until T] [--app ID,...] [--tenant NAME] [--timeframe TF] [--csv]
  darkroom runner --gateway URL --token T --app PATH|APP_ID | token --app APP_ID
  darkroom models pull <source> [--name N] [--revision R] | list | show <name> | rm <name>

'darkroom <command> --help' describes a command.

Client commands talk to --url / DARKROOM_URL (default http://127.0.0.1:8787) with DARKROOM_KEY or
FAL_KEY; without one they use the admin key saved in --data-dir (./.darkroom). --json prints JSON.

Exit codes: 0 ok, 1 request failed or refused, 2 usage error, 3 server unreachable or key refused,
124 run --timeout passed, 130 interrupted (the request was cancelled).
`;

// Kept here rather than in serve.ts, whose imports start the whole server stack.
const SERVE_USAGE = `Usage: darkroom serve [options]

  --port N            listen port (default $PORT or 8787; 0 picks a free one)
  --host H            listen address (default $DARKROOM_HOST or 127.0.0.1)
  --data-dir DIR      database, files and secrets (default $DARKROOM_DATA_DIR or ./.darkroom)
  --apps a.ts,b.ts    extra app modules, besides the built-ins
  --only id,id        serve only these app ids
  --public-url URL    base of the absolute URLs the server returns (behind a proxy)
  --files-url URL     serve stored files from this origin of their own (docs/security.md)
  --trust-proxy P     take the caller's address from X-Forwarded-For: true, hops, or proxy CIDRs
  --allow-hosts LIST  SSRF exceptions for input URLs and webhooks
  --log-level L       fatal, error, warn, info, debug, trace or silent (default info)
  --log-format F      pretty (readable lines) or json (default: pretty on a terminal, json otherwise)
  --database-url URL  postgres://… to keep the queue in PostgreSQL (default: SQLite in --data-dir)
  --storage-url URL   file:///path or s3://bucket/prefix (default: <data-dir>/files)
  --local-runners B   false: start no runners here; serve remote runners ('darkroom runner') only
  --spare-runners N   runner processes kept started for the next app that needs one (default 1, 0: off)
  --parallel-starts N runners of one app starting at once (default: the cores less one, at least 1)
  --builtin-apps B    false: load only the --apps modules, not the built-in apps (nor their example workflows)
  --workflows-dir DIR register the workflows in DIR/<owner>/<name>.json at start (docs/workflows.md)
  --openai-aliases L  OpenAI model names for apps, name=owner/app,… (docs/api.md, OpenAI)
  --app-knobs SPEC    override apps' scaling knobs, e.g. 'darkroom/ocr:max_runners=1;*:keep_alive=30'
  --pricing FILE      prices per app and endpoint, JSON (docs/pricing-and-usage.md)

See docs/api.md#configuration for the environment variables.
`;

interface Command {
  usage: () => Promise<string>;
  run: (argv: string[]) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  serve: {
    usage: async () => SERVE_USAGE,
    run: async (argv) => (await import("./serve.js")).serveCommand(argv),
  },
  run: {
    usage: async () => `${(await import("./run.js")).RUN_USAGE}\n${(await import("./dev-run.js")).DEV_RUN_USAGE}`,
    // `darkroom run app.py::Class` serves a Python app file (as `fal run`); an app id calls one.
    run: async (argv) => ((await import("./dev-run.js")).isDevRunTarget(argv[0]) ? (await import("./dev-run.js")).devRunCommand(argv) : (await import("./run.js")).runCommand(argv)),
  },
  apps: {
    usage: async () => (await import("./apps.js")).APPS_USAGE,
    run: async (argv) => (await import("./apps.js")).appsCommand(argv),
  },
  requests: {
    usage: async () => (await import("./requests.js")).REQUESTS_USAGE,
    run: async (argv) => (await import("./requests.js")).requestsCommand(argv),
  },
  runner: {
    usage: async () => (await import("./runner.js")).RUNNER_USAGE,
    run: async (argv) => (await import("./runner.js")).runnerCommand(argv),
  },
  keys: {
    usage: async () => (await import("./keys.js")).KEYS_USAGE,
    run: async (argv) => (await import("./keys.js")).keysCommand(argv),
  },
  tenants: {
    usage: async () => (await import("./tenants.js")).TENANTS_USAGE,
    run: async (argv) => (await import("./tenants.js")).tenantsCommand(argv),
  },
  usage: {
    usage: async () => (await import("./usage.js")).USAGE_COMMAND_USAGE,
    run: async (argv) => (await import("./usage.js")).usageCommand(argv),
  },
  models: {
    usage: async () => (await import("./models.js")).MODELS_USAGE,
    run: async (argv) => (await import("./models.js")).modelsCommand(argv),
  },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

/** `util.parseArgs` reports bad flags as TypeErrors with ERR_PARSE_ARGS_* codes. */
function isParseArgsError(err: unknown): err is Error {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === "string" && code.startsWith("ERR_PARSE_ARGS_");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(USAGE);
    return EXIT.USAGE;
  }
  if (name === "help" || name === "--help" || name === "-h") {
    const topic = rest[0] ? COMMANDS[rest[0]] : undefined;
    process.stdout.write(topic ? await topic.usage() : USAGE);
    return EXIT.OK;
  }
  if (name === "--version" || name === "-v" || name === "version") {
    process.stdout.write(`${version()}\n`);
    return EXIT.OK;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`error: unknown command '${name}'\n\n${USAGE}`);
    return EXIT.USAGE;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(await command.usage());
    return EXIT.OK;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (isParseArgsError(err)) throw new CliError(`${err.message}\n\n${await command.usage()}`, EXIT.USAGE);
    throw err;
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof CliError)) throw err;
  process.stderr.write(`error: ${err.message}\n`);
  process.exitCode = err.exitCode;
}
