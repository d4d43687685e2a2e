/**
 * The PostgreSQL driver's registered workflows: one row each, the document as JSON text.
 * @module
 */
import type pg from "pg";
import type { Store, WorkflowRecord } from "../store.js";
import { selectRows } from "./queries.js";

export type Workflows = Pick<Store, "putWorkflow" | "getWorkflow" | "listWorkflows" | "deleteWorkflow">;

interface WorkflowRow {
  id: string;
  document: string;
  created_at: string | number;
  updated_at: string | number;
}

// bigint columns come back as strings from pg.
const toRecord = (row: WorkflowRow): WorkflowRecord => ({ id: row.id, document: row.document, createdAt: Number(row.created_at), updatedAt: Number(row.updated_at) });

export function createWorkflows(pool: pg.Pool): Workflows {
  return {
    async putWorkflow(id, document, now) {
      const [row] = await selectRows<WorkflowRow>(
        pool,
        `INSERT INTO workflows (id, document, created_at, updated_at) VALUES ($1, $2, $3, $3)
         ON CONFLICT (id) DO UPDATE SET document = EXCLUDED.document, updated_at = EXCLUDED.updated_at
         RETURNING *`,
        [id, document, now],
        "darkroom_put_workflow",
      );
      if (!row) throw new Error(`Writing workflow ${id} returned no row`);
      return toRecord(row);
    },
    async getWorkflow(id) {
      const [row] = await selectRows<WorkflowRow>(pool, `SELECT * FROM workflows WHERE id = $1`, [id], "darkroom_get_workflow");
      return row ? toRecord(row) : null;
    },
    async listWorkflows() {
      return (await selectRows<WorkflowRow>(pool, `SELECT * FROM workflows ORDER BY id`, [], "darkroom_list_workflows")).map(toRecord);
    },
    async deleteWorkflow(id) {
      const result = await pool.query({ name: "darkroom_delete_workflow", text: `DELETE FROM workflows WHERE id = $1`, values: [id] });
      return (result.rowCount ?? 0) > 0;
    },
  };
}
