/**
 * Reads fal's error bodies: `{"detail": "…", "error_type": "…"}` and FastAPI-style validation
 * errors `{"detail": [{"loc": ["body", "field"], "msg": "…", "type": "…"}]}`.
 * @module
 */
import { locToPath, type FieldError } from "./schema-form.js";

interface ValidationItem {
  loc: (string | number)[];
  msg: string;
}

function isValidationItem(value: unknown): value is ValidationItem {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return Array.isArray(v["loc"]) && typeof v["msg"] === "string";
}

/** Field errors in a 422 body (empty for any other body). */
export function fieldErrorsOf(body: unknown): FieldError[] {
  if (typeof body !== "object" || body === null) return [];
  const detail = (body as Record<string, unknown>)["detail"];
  if (!Array.isArray(detail)) return [];
  return detail.filter(isValidationItem).map((d) => ({ path: locToPath(d.loc), message: d.msg }));
}

/** One line for a person: the detail, the field errors, or the HTTP status. */
export function errorMessageOf(body: unknown, status: number): string {
  if (typeof body === "string" && body.trim() !== "") return body.trim().slice(0, 500);
  if (typeof body === "object" && body !== null) {
    const b = body as Record<string, unknown>;
    const fields = fieldErrorsOf(body);
    if (fields.length > 0) return fields.map((f) => (f.path ? `${f.path}: ${f.message}` : f.message)).join("; ");
    for (const key of ["detail", "error", "message"]) {
      const v = b[key];
      if (typeof v === "string" && v !== "") return v;
    }
  }
  return `HTTP ${status}`;
}

/** fal's `error_type`, when the body has one. */
export function errorTypeOf(body: unknown): string | null {
  if (typeof body !== "object" || body === null) return null;
  const v = (body as Record<string, unknown>)["error_type"];
  return typeof v === "string" ? v : null;
}
