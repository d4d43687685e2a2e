/**
 * Usage line items as CSV (RFC 4180): one header row, then one row per line item. Numbers are written
 * as JavaScript's shortest round-trip form, so they parse back to exactly the numbers of the JSON
 * answer.
 * @module
 */
import type { UsageLine } from "./usage-lines.js";

export const USAGE_CSV_COLUMNS = [
  "bucket",
  "endpoint_id",
  "key_id",
  "unit",
  "quantity",
  "unit_price",
  "cost",
  "currency",
  "request_count",
  "billed_request_count",
  "compute_seconds",
] as const;

/**
 * One field: quoted when it holds a comma, quote or line break. A field that starts like a formula
 * (`=`, `+`, `-`, `@`) is quoted too and given a leading `'`, so a spreadsheet shows it instead of
 * running it (OWASP, CSV injection); numbers never need it (they are written unquoted).
 */
function field(value: string | number | null): string {
  if (value === null) return "";
  if (typeof value === "number") return String(value);
  const guarded = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(guarded) || guarded !== value ? `"${guarded.replaceAll('"', '""')}"` : guarded;
}

export function usageCsvHeader(): string {
  return `${USAGE_CSV_COLUMNS.join(",")}\r\n`;
}

export function usageCsvRow(line: UsageLine): string {
  const cells: (string | number | null)[] = [
    new Date(line.bucketStart).toISOString(),
    line.endpointId,
    line.keyId,
    line.unit,
    line.quantity,
    line.unitPrice,
    line.cost,
    line.currency,
    line.requestCount,
    line.billedRequests,
    line.computeSeconds,
  ];
  return `${cells.map(field).join(",")}\r\n`;
}
