/**
 * The assertion for the 422s apps answer bad input with: a validation error naming the field, in
 * fal's `detail[]` shape (`fieldError` in src/core/errors.ts).
 * @module
 */
import assert from "node:assert/strict";
import { PlatformError } from "../../src/core/errors.js";

/**
 * A validator for `assert.rejects`: the error is a 422 validation error whose first field error is on
 * `field` (a name, or a path such as `["image_urls", 1]`) and, when `msg` is given, whose message
 * matches it.
 */
export function rejects422(field: string | (string | number)[], msg?: RegExp): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof PlatformError, String(err));
    assert.equal(err.code, "ERR_VALIDATION");
    assert.equal(err.status, 422);
    assert.deepEqual(err.fieldErrors?.[0]?.loc, ["body", ...(Array.isArray(field) ? field : [field])]);
    if (msg) assert.match(err.fieldErrors?.[0]?.msg ?? "", msg);
    return true;
  };
}
