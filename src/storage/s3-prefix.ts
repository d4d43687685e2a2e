/**
 * The key prefix of an S3 storage URL (`s3://bucket/prefix`). Apart from the driver so that parsing
 * a storage URL does not load the AWS SDK.
 * @module
 */
import { PlatformError } from "../core/errors.js";
import { assertValidKey } from "./keys.js";

/** `darkroom/prod`, `/darkroom/prod/` → `darkroom/prod/`; `` → ``. Segments follow the key rules. */
export function normalizePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? "").replace(/^\/+|\/+$/g, "");
  if (trimmed === "") return "";
  try {
    assertValidKey(trimmed);
  } catch {
    throw new PlatformError("ERR_BAD_REQUEST", { message: `invalid S3 key prefix ${JSON.stringify(prefix)}: use [A-Za-z0-9._-] segments separated by "/"` });
  }
  return `${trimmed}/`;
}
