/**
 * `darkroom serve`: starts the platform and stops it cleanly on SIGINT/SIGTERM (drain, then exit).
 * @module
 */
import { parseArgs } from "node:util";
import { loadConfig, type Config } from "../core/config.js";
import { CliError, EXIT } from "./http.js";
import { createServerLogger } from "./server-logger.js";

export async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      "data-dir": { type: "string" },
      apps: { type: "string" },
      only: { type: "string" },
      "public-url": { type: "string" },
      "files-url": { type: "string" },
      "trust-proxy": { type: "string" },
      "allow-hosts": { type: "string" },
      "log-level": { type: "string" },
      "log-format": { type: "string" },
      "database-url": { type: "string" },
      "storage-url": { type: "string" },
      "local-runners": { type: "string" },
      "spare-runners": { type: "string" },
      "parallel-starts": { type: "string" },
      "builtin-apps": { type: "string" },
      "workflows-dir": { type: "string" },
      "openai-aliases": { type: "string" },
      "app-knobs": { type: "string" },
      pricing: { type: "string" },
    },
  });
  const flags = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Record<string, string>;
  let config: Config;
  try {
    config = loadConfig(flags);
  } catch (err) {
    // loadConfig only reads flags and variables: whatever it refuses is a usage error, not a crash.
    throw new CliError(err instanceof Error ? err.message : String(err), EXIT.USAGE);
  }
  // The server stack is imported only once the settings are known to be good, so a typo fails at once.
  const { startPlatform } = await import("../platform.js");
  const platform = await startPlatform(config, { logger: await createServerLogger({ level: config.logLevel, format: config.logFormat }) });
  const { logger } = platform;
  // The first large JSON body then finds its worker thread up (json-workers.ts).
  const { jsonWorkers } = await import("../gateway/json-workers.js");
  jsonWorkers.warm();
  logger.info({ url: platform.url, data_dir: config.dataDir, apps: platform.scheduler.apps.map((a) => a.id) }, "darkroom listening");
  process.stderr.write(`\n  Darkroom is up: the API and the Playground at ${platform.url}/\n`);
  if (platform.generatedAdminKey) {
    // Printed once, on the first start; afterwards it is only in the 0600 file.
    process.stderr.write(
      `\n  Admin key (shown once, also saved to ${platform.adminKeyFile}):\n\n    ${platform.generatedAdminKey}\n\n  export FAL_KEY=${platform.generatedAdminKey}\n\n`,
    );
  }
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string): void => {
      logger.info({ signal }, "shutting down: draining runners");
      platform.stop().then(resolve, (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        resolve();
      });
    };
    process.once("SIGINT", () => shutdown("SIGINT"));
    process.once("SIGTERM", () => shutdown("SIGTERM"));
  });
  return 0;
}
