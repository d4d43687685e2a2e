/**
 * docs/errors.md and the error registry describe the same codes: every code in `ERRORS` has exactly
 * one row in the doc's table, no row names a code the registry lacks, and each row's HTTP status and
 * fal `error_type` ("—" for none) are the registry's.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ERRORS, type ErrorDefinition } from "../../src/core/errors.js";

const DOC = new URL("../../docs/errors.md", import.meta.url);
const NO_ERROR_TYPE = "—";
const REGISTRY: Readonly<Record<string, ErrorDefinition>> = ERRORS;

interface Row {
  code: string;
  status: string;
  errorType: string;
  line: number;
}

/** Table rows whose first cell is a code in backticks: "| `ERR_X` | 400 | `bad_request` | … |". */
function tableRows(markdown: string): Row[] {
  const rows: Row[] = [];
  markdown.split("\n").forEach((text, i) => {
    if (!text.trimStart().startsWith("|")) return;
    // Leading "|" gives an empty first element; only the first three cells are read, so later cells may hold anything.
    const cells = text.split("|").map((cell) => cell.trim());
    const code = /^`(ERR_[A-Z0-9_]+)`$/.exec(cells[1] ?? "")?.[1];
    if (!code) return;
    rows.push({ code, status: cells[2] ?? "", errorType: (cells[3] ?? "").replace(/^`(.*)`$/, "$1"), line: i + 1 });
  });
  return rows;
}

describe("docs/errors.md", () => {
  const rows = tableRows(readFileSync(DOC, "utf8"));
  const byCode = new Map(rows.map((row) => [row.code, row]));

  it("has a table row for every code in ERRORS, once, and none for other codes", () => {
    assert.ok(rows.length > 0, "no `ERR_…` rows found in the table");
    const duplicates = rows.filter((row, i) => rows.findIndex((r) => r.code === row.code) !== i).map((r) => `${r.code} (line ${r.line})`);
    assert.deepEqual(duplicates, [], "codes listed more than once");
    const documented = new Set(rows.map((row) => row.code));
    const registry = new Set(Object.keys(REGISTRY));
    assert.deepEqual([...registry].filter((code) => !documented.has(code)), [], "codes in ERRORS missing from the table");
    assert.deepEqual([...documented].filter((code) => !registry.has(code)), [], "codes in the table that ERRORS does not define");
  });

  it("gives each code the HTTP status of its definition", () => {
    for (const [code, def] of Object.entries(REGISTRY)) {
      const row = byCode.get(code);
      if (!row) continue; // reported by the completeness test
      assert.equal(row.status, String(def.status), `${code} (line ${row.line}): status`);
    }
  });

  it("gives each code the fal error_type of its definition, — for none", () => {
    for (const [code, def] of Object.entries(REGISTRY)) {
      const row = byCode.get(code);
      if (!row) continue;
      assert.equal(row.errorType, def.errorType ?? NO_ERROR_TYPE, `${code} (line ${row.line}): error_type`);
    }
  });
});
