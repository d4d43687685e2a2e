/**
 * One run through the queue as the app page follows it: submitting, the live status, logs and
 * partial result from the status stream, Cancel, the outcome with its result and request detail,
 * and reopening a past request (`?request=<id>`). The page renders what this hook holds and wires
 * its form to {@link RunView.start}.
 * @module
 */
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError, type Api, type LogLine, type ModelEndpoint, type QueueStatus, type RawResponse, type RequestDetail } from "./api.js";
import { useInterval } from "./hooks.js";
import { errorTypeOf, fieldErrorsOf } from "./lib/fal-errors.js";
import type { FieldError } from "./lib/schema-form.js";
import { navigate } from "./router.js";

export type Outcome = "succeeded" | "failed" | "cancelled";

export type Run =
  | { phase: "idle" }
  | { phase: "submitting" }
  | { phase: "queued" | "running"; requestId: string; status: QueueStatus | null; startedAt: number }
  | { phase: "done"; requestId: string; outcome: Outcome; result: RawResponse; detail: RequestDetail | null; status: QueueStatus | null };

function outcomeOf(status: QueueStatus | null, result: RawResponse): Outcome {
  if (status?.error_type === "client_cancelled" || errorTypeOf(result.body) === "client_cancelled") return "cancelled";
  return result.ok ? "succeeded" : "failed";
}

export interface RunOptions {
  /** The app's endpoint id (`owner/app`), which the page's URL names. */
  appId: string;
  /** The endpoint id runs are submitted to and cancelled on: the app's, or `owner/app/path`. */
  endpointId: string;
  /** The request to reopen, from the URL; null for none. */
  reopenId: string | null;
  /** The endpoints that run through the queue: a reopened request goes to its own, else the first. */
  runnable: readonly ModelEndpoint[];
  /** Field errors the server gave for the input (422), to be marked in the form. */
  onFieldErrors: (errors: FieldError[]) => void;
  /** A request was reopened: the form should show its endpoint (`path`) and its input. */
  onReopen: (path: string, input: Record<string, unknown>) => void;
  /**
   * Every partial result the status stream carries, in order (a workflow's events are partial
   * results). `partial` in the view holds only the latest, and React may render two in a row as one.
   */
  onPartial?: (requestId: string, value: unknown) => void;
}

export interface RunView {
  run: Run;
  logs: LogLine[];
  /** The latest partial result of the running request; cleared when it ends. */
  partial: { value: unknown } | null;
  cancelling: boolean;
  /** The input of the run shown (what was submitted, or the reopened request's). */
  ranInput: Record<string, unknown>;
  /** Why the last submit, follow, reopen or cancel failed. */
  submitError: Error | null;
  /** Seconds since the run was queued, while it is queued or running; null otherwise. */
  elapsed: number | null;
  /** Submits `input` to the endpoint and follows it to its outcome. */
  start: (input: Record<string, unknown>) => Promise<void>;
  cancel: () => Promise<void>;
  clearError: () => void;
}

export function useRun(api: Api | undefined, options: RunOptions): RunView {
  const { appId, endpointId, reopenId, runnable } = options;
  const [run, setRun] = useState<Run>({ phase: "idle" });
  const [logs, setLogs] = useState<LogLine[]>([]);
  const [partial, setPartial] = useState<{ value: unknown } | null>(null);
  const [cancelling, setCancelling] = useState(false);
  const [ranInput, setRanInput] = useState<Record<string, unknown>>({});
  const [submitError, setSubmitError] = useState<Error | null>(null);
  const [, setNow] = useState(0);
  const followRef = useRef<AbortController | null>(null);
  /** The request this view shows; the URL names it too, and must not make the view load it twice. */
  const currentRef = useRef<string | null>(null);
  // The page's callbacks are read through refs, so that a new one does not restart a reopen.
  const onFieldErrorsRef = useRef(options.onFieldErrors);
  onFieldErrorsRef.current = options.onFieldErrors;
  const onReopenRef = useRef(options.onReopen);
  onReopenRef.current = options.onReopen;
  const onPartialRef = useRef(options.onPartial);
  onPartialRef.current = options.onPartial;

  // A run in flight is only followed, not cancelled, when the page goes away: it keeps its place.
  useEffect(() => () => followRef.current?.abort(), []);
  useInterval(() => setNow(Date.now()), 500, run.phase === "queued" || run.phase === "running");

  const finish = useCallback(
    async (requestId: string, status: QueueStatus | null, forEndpoint: string) => {
      if (!api) return;
      const [result, detail] = await Promise.all([api.result(forEndpoint, requestId), api.request(requestId).catch(() => null)]);
      setRun({ phase: "done", requestId, outcome: outcomeOf(status, result), result, detail, status });
      setCancelling(false);
      if (result.status === 422) onFieldErrorsRef.current(fieldErrorsOf(result.body));
    },
    [api],
  );

  const follow = useCallback(
    async (requestId: string, forEndpoint: string) => {
      if (!api) return;
      followRef.current?.abort();
      const controller = new AbortController();
      followRef.current = controller;
      setPartial(null);
      const startedAt = Date.now();
      try {
        const final = await api.follow(
          forEndpoint,
          requestId,
          (status, lines) => {
            setLogs(lines);
            if (status.partial !== undefined) {
              setPartial({ value: status.partial });
              onPartialRef.current?.(requestId, status.partial);
            }
            if (status.status !== "COMPLETED") setRun({ phase: status.status === "IN_QUEUE" ? "queued" : "running", requestId, status, startedAt });
          },
          controller.signal,
        );
        setPartial(null);
        await finish(requestId, final, forEndpoint);
      } catch (err) {
        if (controller.signal.aborted) return;
        setSubmitError(err instanceof Error ? err : new Error(String(err)));
        setRun({ phase: "idle" });
      }
    },
    [api, finish],
  );

  // Reopening a request: its input goes into the form; a finished one shows its outcome, a live one is followed.
  useEffect(() => {
    if (!reopenId || !api || reopenId === currentRef.current) return;
    followRef.current?.abort();
    setRun({ phase: "idle" });
    setSubmitError(null);
    let stale = false;
    api.request(reopenId).then(
      (detail) => {
        // Marked only once loaded: React's development mode runs this effect twice, the first run stale.
        if (stale) return;
        currentRef.current = reopenId;
        const path = runnable.some((e) => e.path === detail.endpoint) ? detail.endpoint : (runnable[0]?.path ?? "");
        const input = typeof detail.input === "object" && detail.input !== null ? (detail.input as Record<string, unknown>) : {};
        onReopenRef.current(path, input);
        setRanInput(input);
        setLogs(detail.logs ?? []);
        const forEndpoint = path ? `${appId}/${path}` : appId;
        if (detail.state === "QUEUED" || detail.state === "RUNNING") {
          void follow(detail.request_id, forEndpoint);
        } else {
          void finish(detail.request_id, detail, forEndpoint);
        }
      },
      (err: unknown) => !stale && setSubmitError(err instanceof Error ? err : new Error(String(err))),
    );
    return () => {
      stale = true;
    };
  }, [reopenId, api, runnable, appId, follow, finish]);

  const start = async (input: Record<string, unknown>): Promise<void> => {
    if (!api) return;
    setLogs([]);
    setRanInput(input);
    setRun({ phase: "submitting" });
    try {
      const submitted = await api.submit(endpointId, input);
      currentRef.current = submitted.request_id;
      // The URL names the request, so a reload or a shared link reopens it.
      navigate(`/app?id=${encodeURIComponent(appId)}&request=${encodeURIComponent(submitted.request_id)}`, { replace: true });
      setRun({ phase: "queued", requestId: submitted.request_id, status: null, startedAt: Date.now() });
      await follow(submitted.request_id, endpointId);
    } catch (err) {
      if (err instanceof ApiError && err.fieldErrors.length > 0) onFieldErrorsRef.current(err.fieldErrors);
      setSubmitError(err instanceof Error ? err : new Error(String(err)));
      setRun({ phase: "idle" });
    }
  };

  const cancel = async (): Promise<void> => {
    if (!api || (run.phase !== "queued" && run.phase !== "running")) return;
    setCancelling(true);
    const res = await api.cancel(endpointId, run.requestId).catch(() => null);
    // Already finished: the stream is about to say how; anything else is worth showing.
    if (res && !res.ok && res.status !== 400) {
      setSubmitError(new ApiError(res.status, res.body));
      setCancelling(false);
    }
  };

  const clearError = useCallback(() => setSubmitError(null), []);
  const elapsed = run.phase === "queued" || run.phase === "running" ? (Date.now() - run.startedAt) / 1000 : null;

  return { run, logs, partial, cancelling, ranInput, submitError, elapsed, start, cancel, clearError };
}
