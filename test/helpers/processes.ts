/**
 * Finding a request's child processes from a test: apps name their per-request temp folders after
 * the request id, and the folder shows up in the command lines of the ffmpeg or flite they start.
 * @module
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Whether any process's command line contains `needle` (pgrep exits 1 when none does). */
export async function processMatches(needle: string): Promise<boolean> {
  try {
    await run("pgrep", ["-f", needle]);
    return true;
  } catch {
    return false;
  }
}
