/**
 * Validates request inputs against endpoints' JSON Schemas (2020-12) at the gateway, and turns
 * failures into fal's 422 `detail[]` entries. Python runners register plain JSON Schema, so the
 * gateway validates JSON Schema rather than zod.
 * @module
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { PlatformError, type FieldError } from "../core/errors.js";
import type { JsonSchema } from "../core/types.js";

// ajv-formats is CommonJS: its default export arrives wrapped under ESM interop.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv2020) => Ajv2020;

function fieldErrorOf(e: ErrorObject): FieldError {
  const loc: (string | number)[] = ["body"];
  for (const part of e.instancePath.split("/").slice(1)) {
    const key = part.replace(/~1/g, "/").replace(/~0/g, "~");
    loc.push(/^\d+$/.test(key) ? Number(key) : key);
  }
  if (e.keyword === "required") {
    const missing = (e.params as { missingProperty: string }).missingProperty;
    return { loc: [...loc, missing], msg: "Field required", type: "missing" };
  }
  if (e.keyword === "additionalProperties") {
    const extra = (e.params as { additionalProperty: string }).additionalProperty;
    return { loc: [...loc, extra], msg: "Extra inputs are not permitted", type: "extra_forbidden" };
  }
  return { loc, msg: e.message ?? "Invalid value", type: e.keyword, ctx: e.params as Record<string, unknown> };
}

export class InputValidator {
  readonly #ajv = addFormats(new Ajv2020({ allErrors: true, strict: false, validateSchema: false }));
  readonly #compiled = new WeakMap<JsonSchema, ValidateFunction>();

  /** Throws ERR_VALIDATION with fal's detail[] when `input` does not match `schema`. */
  validate(schema: JsonSchema, input: unknown): void {
    let fn = this.#compiled.get(schema);
    if (!fn) {
      fn = this.#ajv.compile(schema);
      this.#compiled.set(schema, fn);
    }
    if (fn(input)) return;
    const fieldErrors = (fn.errors ?? []).map(fieldErrorOf);
    throw new PlatformError("ERR_VALIDATION", { fieldErrors });
  }
}
