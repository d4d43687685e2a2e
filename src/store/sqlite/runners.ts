/**
 * The SQLite driver's runner records (Store.recordRunner): one row per runner, written when it starts.
 * @module
 */
import type Database from "better-sqlite3";
import type { Store } from "../store.js";
import type { GroupCommit } from "./group-commit.js";

export type Runners = Pick<Store, "recordRunner" | "getRunner">;

export function createRunners(db: Database.Database, writes: GroupCommit): Runners {
  const upsert = db.prepare<{ id: string; appId: string; description: string; startedAt: number }>(`
    INSERT INTO runners (id, app_id, description, started_at) VALUES (@id, @appId, @description, @startedAt)
    ON CONFLICT (id) DO UPDATE SET app_id = excluded.app_id, description = excluded.description, started_at = excluded.started_at`);
  const select = db.prepare<[string], { id: string; app_id: string; description: string; started_at: number }>(`SELECT * FROM runners WHERE id = ?`);
  return {
    async recordRunner(runner) {
      await writes.run(() => upsert.run(runner));
    },
    async getRunner(id) {
      const row = select.get(id);
      return row ? { id: row.id, appId: row.app_id, description: row.description, startedAt: row.started_at } : null;
    },
  };
}
