/**
 * Probe process: imports each app module given on the command line and prints their manifests as
 * one JSON line on stdout. The gateway runs it at start so that it never imports app code itself.
 * @module
 */
import { buildManifest, importApp } from "./app-loader.js";
import type { ProbeReply } from "./protocol.js";

async function probe(modulePath: string): Promise<ProbeReply> {
  try {
    const app = await importApp(modulePath);
    const { modulePath: _ignored, ...manifest } = await buildManifest(app, modulePath);
    return { ok: true, manifest };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
  }
}

const replies: ProbeReply[] = [];
for (const modulePath of process.argv.slice(2)) replies.push(await probe(modulePath));
process.stdout.write(`${JSON.stringify(replies)}\n`, () => process.exit(0));
