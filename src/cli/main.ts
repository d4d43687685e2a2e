/**
 * The `darkroom` command line.
 * @module
 */
import { parseArgs } from "node:util";
import { keysCommand } from "./keys.js";
import { serveCommand } from "./serve.js";
import { CliError } from "./http.js";

const USAGE = `darkroom — self-hosted generative media platform (fal-compatible)

Usage:
  darkroom serve [--port 8787] [--host 127.0.0.1] [--data-dir ./.darkroom] [--apps a.ts,b.ts] [--only id,id]
  darkroom keys create [--name NAME] [--scope api|admin]
  darkroom keys list
  darkroom keys revoke <id>

Client commands talk to --url / DARKROOM_URL (default http://127.0.0.1:8787) with DARKROOM_KEY or
FAL_KEY; without one they use the admin key saved in --data-dir. Add --json for machine output.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve":
      return serveCommand(rest);
    case "keys":
      return keysCommand(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`Unknown command '${command}'.\n\n${USAGE}`);
      return 2;
  }
}

try {
  // Parse once early so that `--help` anywhere works.
  parseArgs({ args: process.argv.slice(2), strict: false });
  const code = await main(process.argv.slice(2));
  if (code !== 0) process.exitCode = code;
} catch (err) {
  if (err instanceof CliError) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else {
    throw err;
  }
}
