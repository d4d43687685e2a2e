/**
 * Owner-only files in the data folder: the admin key, the token secret and the webhook signing keys.
 *
 * Every write goes to a temporary file created with mode 0600 and is then moved into place, so that
 * a reader never sees a half-written secret and the secret never exists, even briefly, with the
 * umask's wider default mode. (`writeFile`'s `mode` only applies when it creates the file, which is
 * another reason to never write the target in place.)
 * @module
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";

export const PRIVATE_FILE_MODE = 0o600;

function tempPathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
}

async function writeTemp(file: string, data: string): Promise<string> {
  // The data folder itself holds nothing but private state, so it is created owner-only too.
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = tempPathFor(file);
  await fs.writeFile(tmp, data, { mode: PRIVATE_FILE_MODE, flag: "wx" });
  // The umask can only clear bits, but be explicit rather than rely on it.
  await fs.chmod(tmp, PRIVATE_FILE_MODE);
  return tmp;
}

/** Replaces `file` atomically with `data`, mode 0600. */
export async function writePrivateFile(file: string, data: string): Promise<void> {
  const tmp = await writeTemp(file, data);
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Creates `file` with `data` only if it does not exist yet. Returns false when another process (or an
 * earlier run) got there first, in which case the caller must read the winner's content instead of
 * keeping its own: two servers starting on one data folder must end up with the same secret.
 * `link` fails with EEXIST instead of overwriting, which is what makes this race-free.
 */
export async function createPrivateFileOnce(file: string, data: string): Promise<boolean> {
  const tmp = await writeTemp(file, data);
  try {
    await fs.link(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return false;
    // Some file systems have no hard links; an exclusive create is still race-free, only a reader
    // could then catch the file half-written, which for a few hundred bytes is a remote chance.
    if (code === "EPERM" || code === "ENOTSUP" || code === "ENOSYS" || code === "EOPNOTSUPP") {
      try {
        await fs.writeFile(file, data, { mode: PRIVATE_FILE_MODE, flag: "wx" });
        return true;
      } catch (inner) {
        if ((inner as NodeJS.ErrnoException).code === "EEXIST") return false;
        throw inner;
      }
    }
    throw err;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/**
 * Reads a private file, or returns null when it does not exist. A file found with a wider mode (copied
 * around, restored from a backup) is tightened back to 0600 on the way.
 */
export async function readPrivateFile(file: string): Promise<string | null> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  if (process.platform !== "win32") {
    const stat = await fs.stat(file);
    if ((stat.mode & 0o777) !== PRIVATE_FILE_MODE) await fs.chmod(file, PRIVATE_FILE_MODE).catch(() => undefined);
  }
  return text;
}
