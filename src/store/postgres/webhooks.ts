/**
 * The PostgreSQL driver's webhook outbox: jobs to deliver, leased to one deliverer at a time (across
 * gateways, with `FOR UPDATE SKIP LOCKED`), and the attempts made at each.
 * @module
 */
import type pg from "pg";
import { toLeasedWebhookJobs, toWebhookAttempt, toWebhookJob, type WebhookAttemptRow, type WebhookRow } from "../rows.js";
import type { PredictionWebhook, Store, WebhookAttempt, WebhookJob } from "../store.js";
import { pgText, selectRows } from "./queries.js";

export type WebhookOutbox = Pick<Store, "enqueueWebhook" | "claimDueWebhooks" | "recordWebhookAttempt" | "listWebhooks" | "savePredictionWebhook" | "getPredictionWebhook">;

/** A job joined with one of its attempts (the `a_` columns, all null for a job with none). */
interface WebhookWithAttemptRow extends WebhookRow {
  a_request_id: string | null;
  a_attempt: number | null;
  a_at: number | null;
  a_status: number | null;
  a_ok: boolean | null;
  a_error: string | null;
  a_duration_ms: number | null;
}

export function createWebhookOutbox(pool: pg.Pool): WebhookOutbox {
  return {
    async savePredictionWebhook(webhook) {
      await pool.query({
        name: "darkroom_save_prediction_webhook",
        text: `INSERT INTO prediction_webhooks (request_id, events, tenant, created_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT (request_id) DO UPDATE SET events = EXCLUDED.events, tenant = EXCLUDED.tenant, created_at = EXCLUDED.created_at`,
        values: [webhook.requestId, JSON.stringify(webhook.events), pgText(webhook.tenant), webhook.createdAt],
      });
    },

    async getPredictionWebhook(requestId) {
      const [row] = await selectRows<{ request_id: string; events: string; tenant: string; created_at: number }>(pool, `SELECT * FROM prediction_webhooks WHERE request_id = $1`, [requestId], "darkroom_get_prediction_webhook");
      return row ? { requestId: row.request_id, events: JSON.parse(row.events) as PredictionWebhook["events"], tenant: row.tenant, createdAt: Number(row.created_at) } : null;
    },

    async enqueueWebhook(job) {
      const now = job.now ?? Date.now();
      const [row] = await selectRows<WebhookRow>(
        pool,
        `INSERT INTO webhooks (request_id, url, body, attempts, next_attempt_at, state, created_at, scheme)
         VALUES ($1, $2, $3, 0, $4, 'pending', $4, $5)
         RETURNING *`,
        [job.requestId, job.url, job.body, now, job.scheme ?? "fal"],
      );
      if (!row) throw new Error(`Enqueue of a webhook for request ${job.requestId} returned no row`);
      return toWebhookJob(row);
    },

    async claimDueWebhooks(now, limit, leaseMs) {
      if (limit <= 0) return [];
      // Pushing next_attempt_at forward is the lease: until it passes, the job is not due for anyone else.
      const claimed = await selectRows<WebhookRow>(
        pool,
        `UPDATE webhooks w SET next_attempt_at = $3
         FROM (
           SELECT id FROM webhooks WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2
           FOR UPDATE SKIP LOCKED
         ) due
         WHERE w.id = due.id
         RETURNING w.*`,
        [now, Math.trunc(limit), now + leaseMs],
        "darkroom_claim_webhooks",
      );
      return toLeasedWebhookJobs(claimed);
    },

    async recordWebhookAttempt(attempt: WebhookAttempt, next) {
      // The attempt row and the job's counter change in one statement, so attempts always agrees with
      // the attempt rows. A job already delivered or failed keeps its state: a late attempt (after its
      // lease passed) is recorded but cannot reopen it.
      await pool.query(
        `WITH recorded AS (
           INSERT INTO webhook_attempts (webhook_id, request_id, attempt, at, status, ok, error, duration_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         )
         UPDATE webhooks
         SET attempts = attempts + 1,
             state = CASE WHEN state = 'pending' THEN $9 ELSE state END,
             next_attempt_at = CASE WHEN state = 'pending' THEN $10 ELSE next_attempt_at END
         WHERE id = $1`,
        [
          attempt.webhookId,
          attempt.requestId,
          attempt.attempt,
          attempt.at,
          attempt.status,
          attempt.ok,
          pgText(attempt.error),
          attempt.durationMs,
          next.state,
          next.nextAttemptAt,
        ],
      );
    },

    async listWebhooks(requestId) {
      // One statement, so the jobs and their attempts come from one snapshot.
      const found = await selectRows<WebhookWithAttemptRow>(
        pool,
        `SELECT w.*, a.request_id AS a_request_id, a.attempt AS a_attempt, a.at AS a_at, a.status AS a_status, a.ok AS a_ok, a.error AS a_error,
                a.duration_ms AS a_duration_ms
         FROM webhooks w LEFT JOIN webhook_attempts a ON a.webhook_id = w.id
         WHERE w.request_id = $1
         ORDER BY w.id, a.attempt, a.seq`,
        [requestId],
      );
      const listed: { job: WebhookJob; attempts: WebhookAttempt[] }[] = [];
      for (const row of found) {
        let entry = listed.at(-1);
        if (entry?.job.id !== row.id) {
          entry = { job: toWebhookJob(row), attempts: [] };
          listed.push(entry);
        }
        if (row.a_attempt !== null) entry.attempts.push(toWebhookAttempt(attemptOf(row, row.a_attempt)));
      }
      return listed;
    },
  };
}

/** The attempt half of a joined row, as a `webhook_attempts` row (`attempt` is non-null when there is one). */
function attemptOf(row: WebhookWithAttemptRow, attempt: number): WebhookAttemptRow {
  return {
    webhook_id: row.id,
    request_id: row.a_request_id ?? row.request_id,
    attempt,
    at: row.a_at ?? 0,
    status: row.a_status,
    ok: row.a_ok === true,
    error: row.a_error,
    duration_ms: row.a_duration_ms ?? 0,
  };
}
