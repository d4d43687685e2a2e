/**
 * The operations view from `/v1/ops` (admin keys): per app, queue depth, runners by state, cold
 * starts (the latest ones phase by phase: where a start's time went), setup failures and recent
 * errors; and the spare runners kept for the next app that needs one. Refreshes itself every few seconds. Whether an app can
 * run at all comes from `/v1/models` (the session's app list: it is settled when the server loads
 * its apps), so that an app that never starts runners is marked as such, with its remedy.
 * @module
 */
import { useMemo, useState, type ReactNode } from "react";
import type { AppOps, ColdStartView, ModelEntry, OpsSnapshot, SpareRunnersView } from "../api.js";
import { CopyButton, ErrorNotice, Loading, Remedy } from "../components/common.js";
import { formatSeconds, formatTime } from "../lib/format.js";
import { useAsync, useInterval, useModels, useTitle } from "../hooks.js";
import { Link } from "../router.js";
import { useApi, useSession } from "../session.js";

const REFRESH_MS = 3000;

const iso = (v: string | number | null): string | null => (v === null ? null : typeof v === "number" ? new Date(v).toISOString() : v);

type Availability = ModelEntry["availability"];

const cardId = (app: string): string => `ops-${app.replace(/[^A-Za-z0-9]/g, "-")}`;

function UnavailableNote({ reason, remedy }: { reason: string; remedy: string }): ReactNode {
  return (
    <div className="notice warning small" role="note">
      <p>
        <strong>Unavailable:</strong> {reason}.
      </p>
      <p className="remedy-row">
        <strong>Remedy:</strong> <Remedy remedy={remedy} /> <CopyButton text={remedy} label="Copy remedy" />
      </p>
    </div>
  );
}

/** The phases of a start in the order they happen, with the names the page shows. */
const PHASES: { key: keyof ColdStartView; label: string }[] = [
  { key: "spawn_ms", label: "Spawn" },
  { key: "runtime_ms", label: "Runtime" },
  { key: "import_ms", label: "Import" },
  { key: "setup_ms", label: "Setup" },
  { key: "first_request_ms", label: "First request" },
];

const ms = (value: number | null): string => (value === null ? "–" : value >= 10_000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`);

/** The latest start as one bar split into its phases, its phases listed, and the earlier ones in a line each. */
function ColdStarts({ starts }: { starts: readonly ColdStartView[] }): ReactNode {
  const latest = starts[starts.length - 1];
  if (!latest) return null;
  const parts = PHASES.map((p) => ({ ...p, value: (latest[p.key] as number | null) ?? 0 })).filter((p) => p.value > 0);
  const total = parts.reduce((sum, p) => sum + p.value, 0);
  const earlier = starts.slice(0, -1).reverse();
  return (
    <details className="cold-starts" open>
      <summary>
        Latest cold start: ready in {ms(latest.ready_ms)} ({latest.spare ? "a spare runner" : "a new process"})
      </summary>
      {total > 0 ? (
        <div className="phase-bar" role="img" aria-label={parts.map((p) => `${p.label} ${ms(p.value)}`).join(", ")} data-testid="cold-start-bar">
          {parts.map((p) => (
            <span key={p.key} className={`phase phase-${p.key.replace("_ms", "")}`} style={{ flexGrow: p.value }} title={`${p.label}: ${ms(p.value)}`} />
          ))}
        </div>
      ) : null}
      <dl className="phase-list">
        {PHASES.map((p) => (
          <div key={p.key}>
            <dt>
              <span className={`swatch phase-${p.key.replace("_ms", "")}`} aria-hidden="true" />
              {p.label}
            </dt>
            <dd data-phase={p.key}>{ms(latest[p.key] as number | null)}</dd>
          </div>
        ))}
      </dl>
      {earlier.length > 0 ? (
        <ul className="plain earlier-starts">
          {earlier.map((start) => (
            <li key={`${start.runner}-${start.began_at}`}>
              <span className="muted">{formatTime(iso(start.began_at))}</span> {start.spare ? "spare" : "new process"}, ready in {ms(start.ready_ms)}
              {start.setup_ms > 0 ? `, setup ${ms(start.setup_ms)}` : ""}
            </li>
          ))}
        </ul>
      ) : null}
    </details>
  );
}

function SpareRunners({ spares }: { spares: SpareRunnersView | undefined }): ReactNode {
  if (!spares) return null;
  return (
    <span className="muted small" data-testid="ops-spares">
      {spares.target === 0 ? "No spare runners (--spare-runners 0)" : `Spare runners: ${spares.ready} ready, ${spares.starting} starting, of ${spares.target}`}
    </span>
  );
}

/** `availability` is unknown (undefined) until the app list has loaded. */
function AppCard({ ops, availability }: { ops: AppOps; availability: Availability | undefined }): ReactNode {
  const count = (state: string): number => ops.runners.filter((r) => r.state === state).length;
  const inFlight = ops.runners.reduce((n, r) => n + r.in_flight, 0);
  const headingId = cardId(ops.app);
  const unavailable = availability && !availability.available ? availability : null;
  return (
    <li className={`ops-card${unavailable ? " unavailable" : ""}`} aria-labelledby={headingId} data-available={availability ? String(availability.available) : undefined}>
      <div className="ops-card-head">
        <h2 id={headingId} className="card-title">
          <Link href={`/app?id=${encodeURIComponent(ops.app)}`}>{ops.app}</Link>
        </h2>
        {unavailable ? <span className="badge bad">Unavailable</span> : null}
      </div>
      {unavailable ? <UnavailableNote reason={unavailable.reason} remedy={unavailable.remedy} /> : null}
      <dl className="stats">
        <div>
          <dt>Queue depth</dt>
          <dd data-stat="queue_depth">{ops.queue_depth}</dd>
        </div>
        <div>
          <dt>Starting</dt>
          <dd>{count("starting")}</dd>
        </div>
        <div>
          <dt>Ready</dt>
          <dd>{count("ready")}</dd>
        </div>
        <div>
          <dt>Draining</dt>
          <dd>{count("draining")}</dd>
        </div>
        <div>
          <dt>In flight</dt>
          <dd>{inFlight}</dd>
        </div>
        <div>
          <dt>Cold starts</dt>
          <dd data-stat="cold_starts">{ops.cold_starts}</dd>
        </div>
        <div>
          <dt>Setup failures</dt>
          <dd className={ops.setup_failures > 0 ? "bad" : ""}>{ops.setup_failures}</dd>
        </div>
      </dl>
      {ops.last_setup_error ? (
        <p className="notice error small">
          <strong>Last setup error:</strong> {ops.last_setup_error}
        </p>
      ) : null}
      {ops.recent_cold_starts?.length ? <ColdStarts starts={ops.recent_cold_starts} /> : null}
      {ops.runners.length > 0 ? (
        <details className="runners">
          <summary>Runners ({ops.runners.length})</summary>
          <ul className="plain">
            {ops.runners.map((r) => (
              <li key={r.id}>
                <code>{r.id}</code> {r.state}, pid {r.pid ?? "–"}, {r.in_flight} in flight, since {formatTime(iso(r.ready_at ?? r.spawned_at))}
              </li>
            ))}
          </ul>
        </details>
      ) : null}
      {ops.recent_errors.length > 0 ? (
        <details className="recent-errors">
          <summary>Recent errors ({ops.recent_errors.length})</summary>
          <ul className="plain">
            {[...ops.recent_errors].reverse().map((e, i) => (
              <li key={i}>
                <span className="muted">{formatTime(iso(e.at))}</span>{" "}
                {e.request_id ? (
                  <Link href={`/app?id=${encodeURIComponent(ops.app)}&request=${encodeURIComponent(e.request_id)}`}>
                    <code>{e.request_id.slice(0, 8)}</code>
                  </Link>
                ) : null}{" "}
                {e.message}
              </li>
            ))}
          </ul>
        </details>
      ) : (
        <p className="muted small">No recent errors.</p>
      )}
    </li>
  );
}

/** Which apps cannot run, up front: on a long page their cards are easy to miss. */
function UnavailableSummary({ apps }: { apps: readonly string[] }): ReactNode {
  if (apps.length === 0) return null;
  return (
    <p className="notice warning" data-testid="ops-unavailable">
      {apps.length === 1 ? "1 app cannot run" : `${apps.length} apps cannot run`} here:{" "}
      {apps.map((app, i) => (
        <span key={app}>
          {i > 0 ? ", " : null}
          <a href={`#${cardId(app)}`}>{app}</a>
        </span>
      ))}
      . Each card says why and what to do.
    </p>
  );
}

export function Ops(): ReactNode {
  useTitle("Operations");
  const { session } = useSession();
  const api = useApi();
  const [live, setLive] = useState(true);
  const ops = useAsync((signal) => api.json<OpsSnapshot>("GET", "/v1/ops", undefined, signal), [api]);
  useInterval(ops.reload, REFRESH_MS, live && !ops.error);
  const models = useModels();
  const availability = useMemo(() => new Map((models.data ?? []).map((m) => [m.endpoint_id, m.availability])), [models.data]);
  const unavailable = (ops.data?.apps ?? []).map((a) => a.app).filter((app) => availability.get(app)?.available === false).sort();

  return (
    <div>
      <h1 tabIndex={-1}>Operations</h1>
      <div className="filters">
        <label className="checkbox">
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} />
          <span>Refresh every {REFRESH_MS / 1000} s</span>
        </label>
        {ops.data ? <span className="muted small">Server up {formatSeconds(ops.data.uptime_s)}</span> : null}
        <SpareRunners spares={ops.data?.spare_runners} />
      </div>
      {session?.scope !== "admin" ? <p className="notice warning">The operations view needs an admin key.</p> : null}
      {ops.error ? <ErrorNotice error={ops.error} onRetry={ops.reload} /> : null}
      {!ops.data && !ops.error ? <Loading what="the operations view" /> : null}
      {ops.data ? (
        <>
          <UnavailableSummary apps={unavailable} />
          <ul className="cards ops-cards" aria-label="Apps">
            {ops.data.apps.map((a) => (
              <AppCard key={a.app} ops={a} availability={availability.get(a.app)} />
            ))}
          </ul>
        </>
      ) : null}
    </div>
  );
}
