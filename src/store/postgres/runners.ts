/**
 * The PostgreSQL driver's runner records (Store.recordRunner): one row per runner, written when it
 * starts or registers.
 * @module
 */
import type pg from "pg";
import type { Store } from "../store.js";
import { selectRows } from "./queries.js";

export type Runners = Pick<Store, "recordRunner" | "getRunner">;

export function createRunners(pool: pg.Pool): Runners {
  return {
    async recordRunner(runner) {
      await pool.query({
        name: "darkroom_record_runner",
        text: `INSERT INTO runners (id, app_id, description, started_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT (id) DO UPDATE SET app_id = EXCLUDED.app_id, description = EXCLUDED.description, started_at = EXCLUDED.started_at`,
        values: [runner.id, runner.appId, runner.description, runner.startedAt],
      });
    },
    async getRunner(id) {
      const [row] = await selectRows<{ id: string; app_id: string; description: string; started_at: number }>(pool, `SELECT * FROM runners WHERE id = $1`, [id], "darkroom_get_runner");
      return row ? { id: row.id, appId: row.app_id, description: row.description, startedAt: Number(row.started_at) } : null;
    },
  };
}
