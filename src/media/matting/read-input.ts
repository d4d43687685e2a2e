/**
 * Reading an input file under an app's own size limit. `ctx.files.read` answers an oversized input
 * with 413 `ERR_FILE_TOO_LARGE`; the matting apps document their limits as input validation, so the
 * client gets a 422 on the field that names the limit instead, like the pixel and duration limits.
 * @module
 */
import { fieldError, PlatformError } from "../../core/errors.js";
import type { InputFiles } from "../context.js";

const megabytes = (bytes: number): string => `${Math.round((bytes / (1024 * 1024)) * 10) / 10} MiB`;

/** The file behind `url`, refused with a 422 on `field` when larger than `maxBytes`. */
export async function readLimited(
  ctx: InputFiles,
  url: string,
  field: string,
  maxBytes: number,
): Promise<Buffer> {
  try {
    return (await ctx.files.read(url, { maxBytes })).data;
  } catch (err) {
    if (err instanceof PlatformError && err.code === "ERR_FILE_TOO_LARGE") {
      throw fieldError(field, `file is larger than the input limit of ${megabytes(maxBytes)} (${maxBytes} bytes)`);
    }
    throw err;
  }
}
