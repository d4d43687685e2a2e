/**
 * What becomes of a request when its run ends: finished (succeeded, failed, cancelled) or put back
 * in the queue for another attempt. Every way a run can end goes through here — a runner's result
 * or error, a runner that exited, a remote runner's report, a lease that expired, a restart that
 * found the request running — so the rules cannot drift apart between them:
 *
 * - a result finishes the request SUCCEEDED;
 * - a run whose client asked to cancel it ends CANCELLED, whatever the run's own end was (running
 *   it again would do work nobody wants);
 * - an error whose registry entry says `requeue` (the runner went away, the run outlived its
 *   timeout) puts the request back while it has attempts left; the store ends it with that error
 *   once they are spent, in the same write;
 * - any other error finishes it FAILED (or CANCELLED for ERR_CLIENT_CANCELLED) with the error's
 *   status and fal error type.
 *
 * `requeue` is the scheduler's own rule and differs from the registry's `retryable`, the hint to
 * clients that sending the request again may help (a full queue is retryable, not requeued).
 * @module
 */
import { ERRORS, PlatformError, type ErrorDefinition } from "../core/errors.js";
import type { RequestRecord } from "../core/types.js";
import { terminalWriteFor } from "../store/rows.js";
import type { Store, TerminalWrite } from "../store/store.js";

// The store writes terminal states; the scheduler's modules take the builder from here.
export { terminalWriteFor };

/** How a run ended, as its runner (or the lack of one) tells it. */
export type RunEnd = { ok: true; output: unknown; billableUnits?: number | null } | { ok: false; error: PlatformError };

export type OutcomeDecision =
  /** Write this terminal state. */
  | { action: "finish"; write: TerminalWrite }
  /** Queue it for another attempt; `exhausted` is written instead when no attempt is left. */
  | { action: "requeue"; exhausted: TerminalWrite };

/** Whether the scheduler runs a request again after this error (the registry's `requeue`). */
export function requeues(error: PlatformError): boolean {
  const definition: ErrorDefinition = ERRORS[error.code];
  return definition.requeue === true;
}

export function decideOutcome(end: RunEnd, request: { cancelRequested?: boolean } = {}): OutcomeDecision {
  if (end.ok) {
    return { action: "finish", write: { state: "SUCCEEDED", output: end.output, statusCode: 200, error: null, errorType: null, billableUnits: end.billableUnits ?? null } };
  }
  if (request.cancelRequested) return { action: "finish", write: terminalWriteFor(new PlatformError("ERR_CLIENT_CANCELLED")) };
  if (requeues(end.error)) return { action: "requeue", exhausted: terminalWriteFor(end.error) };
  return { action: "finish", write: terminalWriteFor(end.error) };
}

/**
 * Writes a decision. With `guard`, only while the request is RUNNING under that owner and attempt
 * (a late or duplicate report writes nothing and gets null); without it, whatever runs or waits.
 */
export function applyOutcome(store: Store, requestId: string, guard: { owner: string; attempt: number } | null, decision: OutcomeDecision): Promise<RequestRecord | null> {
  if (decision.action === "requeue") return store.requeue(requestId, guard, decision.exhausted);
  return store.finish(requestId, decision.write, guard ?? undefined);
}
