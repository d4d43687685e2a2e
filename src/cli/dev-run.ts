/**
 * `darkroom run path/app.py[::Class]`: fal's `fal run` on Darkroom, for developing a Python app (a
 * fal app or a darkroom_runner one). It starts a gateway on this machine (or uses `--url`'s), serves
 * the file with a Python runner, prints where to call it, and restarts the runner whenever the file
 * changes. Ctrl-C stops the runner and the gateway.
 * @module
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, unwatchFile, watchFile } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { api, CLIENT_OPTIONS, CliError, clientOptions, EXIT } from "./http.js";

export const DEV_RUN_USAGE = `Usage: darkroom run path/app.py[::Class] [--app-id owner/name] [--port N] [--url URL] [--python PY]

Serves a Python app file for development, as 'fal run' does: a gateway on this machine (or the one
at --url), a Python runner for the app, and a new runner whenever the file changes. The app is a
fal app (class MyApp(fal.App)) or a darkroom_runner app. Ctrl-C stops it all.

Options:
      --app-id ID     the app's id (owner/name), in place of the one it declares
      --python PY     the Python to run it with (default $PYTHON, else python3)
      --url URL       use the gateway at URL (an admin key in DARKROOM_KEY or the saved one)
                      instead of starting one here
      --port N        the port of the gateway started here (default 8787; 0: any free one)
      --host H        its address (default 127.0.0.1)
      --data-dir DIR  its data folder (default .darkroom)
`;

/** Whether `darkroom run`'s argument names a Python app file rather than an app id to call. */
export function isDevRunTarget(arg: string | undefined): boolean {
  return arg !== undefined && /\.py(::[A-Za-z_][A-Za-z0-9_]*)?$/.test(arg);
}

/** The `python/` folder of this checkout: the runner and the fal package. */
const PYTHON_DIR = fileURLToPath(new URL("../../python/", import.meta.url));
/** How long a runner told to stop may finish what it holds. */
const RESTART_GRACE_S = 5;

interface Served {
  url: string;
  token: string;
  stop: () => Promise<void>;
}

export async function devRunCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...CLIENT_OPTIONS, "app-id": { type: "string" }, python: { type: "string" }, port: { type: "string" }, host: { type: "string" } },
  });
  const spec = positionals[0];
  if (!spec || positionals.length > 1 || !isDevRunTarget(spec)) throw new CliError(DEV_RUN_USAGE, EXIT.USAGE);
  const file = path.resolve(spec.split("::")[0] as string);
  if (!existsSync(file)) throw new CliError(`app file not found: ${file}`, EXIT.USAGE);
  const python = values.python ?? process.env["PYTHON"] ?? "python3";
  const env = { ...process.env, PYTHONPATH: [PYTHON_DIR, process.env["PYTHONPATH"]].filter(Boolean).join(path.delimiter), PYTHONUNBUFFERED: "1" };
  const appArgs = ["--app", spec, ...(values["app-id"] ? ["--app-id", values["app-id"]] : [])];

  const appId = manifestOf(python, appArgs, env).id;
  const served = values.url ? await useGateway(values, appId) : await startGateway(values, appId);
  process.stderr.write(
    `\n  Serving ${appId} from ${path.relative(process.cwd(), file) || file}\n` +
      `    POST ${served.url}/run/${appId}   (or the queue: ${served.url}/queue/${appId})\n` +
      `    Playground: ${served.url}/app?id=${encodeURIComponent(appId)}\n` +
      `  The runner restarts when the file changes; Ctrl-C stops.\n\n`,
  );

  let runner: ChildProcess | null = null;
  let stopping = false;
  const start = (): void => {
    // --parent-pid: should this command die without stopping it (SIGKILL), the runner drains and exits.
    const child = spawn(python, ["-m", "darkroom_runner", "--gateway", served.url, "--token", served.token, "--parent-pid", String(process.pid), "--grace", String(RESTART_GRACE_S), ...appArgs], { env, stdio: ["ignore", "inherit", "inherit"] });
    child.once("exit", (code, signal) => {
      if (runner === child) runner = null;
      if (!stopping && !child.killed) process.stderr.write(`\n  The runner exited (${signal ?? `code ${code}`}): fix the file, it restarts when it changes.\n`);
    });
    runner = child;
  };
  const stopRunner = async (): Promise<void> => {
    const child = runner;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM"); // the runner drains: what it holds finishes or goes back to the queue
    const forced = setTimeout(() => child.kill("SIGKILL"), (RESTART_GRACE_S + 2) * 1000);
    await exited;
    clearTimeout(forced);
  };

  start();
  let restarting: Promise<void> | null = null;
  // Polled rather than fs.watch: editors that save by replacing the file end a watch on it.
  watchFile(file, { interval: 300 }, (now, before) => {
    if (stopping || now.mtimeMs === before.mtimeMs || restarting) return;
    restarting = (async () => {
      process.stderr.write(`\n  ${path.basename(file)} changed: restarting the runner\n`);
      await stopRunner();
      if (!stopping) start();
    })().finally(() => (restarting = null));
  });

  await new Promise<void>((resolve) => {
    const shutdown = (): void => {
      stopping = true;
      unwatchFile(file);
      void (async () => {
        await restarting;
        await stopRunner();
        await served.stop();
        resolve();
      })();
    };
    process.once("SIGINT", shutdown);
    process.once("SIGTERM", shutdown);
  });
  return 0;
}

/** The app's manifest as its runner would register it: its id, and whether the file loads at all. */
function manifestOf(python: string, appArgs: string[], env: NodeJS.ProcessEnv): { id: string } {
  const probe = spawnSync(python, ["-m", "darkroom_runner", "--manifest", ...appArgs], { env, encoding: "utf8" });
  if (probe.error) throw new CliError(`cannot run ${python}: ${probe.error.message}`, EXIT.USAGE);
  if (probe.status !== 0) throw new CliError(`the app does not load:\n${probe.stderr.trim()}`, EXIT.FAILED);
  try {
    const manifest = JSON.parse(probe.stdout) as { id?: unknown };
    if (typeof manifest.id === "string") return { id: manifest.id };
  } catch {
    // reported below
  }
  throw new CliError(`the app's manifest is not readable: ${probe.stdout.slice(0, 300)}`, EXIT.FAILED);
}

async function useGateway(values: { url?: string | undefined; "data-dir"?: string | undefined }, appId: string): Promise<Served> {
  const client = clientOptions(values);
  const minted = await api<{ token: string }>(client, "POST", "/v1/runner-tokens", { apps: [appId] });
  return { url: client.url, token: minted.token, stop: async () => undefined };
}

async function startGateway(values: { port?: string | undefined; host?: string | undefined; "data-dir"?: string | undefined }, appId: string): Promise<Served> {
  const { loadConfig } = await import("../core/config.js");
  const flags = Object.fromEntries(Object.entries({ port: values.port, host: values.host, "data-dir": values["data-dir"] }).filter(([, v]) => v !== undefined)) as Record<string, string>;
  let config;
  try {
    config = loadConfig(flags);
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err), EXIT.USAGE);
  }
  const { startPlatform } = await import("../platform.js");
  const { createServerLogger } = await import("./server-logger.js");
  const platform = await startPlatform(config, { logger: await createServerLogger({ level: config.logLevel === "info" ? "warn" : config.logLevel, format: config.logFormat }) });
  process.stderr.write(`\n  Darkroom is up: the API and the Playground at ${platform.url}/\n`);
  if (platform.generatedAdminKey) {
    process.stderr.write(`\n  Admin key (shown once, also saved to ${platform.adminKeyFile}):\n\n    ${platform.generatedAdminKey}\n\n  export FAL_KEY=${platform.generatedAdminKey}\n`);
  }
  return { url: platform.url, token: platform.issueRunnerToken([appId]), stop: () => platform.stop(RESTART_GRACE_S * 1000) };
}
