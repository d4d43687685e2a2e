/**
 * `darkroom models pull|list|show|rm`: works on the local data folder directly, no server needed.
 * @module
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { createModelManager, formatBytes, isModelError, type ModelManifest, type PullProgress } from "../models/index.js";
import { seconds, table } from "./format.js";
import { CliError, EXIT, printJson } from "./http.js";
import { renderBar } from "./progress.js";

export const MODELS_USAGE = `Usage:
  darkroom models pull <source> [--name N] [--revision R] [--layout diffusers-onnx|any] [--json]
  darkroom models list [--json]
  darkroom models show <name> [--json]
  darkroom models rm <name> [--json]

  <source>          a Hugging Face repository (org/name[@revision]), an https URL of one file
                    (append #sha256=<hex> to verify it), a local folder, or gateway:<name> (a
                    model another Darkroom gateway holds)
  --data-dir DIR    where models are kept (default $DARKROOM_DATA_DIR or ./.darkroom)

Environment: HF_TOKEN (private or gated repositories), HF_ENDPOINT (a Hub mirror),
DARKROOM_GATEWAY and DARKROOM_RUNNER_TOKEN (for gateway:<name>).
An interrupted pull resumes where it stopped when run again.
`;

const OPTIONS = {
  "data-dir": { type: "string" },
  json: { type: "boolean", default: false },
  name: { type: "string" },
  revision: { type: "string" },
  layout: { type: "string" },
} as const;

const CLEAR_LINE = "\r\x1b[2K";

function clock(s: number | null): string {
  if (s === null || !Number.isFinite(s)) return "--:--";
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = String(t % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** `[####------]  42%  1.20 GiB/2.85 GiB  48.2 MiB/s  0:35 left  unet/model.onnx (3/7)` */
export function progressLine(p: PullProgress, width = 80): string {
  const fraction = p.bytesTotal ? p.bytesDone / p.bytesTotal : null;
  const parts = [
    fraction === null ? "" : `${renderBar(fraction)} ${String(Math.round(fraction * 100)).padStart(3)}%`,
    p.bytesTotal === null ? formatBytes(p.bytesDone) : `${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}`,
    `${formatBytes(Math.round(p.rate))}/s`,
    `${clock(p.etaSeconds)} left`,
    p.file ? `${p.file} (${p.fileIndex}/${p.fileCount})` : "",
  ];
  const text = parts.filter(Boolean).join("  ");
  // A line wider than the terminal wraps, and \r then only rewinds its last row.
  return text.length > width - 1 ? text.slice(0, Math.max(width - 1, 20)) : text;
}

function progressPrinter(stream: NodeJS.WriteStream): { onProgress: (p: PullProgress) => void; onInfo: (text: string) => void; done: () => void } {
  if (stream.isTTY) {
    let live = false;
    return {
      onProgress: (p) => {
        live = true;
        stream.write(`${CLEAR_LINE}${progressLine(p, stream.columns || 80)}`);
      },
      onInfo: (text) => stream.write(`${live ? CLEAR_LINE : ""}${text}\n`),
      done: () => {
        if (live) stream.write(CLEAR_LINE);
        live = false;
      },
    };
  }
  // Pipes and CI logs: one line when a file starts, none for every chunk.
  let lastFile: string | null = null;
  return {
    onProgress: (p) => {
      if (!p.file || p.file === lastFile) return;
      lastFile = p.file;
      const total = p.bytesTotal === null ? "" : ` (${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)} so far)`;
      stream.write(`fetching ${p.file} [${p.fileIndex}/${p.fileCount}]${total}\n`);
    },
    onInfo: (text) => stream.write(`${text}\n`),
    done: () => undefined,
  };
}

function describe(m: ModelManifest, dir: string): string {
  const rows = m.files.map((f) => [f.path, formatBytes(f.size), f.sha256.slice(0, 16)]);
  return (
    `name:      ${m.name}\nsource:    ${m.source}\n` +
    (m.revision ? `revision:  ${m.revision}\n` : "") +
    `layout:    ${m.layout}\nsize:      ${formatBytes(m.totalBytes)}\npulled at: ${m.pulledAt}\nfolder:    ${dir}\n\n` +
    table(["PATH", "SIZE", "SHA256"], rows)
  );
}

function toCliError(err: unknown): unknown {
  if ((err as { name?: string } | null)?.name === "AbortError") return new CliError("interrupted; run the same pull again to resume", EXIT.INTERRUPTED);
  if (!isModelError(err)) return err;
  const usage = err.code === "ERR_MODEL_NAME_INVALID" || err.code === "ERR_MODEL_SOURCE_INVALID";
  return new CliError(err.message, usage ? EXIT.USAGE : EXIT.FAILED);
}

export async function modelsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  const [sub, arg] = positionals;
  const dataDir = path.resolve(values["data-dir"] ?? process.env["DARKROOM_DATA_DIR"] ?? "./.darkroom");
  const manager = createModelManager({ dataDir });
  const print = (value: unknown, text: string): void => {
    if (values.json) printJson(value);
    else process.stdout.write(text);
  };
  try {
    switch (sub) {
      case "pull": {
        if (!arg) throw new CliError(`usage: darkroom models pull <source>\n\n${MODELS_USAGE}`, EXIT.USAGE);
        const layout = values.layout;
        if (layout !== undefined && layout !== "diffusers-onnx" && layout !== "any") throw new CliError(`--layout must be diffusers-onnx or any, got '${layout}'`, EXIT.USAGE);
        const printer = progressPrinter(process.stderr);
        const abort = new AbortController();
        const onSigint = (): void => abort.abort();
        process.once("SIGINT", onSigint);
        const started = Date.now();
        try {
          const manifest = await manager.pull(arg, {
            ...(values.name !== undefined ? { name: values.name } : {}),
            ...(values.revision !== undefined ? { revision: values.revision } : {}),
            ...(layout ? { layout } : {}),
            onProgress: printer.onProgress,
            onInfo: printer.onInfo,
            signal: abort.signal,
          });
          printer.done();
          print(manifest, `Pulled ${manifest.name} (${manifest.files.length} files, ${formatBytes(manifest.totalBytes)}) in ${seconds((Date.now() - started) / 1000)} into ${manager.modelDir(manifest.name)}\n`);
        } finally {
          printer.done();
          process.off("SIGINT", onSigint);
        }
        return EXIT.OK;
      }
      case "list":
      case "ls": {
        const models = await manager.list();
        const rows = models.map((m) => [m.name, formatBytes(m.totalBytes), String(m.files.length), m.source, m.pulledAt]);
        print(models, models.length ? table(["NAME", "SIZE", "FILES", "SOURCE", "PULLED AT"], rows) : "No models. Pull one with 'darkroom models pull <source>'.\n");
        return EXIT.OK;
      }
      case "show": {
        if (!arg) throw new CliError("usage: darkroom models show <name>", EXIT.USAGE);
        const m = await manager.show(arg);
        print({ ...m, folder: manager.modelDir(m.name) }, describe(m, manager.modelDir(m.name)));
        return EXIT.OK;
      }
      case "rm":
      case "remove": {
        if (!arg) throw new CliError("usage: darkroom models rm <name>", EXIT.USAGE);
        const result = await manager.remove(arg);
        print({ name: arg, ...result }, `Removed ${arg}; freed ${formatBytes(result.freedBytes)} (${result.removedBlobs} files no other model uses).\n`);
        return EXIT.OK;
      }
      default:
        throw new CliError(sub ? `unknown models command '${sub}'\n\n${MODELS_USAGE}` : MODELS_USAGE, EXIT.USAGE);
    }
  } catch (err) {
    throw toCliError(err);
  }
}
