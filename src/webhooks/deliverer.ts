/**
 * Sends webhook deliveries from the store's outbox.
 *
 * The inference path only ever writes to the outbox (`enqueueFor`, one local insert) and nudges this
 * loop (`kick`); the network send, its retries and a slow or dead receiver all happen here, on their
 * own schedule, so a webhook can never hold up or fail a request. The outbox is durable, so deliveries
 * due while the server was down are sent after a restart.
 *
 * Delivery is at least once: each claimed job is leased in the store for longer than one send can take,
 * and if the process dies between the receiver's 2xx and the store recording it, the lease runs out
 * and the job is sent again. Receivers should deduplicate on `request_id`.
 *
 * A URL the SSRF guard refuses (a private or loopback address the allow-list does not name, a scheme
 * other than http(s)) fails the delivery at once: the attempt is logged with status null and the
 * refusal as the error, and no retry is scheduled. The same URL under the same policy is refused the
 * same way every time, so ten retries over two hours would only leave the delivery log claiming the
 * webhook might still arrive when it never will. (A name that resolves to a refused address is
 * judged on its answer at the time, like an IP literal.)
 * @module
 */
import { performance } from "node:perf_hooks";
import { isPlatformError } from "../core/errors.js";
import type { RequestRecord } from "../core/types.js";
import type { AllowList } from "../net/allow-list.js";
import { safeFetch } from "../net/safe-fetch.js";
import type { Store, WebhookAttempt, WebhookJob } from "../store/store.js";
import { nextDelayMs } from "./backoff.js";
import { serializeWebhookBody } from "./payload.js";
import { signStandardWebhook } from "./standard-signature.js";
import { signWebhook } from "./signature.js";
import type { SigningKeys } from "./signing-keys.js";

/** The subset of a pino logger the deliverer uses. */
export interface WebhookLogger {
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
  error(obj: Record<string, unknown>, msg?: string): void;
}

const silentLogger: WebhookLogger = { info() {}, warn() {}, error() {} };

export interface WebhookDelivererOptions {
  store: Store;
  signingKeys: Pick<SigningKeys, "current">;
  /** Hosts webhooks may reach even though they are private (loopback, LAN). */
  allow: AllowList;
  /** Sent as `X-Fal-Webhook-User-Id` and signed. */
  userId: string;
  logger?: WebhookLogger;
  /** How often the outbox is polled when nothing kicks the loop, ms. Default 1000. */
  pollIntervalMs?: number;
  /** Clock, unix ms: attempt times, due times and the signed timestamp. */
  now?: () => number;
  /** Limit of one send, ms. Default 10 s. */
  timeoutMs?: number;
  /** Retry schedule; defaults to {@link nextDelayMs}. Tests shorten it. */
  backoff?: (attemptNumber: number) => number | null;
  /** Jobs claimed (and sent concurrently) per pass. Default 16. */
  batchSize?: number;
  /** Called after each attempt (metrics). */
  onAttempt?: (attempt: WebhookAttempt, next: { state: WebhookJob["state"] }) => void;
  /** A tenant's Standard Webhooks secret (standard-signature.ts), for jobs of scheme `standard:<tenant>`. */
  standardSecret?: (tenant: string) => string;
  /** The body of a Replicate prediction's `completed` webhook (its prediction object). */
  predictionBody?: (record: RequestRecord) => Promise<string>;
}

const USER_AGENT = "darkroom-webhooks/1";
/**
 * Receivers' answers are read for nothing but the status and the body is dropped unread, so no size is
 * too large: a limit would only turn a 2xx with a long (declared) body into a failed delivery.
 */
const MAX_RESPONSE_BYTES = Number.MAX_SAFE_INTEGER;

function describeError(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

/** Whether the SSRF guard refused the URL itself, before any connection: retrying cannot change that. */
function isPolicyRefusal(err: unknown): boolean {
  return isPlatformError(err) && err.code === "ERR_FETCH_REFUSED";
}

/** The refusal as logged: says why there is no retry, and how an operator would let the host through. */
function describeRefusal(err: unknown): string {
  return `${describeError(err)} (by the SSRF policy for outbound requests; not retried: DARKROOM_ALLOW_HOSTS can allow the host)`;
}

export class WebhookDeliverer {
  private readonly store: Store;
  private readonly signingKeys: Pick<SigningKeys, "current">;
  private readonly allow: AllowList;
  private readonly userId: string;
  private readonly logger: WebhookLogger;
  private readonly pollIntervalMs: number;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly backoff: (attemptNumber: number) => number | null;
  private readonly batchSize: number;
  /** Long enough for a send and its bookkeeping, so that no other deliverer picks the job up meanwhile. */
  private readonly leaseMs: number;
  private readonly onAttempt: WebhookDelivererOptions["onAttempt"];

  private running = false;
  private loop: Promise<void> | null = null;
  private kicked = false;
  private wake: (() => void) | null = null;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly standardSecret: ((tenant: string) => string) | undefined;
  private readonly predictionBody: ((record: RequestRecord) => Promise<string>) | undefined;

  constructor(options: WebhookDelivererOptions) {
    this.store = options.store;
    this.signingKeys = options.signingKeys;
    this.allow = options.allow;
    this.userId = options.userId;
    this.logger = options.logger ?? silentLogger;
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.now = options.now ?? Date.now;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.backoff = options.backoff ?? ((n) => nextDelayMs(n));
    this.batchSize = options.batchSize ?? 16;
    this.leaseMs = this.timeoutMs + 60_000;
    this.onAttempt = options.onAttempt;
    this.standardSecret = options.standardSecret;
    this.predictionBody = options.predictionBody;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.runLoop();
  }

  /** Stops polling and resolves once every send in flight has finished and been recorded. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    this.loop = null;
    await Promise.allSettled([...this.inFlight]);
  }

  /** Looks at the outbox now instead of at the next poll (a request just finished). */
  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  /**
   * Queues the webhook of a finished request, if it asked for one, and kicks the loop. Never rejects:
   * the caller is the scheduler finishing a request, and an outbox problem must not turn into a
   * request failure, so it is logged and null is returned.
   */
  async enqueueFor(record: RequestRecord): Promise<WebhookJob | null> {
    if (!record.webhookUrl) return null;
    try {
      // A Replicate prediction's webhook (src/gateway/routes/replicate.ts): its prediction object, signed
      // by Standard Webhooks, when it asked for `completed`.
      const prediction = this.predictionBody ? await this.store.getPredictionWebhook(record.id) : null;
      if (prediction && !prediction.events.includes("completed")) return null;
      const body = prediction && this.predictionBody ? await this.predictionBody(record) : serializeWebhookBody(record);
      const scheme = prediction ? `standard:${prediction.tenant}` : "fal";
      const job = await this.store.enqueueWebhook({ requestId: record.id, url: record.webhookUrl, body, now: this.now(), scheme });
      this.kick();
      return job;
    } catch (err) {
      this.logger.error({ requestId: record.id, err: describeError(err) }, "could not queue webhook");
      return null;
    }
  }

  /** Claims the jobs due now and sends them; resolves with how many were handled. */
  async runOnce(): Promise<number> {
    const jobs = await this.store.claimDueWebhooks(this.now(), this.batchSize, this.leaseMs);
    await Promise.all(jobs.map((job) => this.track(this.deliver(job))));
    return jobs.length;
  }

  private track<T>(work: Promise<T>): Promise<T> {
    this.inFlight.add(work);
    const forget = (): void => {
      this.inFlight.delete(work);
    };
    work.then(forget, forget);
    return work;
  }

  private async runLoop(): Promise<void> {
    while (this.running) {
      this.kicked = false;
      let handled = 0;
      try {
        handled = await this.runOnce();
      } catch (err) {
        this.logger.error({ err: describeError(err) }, "webhook outbox poll failed");
      }
      if (!this.running) break;
      // A full batch means more may be due; a kick during the pass means a new job arrived.
      if (handled >= this.batchSize || this.kicked) continue;
      await this.sleep(this.pollIntervalMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      // The deliverer must not be what keeps a process alive.
      timer.unref();
      this.wake = done;
    });
  }

  private secretOf(tenant: string): string {
    if (!this.standardSecret) throw new Error("no Standard Webhooks secret is configured");
    return this.standardSecret(tenant);
  }

  /** One attempt at one job, recorded whatever happens. */
  private async deliver(job: WebhookJob): Promise<void> {
    const attemptNumber = job.attempts + 1;
    const at = this.now();
    const started = performance.now();
    let status: number | null = null;
    let error: string | null = null;
    let permanent = false;
    try {
      const signature = job.scheme.startsWith("standard:")
        ? signStandardWebhook({ id: `msg_${job.id}`, timestampSec: Math.floor(at / 1000), body: job.body, secret: this.secretOf(job.scheme.slice("standard:".length)) })
        : signWebhook({
            requestId: job.requestId,
            userId: this.userId,
            timestampSec: Math.floor(at / 1000),
            body: job.body,
            privateKey: this.signingKeys.current().privateKey,
          });
      const res = await safeFetch(job.url, {
        allow: this.allow,
        method: "POST",
        headers: { "Content-Type": "application/json", "User-Agent": USER_AGENT, ...signature },
        body: job.body,
        timeoutMs: this.timeoutMs,
        maxBytes: MAX_RESPONSE_BYTES,
        // A POST that answers with a redirect is not a delivery (safeFetch reports it as "too many
        // redirects"); following it would resend the signed body to wherever the receiver points.
        maxRedirects: 0,
      });
      status = res.status;
      // Only the status matters; dropping the body frees the connection at once.
      res.body.on("error", () => undefined);
      res.body.destroy();
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (err) {
      permanent = isPolicyRefusal(err);
      error = permanent ? describeRefusal(err) : describeError(err);
    }
    const ok = error === null && status !== null;
    const durationMs = Math.round(performance.now() - started);
    const finishedAt = this.now();

    let next: { state: WebhookJob["state"]; nextAttemptAt: number };
    if (ok) {
      next = { state: "delivered", nextAttemptAt: finishedAt };
    } else {
      const delay = permanent ? null : this.backoff(attemptNumber);
      next = delay === null ? { state: "failed", nextAttemptAt: finishedAt } : { state: "pending", nextAttemptAt: finishedAt + delay };
    }

    const attempt: WebhookAttempt = { webhookId: job.id, requestId: job.requestId, attempt: attemptNumber, at, status, ok, error, durationMs };
    this.onAttempt?.(attempt, next);
    try {
      await this.store.recordWebhookAttempt(attempt, next);
    } catch (err) {
      // The lease will run out and the job be sent again: at least once, as documented above.
      this.logger.error({ requestId: job.requestId, webhookId: job.id, err: describeError(err) }, "could not record webhook attempt");
      return;
    }

    const fields = { requestId: job.requestId, webhookId: job.id, attempt: attemptNumber, status, durationMs };
    if (ok) this.logger.info(fields, "webhook delivered");
    else if (next.state === "failed") this.logger.error({ ...fields, error }, "webhook delivery failed; giving up");
    else this.logger.warn({ ...fields, error, retryAt: next.nextAttemptAt }, "webhook delivery failed; will retry");
  }
}
