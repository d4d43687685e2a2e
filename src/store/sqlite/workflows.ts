/**
 * The SQLite driver's registered workflows: one row each, the document as JSON text.
 * @module
 */
import type Database from "better-sqlite3";
import type { Store, WorkflowRecord } from "../store.js";
import type { GroupCommit } from "./group-commit.js";

export type Workflows = Pick<Store, "putWorkflow" | "getWorkflow" | "listWorkflows" | "deleteWorkflow">;

interface WorkflowRow {
  id: string;
  document: string;
  created_at: number;
  updated_at: number;
}

const toRecord = (row: WorkflowRow): WorkflowRecord => ({ id: row.id, document: row.document, createdAt: row.created_at, updatedAt: row.updated_at });

export function createWorkflows(db: Database.Database, writes: GroupCommit): Workflows {
  const upsert = db.prepare<[string, string, number, number], WorkflowRow>(`
    INSERT INTO workflows (id, document, created_at, updated_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at
    RETURNING *`);
  const select = db.prepare<[string], WorkflowRow>(`SELECT * FROM workflows WHERE id = ?`);
  const selectAll = db.prepare<[], WorkflowRow>(`SELECT * FROM workflows ORDER BY id`);
  const remove = db.prepare<[string]>(`DELETE FROM workflows WHERE id = ?`);

  return {
    async putWorkflow(id, document, now) {
      const row = await writes.run(() => upsert.get(id, document, now, now));
      if (!row) throw new Error(`Writing workflow ${id} returned no row`);
      return toRecord(row);
    },
    async getWorkflow(id) {
      const row = select.get(id);
      return row ? toRecord(row) : null;
    },
    async listWorkflows() {
      return selectAll.all().map(toRecord);
    },
    async deleteWorkflow(id) {
      return writes.run(() => remove.run(id).changes > 0);
    },
  };
}
