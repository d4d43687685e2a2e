/**
 * The SQLite driver's webhook outbox: jobs to deliver, leased to one deliverer at a time, and the
 * attempts made at each.
 * @module
 */
import type Database from "better-sqlite3";
import { toLeasedWebhookJobs, toWebhookAttempt, toWebhookJob, type WebhookAttemptRow, type WebhookRow } from "../rows.js";
import type { PredictionWebhook, Store, WebhookAttempt, WebhookJob } from "../store.js";

export type WebhookOutbox = Pick<Store, "enqueueWebhook" | "claimDueWebhooks" | "recordWebhookAttempt" | "listWebhooks" | "savePredictionWebhook" | "getPredictionWebhook">;

export function createWebhookOutbox(db: Database.Database): WebhookOutbox {
  const insertWebhook = db.prepare<{ requestId: string; url: string; body: string; now: number; scheme: string }, WebhookRow>(`
    INSERT INTO webhooks (request_id, url, body, attempts, next_attempt_at, state, created_at, scheme)
    VALUES (@requestId, @url, @body, 0, @now, 'pending', @now, @scheme)
    RETURNING *`);
  const upsertPredictionWebhook = db.prepare<{ requestId: string; events: string; tenant: string; createdAt: number }>(`
    INSERT OR REPLACE INTO prediction_webhooks (request_id, events, tenant, created_at) VALUES (@requestId, @events, @tenant, @createdAt)`);
  const selectPredictionWebhook = db.prepare<[string], { request_id: string; events: string; tenant: string; created_at: number }>(`
    SELECT * FROM prediction_webhooks WHERE request_id = ?`);
  // Pushing next_attempt_at forward is the lease: until it passes, the job is not due for anyone else.
  const leaseDueWebhooks = db.prepare<{ now: number; limit: number; leaseUntil: number }, WebhookRow>(`
    UPDATE webhooks SET next_attempt_at = @leaseUntil
    WHERE id IN (
      SELECT id FROM webhooks WHERE state = 'pending' AND next_attempt_at <= @now ORDER BY id LIMIT @limit
    )
    RETURNING *`);
  const insertWebhookAttempt = db.prepare<
    { webhookId: number; requestId: string; attempt: number; at: number; status: number | null; ok: number; error: string | null; durationMs: number }
  >(`
    INSERT INTO webhook_attempts (webhook_id, request_id, attempt, at, status, ok, error, duration_ms)
    VALUES (@webhookId, @requestId, @attempt, @at, @status, @ok, @error, @durationMs)`);
  // attempts is recounted from the attempt rows so it always agrees with them. A job already delivered
  // or failed keeps its state: a late attempt (after its lease passed) is recorded but cannot reopen it.
  const updateWebhookAfterAttempt = db.prepare<{ id: number; state: WebhookJob["state"]; nextAttemptAt: number }>(`
    UPDATE webhooks
    SET attempts = (SELECT COUNT(*) FROM webhook_attempts WHERE webhook_id = @id),
        state = CASE WHEN state = 'pending' THEN @state ELSE state END,
        next_attempt_at = CASE WHEN state = 'pending' THEN @nextAttemptAt ELSE next_attempt_at END
    WHERE id = @id`);
  const selectWebhooksOfRequest = db.prepare<[string], WebhookRow>(
    `SELECT * FROM webhooks WHERE request_id = ? ORDER BY id`,
  );
  const selectAttemptsOfRequest = db.prepare<[string], WebhookAttemptRow>(`
    SELECT webhook_id, request_id, attempt, at, status, ok, error, duration_ms FROM webhook_attempts
    WHERE webhook_id IN (SELECT id FROM webhooks WHERE request_id = ?)
    ORDER BY webhook_id, attempt, seq`);

  const recordWebhookAttemptTransaction = db.transaction(
    (attempt: WebhookAttempt, next: { state: WebhookJob["state"]; nextAttemptAt: number }): void => {
      insertWebhookAttempt.run({
        webhookId: attempt.webhookId,
        requestId: attempt.requestId,
        attempt: attempt.attempt,
        at: attempt.at,
        status: attempt.status,
        ok: attempt.ok ? 1 : 0,
        error: attempt.error,
        durationMs: attempt.durationMs,
      });
      updateWebhookAfterAttempt.run({ id: attempt.webhookId, state: next.state, nextAttemptAt: next.nextAttemptAt });
    },
  );

  const listWebhooksTransaction = db.transaction((requestId: string) => {
    const jobs = selectWebhooksOfRequest.all(requestId).map(toWebhookJob);
    const attempts = selectAttemptsOfRequest.all(requestId).map(toWebhookAttempt);
    return jobs.map((job) => ({ job, attempts: attempts.filter((a) => a.webhookId === job.id) }));
  });

  return {
    async savePredictionWebhook(webhook) {
      upsertPredictionWebhook.run({ requestId: webhook.requestId, events: JSON.stringify(webhook.events), tenant: webhook.tenant, createdAt: webhook.createdAt });
    },

    async getPredictionWebhook(requestId) {
      const row = selectPredictionWebhook.get(requestId);
      return row ? { requestId: row.request_id, events: JSON.parse(row.events) as PredictionWebhook["events"], tenant: row.tenant, createdAt: row.created_at } : null;
    },

    async enqueueWebhook(job) {
      const row = insertWebhook.get({ requestId: job.requestId, url: job.url, body: job.body, now: job.now ?? Date.now(), scheme: job.scheme ?? "fal" });
      if (!row) throw new Error(`Enqueue of a webhook for request ${job.requestId} returned no row`);
      return toWebhookJob(row);
    },

    async claimDueWebhooks(now, limit, leaseMs) {
      if (limit <= 0) return [];
      return toLeasedWebhookJobs(leaseDueWebhooks.all({ now, limit: Math.trunc(limit), leaseUntil: now + leaseMs }));
    },

    async recordWebhookAttempt(attempt, next) {
      recordWebhookAttemptTransaction.immediate(attempt, next);
    },

    async listWebhooks(requestId) {
      return listWebhooksTransaction(requestId);
    },
  };
}
