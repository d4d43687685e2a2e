/**
 * A request body read with a zod schema: the parsed value, or fal's 422 with a `detail[]` entry per
 * problem (fieldErrorsOf), whichever API shape the route answers errors in.
 * @module
 */
import type { z } from "zod";
import { fieldErrorsOf } from "../auth/limits-body.js";
import { PlatformError } from "../core/errors.js";

/** `body` parsed by `schema` (a missing body as `{}`); throws ERR_VALIDATION with the field errors. */
export function validatedBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) throw new PlatformError("ERR_VALIDATION", { fieldErrors: fieldErrorsOf(parsed.error) });
  return parsed.data;
}
