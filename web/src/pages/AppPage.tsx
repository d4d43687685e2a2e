/**
 * One app: the form generated from its input schema, a run through the queue with live status,
 * logs and Cancel, the result shown for what it is, and code for the same input. With
 * `?request=<id>` it reopens a past request: its inputs in the form, its outcome beside them.
 * @module
 */
import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent, type ReactNode } from "react";
import type { ModelEntry, QueueStatus, RequestDetail } from "../api.js";
import { CodeTabs } from "../components/CodeTabs.js";
import { ErrorNotice, Loading, Remedy } from "../components/common.js";
import { UploadTracker } from "../components/FileInput.js";
import { JsonView } from "../components/JsonView.js";
import { RunErrorNotice } from "../components/LimitBanner.js";
import { RealtimeResults, RealtimeStatus, useRealtime } from "../components/Realtime.js";
import { AudioPlayer, CompareSlider, ImageGallery, OtherFile, VideoPlayer } from "../components/Media.js";
import { SchemaForm } from "../components/SchemaForm.js";
import { WorkflowPanel } from "../components/WorkflowPanel.js";
import { errorMessageOf } from "../lib/fal-errors.js";
import { formatSeconds, formatTime, secondsBetween } from "../lib/format.js";
import { compareSource, findFiles } from "../lib/outputs.js";
import { buildInput, draftsFromInput, fieldsFor, initialDrafts, parseInputJson, type DraftObject, type FieldError } from "../lib/schema-form.js";
import { useModels, useTitle } from "../hooks.js";
import { Link } from "../router.js";
import { useRun, type Run } from "../run.js";
import { useSession } from "../session.js";

/**
 * A registered workflow served as an app (src/workflows/manifest.ts): `/v1/models` lists it in
 * the category `workflow`; a server that also sends the manifest's `workflow: true` is believed.
 */
function isWorkflowApp(model: ModelEntry): boolean {
  return (model as ModelEntry & { workflow?: boolean }).workflow === true || model.metadata.category === "workflow";
}

/** Kinds that go through the queue; a realtime endpoint is run over its WebSocket instead. */
const RUNNABLE = new Set(["http", "stream"]);
const USABLE = new Set(["http", "stream", "realtime"]);
/** A live form sends once typing pauses this long (fal's client throttles realtime sends at 128 ms). */
const LIVE_DELAY_MS = 150;

function StatusLine({ run, cancelling }: { run: Run; cancelling: boolean }): ReactNode {
  let text = "";
  if (run.phase === "submitting") text = "Submitting…";
  else if (run.phase === "queued") {
    const ahead = run.status?.queue_position ?? 0;
    text = ahead === 0 ? "In queue: next to run" : `In queue: position ${ahead + 1} (${ahead} ahead)`;
  } else if (run.phase === "running") {
    const p = run.status?.progress;
    text = p ? `Running: ${p.message ?? `step ${p.step} of ${p.total}`} (${Math.round(p.fraction * 100)}%)` : "Running";
  } else if (run.phase === "done") {
    if (run.outcome === "succeeded") text = "Completed";
    else if (run.outcome === "cancelled") text = "Cancelled";
    else text = `Failed: ${errorMessageOf(run.result.body, run.result.status)}`;
  }
  if (cancelling && (run.phase === "queued" || run.phase === "running")) text += " · cancelling…";
  return (
    <p className={`run-status phase-${run.phase}${run.phase === "done" ? ` outcome-${run.outcome}` : ""}`} role="status" aria-live="polite" data-testid="run-status">
      {text}
    </p>
  );
}

function Timings({ detail, status }: { detail: RequestDetail | null; status: QueueStatus | null }): ReactNode {
  if (!detail) return null;
  const queued = secondsBetween(detail.created_at, detail.started_at);
  const ran = secondsBetween(detail.started_at, detail.finished_at);
  const total = secondsBetween(detail.created_at, detail.finished_at);
  const inference = status?.metrics?.inference_time ?? detail.metrics?.inference_time ?? null;
  return (
    <dl className="timings" aria-label="Timings">
      <div>
        <dt>In queue</dt>
        <dd>{formatSeconds(queued)}</dd>
      </div>
      <div>
        <dt>Running</dt>
        <dd>{formatSeconds(ran)}</dd>
      </div>
      <div>
        <dt>Inference</dt>
        <dd>{formatSeconds(inference)}</dd>
      </div>
      <div>
        <dt>Total</dt>
        <dd>{formatSeconds(total)}</dd>
      </div>
    </dl>
  );
}

function Outputs({ model, run, input }: { model: ModelEntry; run: Extract<Run, { phase: "done" }>; input: Record<string, unknown> }): ReactNode {
  const endpoint = model.endpoints.find((e) => e.path === (run.detail?.endpoint ?? "")) ?? model.endpoints[0];
  const fields = useMemo(() => (endpoint ? fieldsFor(endpoint.input_schema) : []), [endpoint]);
  const body = run.result.body;
  const files = run.result.ok ? findFiles(body) : [];
  const before = compareSource(model.metadata.category, fields, input, files);
  const images = files.filter((f) => f.kind === "image");
  const firstImage = images[0];
  return (
    <div className="outputs" data-testid="outputs">
      {before && firstImage ? <CompareSlider before={before} after={firstImage} /> : null}
      {images.length > 0 ? <ImageGallery files={images} /> : null}
      {files.filter((f) => f.kind === "audio").map((f) => <AudioPlayer key={f.path} file={f} />)}
      {files.filter((f) => f.kind === "video").map((f) => <VideoPlayer key={f.path} file={f} />)}
      {files.filter((f) => f.kind === "other").map((f) => <OtherFile key={f.path} file={f} />)}
      <Timings detail={run.detail} status={run.status} />
      <JsonView value={body} label={run.result.ok ? "Output (JSON)" : `Error body (HTTP ${run.result.status})`} />
      <p className="muted small">
        Request <code>{run.requestId}</code>
        {run.detail ? <> · {formatTime(run.detail.created_at)}</> : null} · <Link href={`/history?app=${encodeURIComponent(model.endpoint_id)}`}>History</Link>
      </p>
    </div>
  );
}

/**
 * Scrolls `el` to the top of the screen unless its top part (heading and run status) already
 * shows. Run sits at the foot of the form: on a long form the result panel beside it is scrolled
 * away above, and on a narrow screen it is below, so the run would start out of sight.
 */
function revealIfHidden(el: HTMLElement | null): void {
  if (!el) return;
  const box = el.getBoundingClientRect();
  if (box.top >= 0 && box.top <= window.innerHeight - Math.min(box.height, 120)) return;
  const reduced = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  el.scrollIntoView({ block: "start", behavior: reduced ? "auto" : "smooth" });
}

/** `focusKey` changes when a run is refused: only then does the summary take the focus, not while fields are fixed. */
function ErrorSummary({ errors, idPrefix, focusKey }: { errors: readonly FieldError[]; idPrefix: string; focusKey: number }): ReactNode {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (focusKey > 0) ref.current?.focus();
  }, [focusKey]);
  if (errors.length === 0) return null;
  return (
    <div className="notice error" role="alert" tabIndex={-1} ref={ref}>
      <p>Fix {errors.length === 1 ? "this field" : "these fields"} first:</p>
      <ul>
        {errors.map((e) => (
          <li key={e.path + e.message}>
            <a href={`#${idPrefix}-${e.path.replace(/[^A-Za-z0-9_-]/g, "-")}`}>{e.path || "input"}</a>: {e.message}
          </li>
        ))}
      </ul>
    </div>
  );
}

function AppView({ model, reopenId }: { model: ModelEntry; reopenId: string | null }): ReactNode {
  const { session } = useSession();
  const api = session?.api;
  const runnable = useMemo(() => model.endpoints.filter((e) => RUNNABLE.has(e.kind)), [model]);
  const usable = useMemo(() => model.endpoints.filter((e) => USABLE.has(e.kind)), [model]);
  const [endpointPath, setEndpointPath] = useState(usable[0]?.path ?? "");
  const endpoint = usable.find((e) => e.path === endpointPath) ?? usable[0];
  const realtime = endpoint?.kind === "realtime";
  const fields = useMemo(() => (endpoint ? fieldsFor(endpoint.input_schema) : []), [endpoint]);
  const [drafts, setDrafts] = useState<DraftObject>(() => initialDrafts(fields));
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [errorFocus, setErrorFocus] = useState(0);
  const showErrors = useCallback((list: FieldError[]) => {
    setErrors(list);
    if (list.length > 0) setErrorFocus((n) => n + 1);
  }, []);
  const [uploads, setUploads] = useState(0);
  // The JSON view of the whole input: its text, or null while the form is shown.
  const [jsonText, setJsonText] = useState<string | null>(null);
  const [live, setLive] = useState(false);
  const logRef = useRef<HTMLPreElement>(null);
  const resultRef = useRef<HTMLElement>(null);
  // Counts the runs started here; each one brings the result panel into view once it has rendered.
  const [revealKey, setRevealKey] = useState(0);
  const idPrefix = "in";
  const endpointId = endpoint && endpoint.path ? `${model.endpoint_id}/${endpoint.path}` : model.endpoint_id;
  const rt = useRealtime(api, realtime ? endpointId : null);
  const workflow = isWorkflowApp(model);
  // The workflow panel takes the run's partial results (the workflow's events) from here, every one.
  const workflowEvents = useRef<((requestId: string, value: unknown) => void) | null>(null);
  const { run, logs, partial, cancelling, ranInput, submitError, elapsed, start, cancel, clearError } = useRun(api, {
    appId: model.endpoint_id,
    endpointId,
    reopenId,
    runnable,
    onFieldErrors: showErrors,
    onPartial: (requestId, value) => workflowEvents.current?.(requestId, value),
    onReopen: (path, input) => {
      setEndpointPath(path);
      const target = runnable.find((e) => e.path === path);
      if (target) setDrafts(draftsFromInput(fieldsFor(target.input_schema), input));
    },
  });
  const active = !realtime && (run.phase === "submitting" || run.phase === "queued" || run.phase === "running");

  const tracker = useMemo(
    () => ({
      begin: () => {
        setUploads((n) => n + 1);
        let done = false;
        return () => {
          if (!done) setUploads((n) => n - 1);
          done = true;
        };
      },
    }),
    [],
  );

  useEffect(() => {
    if (revealKey > 0) revealIfHidden(resultRef.current);
  }, [revealKey]);
  useEffect(() => {
    const el = logRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [logs]);

  const fromForm = useMemo(() => buildInput(fields, drafts), [fields, drafts]);
  const fromJson = useMemo(() => (jsonText === null ? null : parseInputJson(jsonText)), [jsonText]);
  const built = fromJson ?? fromForm;
  const builtText = JSON.stringify(built.input);

  // Live realtime: each change of a valid input is sent once typing pauses.
  const sendLive = rt.send;
  useEffect(() => {
    if (!live || !realtime || built.errors.length > 0 || uploads > 0) return undefined;
    const timer = window.setTimeout(() => sendLive(JSON.parse(builtText) as unknown), LIVE_DELAY_MS);
    return () => window.clearTimeout(timer);
  }, [live, realtime, builtText, built.errors.length, uploads, sendLive]);

  // Once errors are shown they follow the edits, so that a fixed field stops being marked; the
  // server's own (422) errors go with the first edit, since only a new run can tell.
  const onFormChange = (next: DraftObject): void => {
    setDrafts(next);
    setErrors((prev) => (prev.length === 0 ? prev : buildInput(fields, next).errors));
  };

  const toggleJson = (): void => {
    if (jsonText === null) {
      setJsonText(JSON.stringify(fromForm.input, null, 2));
      setErrors([]);
      return;
    }
    // Back to the form only with an input it can show; otherwise the JSON view says what is wrong.
    if (!fromJson || fromJson.errors.length > 0) return;
    setDrafts(draftsFromInput(fields, fromJson.input));
    setJsonText(null);
  };

  const submit = async (e?: FormEvent): Promise<void> => {
    e?.preventDefault();
    if (!api || active || uploads > 0) return;
    clearError();
    if (built.errors.length > 0) {
      if (jsonText === null) showErrors(built.errors);
      return;
    }
    setErrors([]);
    setRevealKey((n) => n + 1);
    if (realtime) {
      rt.send(built.input);
      return;
    }
    await start(built.input);
  };

  const reset = (): void => {
    setDrafts(initialDrafts(fields));
    if (jsonText !== null) setJsonText(JSON.stringify(buildInput(fields, initialDrafts(fields)).input, null, 2));
    setErrors([]);
  };

  const fraction = run.phase === "running" ? run.status?.progress?.fraction : undefined;

  return (
    <div className="app-layout">
      <section className="panel input-panel" aria-labelledby="input-heading">
        <h2 id="input-heading">Input</h2>
        {usable.length > 1 ? (
          <div className="field">
            <label htmlFor="endpoint" className="label">
              Endpoint
            </label>
            <select
              id="endpoint"
              value={endpointPath}
              disabled={active}
              onChange={(e) => {
                const path = e.target.value;
                const next = usable.find((x) => x.path === path);
                setEndpointPath(path);
                if (next) setDrafts(initialDrafts(fieldsFor(next.input_schema)));
                if (next && jsonText !== null) setJsonText(JSON.stringify(buildInput(fieldsFor(next.input_schema), initialDrafts(fieldsFor(next.input_schema))).input, null, 2));
                setErrors([]);
                setLive(false);
              }}
            >
              {usable.map((e) => (
                <option key={e.path} value={e.path}>
                  /{e.path} ({e.kind})
                </option>
              ))}
            </select>
          </div>
        ) : null}
        <form
          onSubmit={(e) => void submit(e)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) void submit(e);
          }}
          noValidate
          aria-label={`Input for ${model.endpoint_id}`}
        >
          <div className="input-mode">
            <button type="button" className="button small" aria-pressed={jsonText !== null} onClick={toggleJson} disabled={active || (fromJson !== null && fromJson.errors.length > 0)}>
              JSON
            </button>
            <span className="muted small">{jsonText === null ? "Edit the whole input as JSON" : "Press JSON again to go back to the form"}</span>
          </div>
          {jsonText === null ? (
            <>
              <ErrorSummary errors={errors} idPrefix={idPrefix} focusKey={errorFocus} />
              <UploadTracker.Provider value={tracker}>
                <SchemaForm fields={fields} drafts={drafts} onChange={onFormChange} errors={errors} idPrefix={idPrefix} disabled={active} />
              </UploadTracker.Provider>
            </>
          ) : (
            <div className="field kind-json">
              <label htmlFor="in-json" className="label">
                Input (JSON)
              </label>
              <textarea
                id="in-json"
                className={`mono input-json${fromJson && fromJson.errors.length > 0 ? " invalid" : ""}`}
                rows={Math.min(24, Math.max(6, jsonText.split("\n").length + 1))}
                value={jsonText}
                spellCheck={false}
                disabled={active}
                aria-invalid={fromJson !== null && fromJson.errors.length > 0}
                aria-describedby="in-json-error"
                onChange={(e) => setJsonText(e.target.value)}
              />
              <p className="field-error" id="in-json-error" role="alert">
                {fromJson?.errors[0]?.message ?? ""}
              </p>
              <p className="hint">Sent as it is; the server checks it against the schema. Keys the form does not know are dropped when you go back to it.</p>
            </div>
          )}
          <div className="actions">
            <button type="submit" className="button primary" disabled={active || uploads > 0 || !model.availability.available}>
              {uploads > 0 ? "Uploading…" : active ? "Running…" : realtime ? "Send" : "Run"}
            </button>
            {realtime ? (
              <label className="checkbox inline-check">
                <input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} />
                <span>Send on every change</span>
              </label>
            ) : null}
            <button type="button" className="button" onClick={reset} disabled={active}>
              Reset
            </button>
            <span className="muted small hide-narrow">Ctrl+Enter {realtime ? "sends" : "runs"}</span>
          </div>
        </form>
      </section>

      <section className="panel result-panel" aria-labelledby="result-heading" ref={resultRef}>
        <h2 id="result-heading">{realtime ? "Realtime" : "Result"}</h2>
        {submitError ? <RunErrorNotice error={submitError} /> : null}
        {realtime ? (
          <>
            <div className="realtime-bar">
              <RealtimeStatus view={rt} />
              {rt.state === "open" || rt.state === "connecting" ? (
                <button type="button" className="button small" onClick={rt.disconnect}>
                  Disconnect
                </button>
              ) : (
                <button type="button" className="button small" onClick={rt.connect} disabled={!model.availability.available}>
                  Connect
                </button>
              )}
            </div>
            <p className="muted small">
              A WebSocket to <code>/{endpointId}</code>, as fal&apos;s <code>fal.realtime.connect</code> opens it: each input is one msgpack message, answered in order. Nothing is stored
              in the history.
            </p>
            <RealtimeResults view={rt} />
          </>
        ) : null}
        {realtime ? null : run.phase === "idle" && !submitError ? <p className="muted">Fill in the form and press Run. The request goes through the queue, as from any client.</p> : null}
        {run.phase !== "idle" && !realtime ? (
          <div className="run">
            <StatusLine run={run} cancelling={cancelling} />
            {run.phase === "queued" || run.phase === "running" || run.phase === "submitting" ? (
              <div className="run-live">
                {fraction !== undefined && fraction !== null ? (
                  <progress value={fraction} max={1} aria-label="Progress" />
                ) : (
                  <progress aria-label={run.phase === "running" ? "Running" : "Waiting"} />
                )}
                {elapsed !== null ? <span className="muted small">{formatSeconds(elapsed)}</span> : null}
                {run.phase !== "submitting" ? (
                  <button type="button" className="button danger" onClick={() => void cancel()} disabled={cancelling}>
                    Cancel
                  </button>
                ) : null}
              </div>
            ) : null}
          </div>
        ) : null}
        {partial !== null && run.phase === "running" && !realtime && !workflow ? (
          <div className="partial-result" data-testid="partial-result">
            <JsonView value={partial.value} label="Partial result (latest)" />
          </div>
        ) : null}
        {!realtime && (logs.length > 0 || run.phase === "running") ? (
          <details className="logs-box" open>
            <summary>Logs ({logs.length})</summary>
            <pre className="logs" ref={logRef} tabIndex={0} aria-label="Logs" aria-live="off" data-testid="logs">
              {logs.map((l, i) => (
                <span key={i} className={`log level-${l.level.toLowerCase()}`}>
                  <span className="log-time">{l.timestamp.slice(11, 23)}</span> {l.message}
                  {"\n"}
                </span>
              ))}
            </pre>
          </details>
        ) : null}
        {run.phase === "done" && !realtime ? <Outputs model={model} run={run} input={ranInput} /> : null}
      </section>

      {workflow ? (
        <section className="panel workflow-panel" aria-labelledby="workflow-heading">
          <h2 id="workflow-heading">Workflow</h2>
          <WorkflowPanel workflowId={model.endpoint_id} run={run} input={ranInput} partialSink={workflowEvents} />
        </section>
      ) : null}

      <section className="panel code-panel" aria-labelledby="code-heading">
        <h2 id="code-heading">Code</h2>
        <p className="muted small">The exact input of the form{built.errors.length > 0 ? " (fields with errors left out)" : ""}.</p>
        <CodeTabs input={{ baseUrl: window.location.origin, endpointId, input: built.input, category: model.metadata.category }} realtime={realtime} />
      </section>
    </div>
  );
}

export function AppPage({ appId, reopenId }: { appId: string; reopenId: string | null }): ReactNode {
  const models = useModels();
  const model = models.data?.find((m) => m.endpoint_id === appId) ?? null;
  useTitle(model?.metadata.display_name ?? appId);
  if (models.error) return <ErrorNotice error={models.error} onRetry={models.reload} />;
  if (!models.data) return <Loading what="the app" />;
  if (!model) {
    return (
      <div>
        <h1 tabIndex={-1}>Not found</h1>
        <p>
          No app <code>{appId}</code> on this server. <Link href="/">Back to the gallery</Link>
        </p>
      </div>
    );
  }
  const unavailable = model.availability.available ? null : model.availability;
  return (
    <article className="app-page">
      <header className="page-head">
        <p className="crumbs">
          <Link href="/">Gallery</Link> / <code>{model.endpoint_id}</code>
        </p>
        <h1 tabIndex={-1}>{model.metadata.display_name}</h1>
        <p className="meta">
          <span className="badge">{model.metadata.category}</span>
          {model.metadata.tags.slice(0, 6).map((t) => (
            <span key={t} className="tag">
              {t}
            </span>
          ))}
          <a href={`/run/${model.endpoint_id}/openapi.json`} target="_blank" rel="noreferrer">
            OpenAPI
          </a>
        </p>
        <p className="description">{model.metadata.description}</p>
        {unavailable ? (
          <div className="notice warning" role="note">
            <p>
              <strong>Unavailable:</strong> {unavailable.reason}. <strong>Remedy:</strong> <Remedy remedy={unavailable.remedy} />
            </p>
          </div>
        ) : null}
      </header>
      <AppView key={appId} model={model} reopenId={reopenId} />
    </article>
  );
}

