/**
 * Makes the secrets every gateway replica must share, in a new folder, for the
 * `darkroom-gateway-keys` Secret:
 *
 *   node --import tsx deploy/gateway-keys.ts ./gateway-keys
 *   kubectl -n darkroom create secret generic darkroom-gateway-keys --from-file=./gateway-keys
 *
 * A single gateway creates them in its data folder at first start; replicas that each did so would
 * refuse one another's tokens and signed file URLs, and publish different webhook keys.
 * @module
 */
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { TOKEN_SECRET_FILE, TokenService } from "../src/auth/tokens.js";
import { loadOrCreateSecret } from "../src/storage/signed-url.js";
import { SIGNING_KEYS_FILE, SigningKeys } from "../src/webhooks/signing-keys.js";

/** File name of the file-URL signing secret in the data folder (src/platform.ts). */
export const URL_SECRET_FILE = "url-secret";

export async function createGatewayKeys(dir: string): Promise<string[]> {
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new Error(`${dir} is not empty: pick a new folder, these keys must not be overwritten by accident`);
  // The same code paths a gateway takes at first start, so the formats cannot drift.
  await TokenService.open(dir);
  await SigningKeys.open(dir);
  loadOrCreateSecret(path.join(dir, URL_SECRET_FILE));
  return [TOKEN_SECRET_FILE, URL_SECRET_FILE, SIGNING_KEYS_FILE];
}

const target = process.argv[2];
if (process.argv[1] && path.basename(process.argv[1]) === "gateway-keys.ts") {
  if (!target) {
    process.stderr.write("usage: node --import tsx deploy/gateway-keys.ts OUT_DIR\n");
    process.exitCode = 2;
  } else {
    try {
      const files = await createGatewayKeys(path.resolve(target));
      process.stdout.write(`wrote ${files.join(", ")} to ${target}\nkubectl -n darkroom create secret generic darkroom-gateway-keys --from-file=${target}\n`);
    } catch (err) {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  }
}
