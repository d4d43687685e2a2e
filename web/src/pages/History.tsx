/**
 * Past requests from `/v1/requests`, newest first, filtered by app and status (kept in the URL),
 * each reopenable with its inputs.
 * @module
 */
import { useEffect, useState, type ReactNode } from "react";
import type { RequestState, RequestSummary } from "../api.js";
import { ErrorNotice, Loading, SelectFilter, StackTable, StateBadge } from "../components/common.js";
import { formatSeconds, formatTime, secondsBetween } from "../lib/format.js";
import { useModels, useTitle } from "../hooks.js";
import { Link, navigate, useLocation } from "../router.js";
import { useSession } from "../session.js";

const STATES: RequestState[] = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];
const PAGE = 50;

export function History(): ReactNode {
  useTitle("History");
  const { session } = useSession();
  const models = useModels();
  const { query } = useLocation();
  const app = query.get("app") ?? "";
  const status = query.get("status") ?? "";
  const [rows, setRows] = useState<RequestSummary[] | null>(null);
  const [nextBefore, setNextBefore] = useState<number | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [loading, setLoading] = useState(false);
  const [tick, setTick] = useState(0);

  const load = async (before: number | null, signal?: AbortSignal): Promise<void> => {
    if (!session) return;
    setLoading(true);
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (app) params.set("app", app);
    if (status) params.set("status", status);
    if (before !== null) params.set("before", String(before));
    try {
      const page = await session.api.json<{ requests: RequestSummary[]; next_before: number | null }>("GET", `/v1/requests?${params.toString()}`, undefined, signal);
      setRows((r) => (before === null ? page.requests : [...(r ?? []), ...page.requests]));
      setNextBefore(page.requests.length === PAGE ? page.next_before : null);
      setError(null);
    } catch (err) {
      if (!signal?.aborted) setError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      if (!signal?.aborted) setLoading(false);
    }
  };

  useEffect(() => {
    const controller = new AbortController();
    setRows(null);
    void load(null, controller.signal);
    return () => controller.abort();
    // `load` reads only the filters and the session, which are listed.
  }, [app, status, session, tick]);

  const setFilter = (name: "app" | "status", value: string): void => {
    const next = new URLSearchParams(query);
    if (value) next.set(name, value);
    else next.delete(name);
    const qs = next.toString();
    navigate(`/history${qs ? `?${qs}` : ""}`, { replace: true });
  };

  return (
    <div>
      <h1 tabIndex={-1}>History</h1>
      <div className="filters" role="search">
        <SelectFilter
          id="history-app"
          label="App"
          value={app}
          onChange={(value) => setFilter("app", value)}
          any="All apps"
          options={[
            ...(models.data ?? []).map((m) => ({ value: m.endpoint_id, label: m.endpoint_id })),
            // An app in the URL that is not served (any more) stays selectable, so the filter shows what it holds.
            ...(app && !(models.data ?? []).some((m) => m.endpoint_id === app) ? [{ value: app, label: app }] : []),
          ]}
        />
        <SelectFilter
          id="history-status"
          label="Status"
          value={status}
          onChange={(value) => setFilter("status", value)}
          any="Any status"
          options={STATES.map((s) => ({ value: s, label: s.charAt(0) + s.slice(1).toLowerCase() }))}
        />
        <button type="button" className="button" onClick={() => setTick((t) => t + 1)}>
          Refresh
        </button>
      </div>
      {error ? <ErrorNotice error={error} onRetry={() => setTick((t) => t + 1)} /> : null}
      {rows === null && !error ? <Loading what="requests" /> : null}
      {rows !== null ? (
        rows.length === 0 ? (
          <p className="muted">No requests{app || status ? " match these filters" : " yet"}.</p>
        ) : (
          <StackTable label="Requests" columns={["Created", "App", "Status", "Duration", "Request"]}>
            {rows.map((r) => (
              <tr key={r.request_id} data-request-id={r.request_id}>
                <td data-label="Created">{formatTime(r.created_at)}</td>
                <td data-label="App">
                  <code>{r.endpoint_id}</code>
                </td>
                <td data-label="Status">
                  <StateBadge state={r.state} />
                  {r.error ? <span className="row-error" title={r.error}>{r.error_type ?? "error"}</span> : null}
                </td>
                <td data-label="Duration">{formatSeconds(secondsBetween(r.created_at, r.finished_at))}</td>
                <td data-label="Request">
                  <Link href={`/app?id=${encodeURIComponent(r.app_id)}&request=${encodeURIComponent(r.request_id)}`} aria-label={`Open request ${r.request_id} of ${r.app_id}`}>
                    Open <code>{r.request_id.slice(0, 8)}</code>
                  </Link>
                </td>
              </tr>
            ))}
          </StackTable>
        )
      ) : null}
      {nextBefore !== null ? (
        <button type="button" className="button" disabled={loading} onClick={() => void load(nextBefore)}>
          {loading ? "Loading…" : "Load older requests"}
        </button>
      ) : null}
    </div>
  );
}
