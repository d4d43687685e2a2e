/**
 * Usage (admin keys): requests, cost and compute time over a period from `GET /v1/models/usage`,
 * charted per app or per tenant, a summary per endpoint, and the API's CSV export. The choices are
 * kept in the URL. How tenants are told apart: lib/usage.ts.
 * @module
 */
import { useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import type { Api, KeyView } from "../api.js";
import { ErrorNotice, FilterField, Loading, StackTable } from "../components/common.js";
import { UsageChart } from "../components/UsageChart.js";
import { formatSeconds } from "../lib/format.js";
import {
  bucketCount,
  chartData,
  fileNameOf,
  formatAmount,
  formatCosts,
  GROUPINGS,
  isPeriod,
  METRICS,
  PERIODS,
  periodChoice,
  periodRange,
  summaryRows,
  tenantMap,
  timeframeFor,
  usageCsvQuery,
  usagePageQuery,
  usageTotals,
  type Grouping,
  type Metric,
  type Period,
  type UsageAnswer,
  type UsageBucket,
  type UsageLine,
  type UsageQuery,
} from "../lib/usage.js";
import { useAsync, useTitle } from "../hooks.js";
import { navigate, useLocation } from "../router.js";
import { useApi, useSession } from "../session.js";

interface LoadedUsage {
  buckets: UsageBucket[];
  summary: UsageLine[];
  /** The range and timeframe the server covered (aligned to whole buckets). */
  start: string;
  end: string;
  timeframe: UsageAnswer["timeframe"];
}

interface Progress {
  loaded: number;
  total: number | null;
}

/** Reads every page of the range, reporting the buckets read so far. */
async function loadUsage(api: Api, query: UsageQuery, onProgress: (p: Progress) => void, signal: AbortSignal): Promise<LoadedUsage> {
  const buckets: UsageBucket[] = [];
  let first: UsageAnswer | null = null;
  let cursor: string | null = null;
  onProgress({ loaded: 0, total: null });
  do {
    const page: UsageAnswer = await api.json<UsageAnswer>("GET", `/v1/models/usage?${usagePageQuery(query, cursor)}`, undefined, signal);
    first ??= page;
    buckets.push(...(page.time_series ?? []));
    onProgress({ loaded: buckets.length, total: bucketCount(Date.parse(first.start), Date.parse(first.end), first.timeframe) });
    cursor = page.has_more ? page.next_cursor : null;
  } while (cursor !== null);
  return { buckets, summary: first.summary ?? [], start: first.start, end: first.end, timeframe: first.timeframe };
}

function UsageProgress({ progress }: { progress: Progress | null }): ReactNode {
  const total = progress?.total ?? null;
  return (
    <div className="usage-progress" role="status" data-testid="usage-progress">
      {total !== null && progress ? <progress value={progress.loaded} max={Math.max(1, total)} aria-label="Usage loaded" /> : <progress aria-label="Usage loading" />}
      <span className="muted small">{total !== null && progress ? `Loading usage: ${progress.loaded} of ${total} buckets…` : "Loading usage…"}</span>
    </div>
  );
}

/** Fetches the CSV export with the key (a plain link could not send it) and saves it under the server's file name. */
function CsvDownload({ api, query }: { api: Api; query: UsageQuery }): ReactNode {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const download = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      const { blob, headers } = await api.blob(`/v1/models/usage?${usageCsvQuery(query)}`);
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = fileNameOf(headers.get("content-disposition"), "darkroom-usage.csv");
      document.body.appendChild(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" className="button" onClick={() => void download()} disabled={busy} aria-describedby="usage-csv-hint">
        {busy ? "Preparing CSV…" : "Download CSV"}
      </button>
      <span id="usage-csv-hint" className="visually-hidden">
        The API&apos;s CSV export of this period: one row per bucket, endpoint, price and key
      </span>
      {error ? <ErrorNotice error={error} /> : null}
    </>
  );
}

function SummaryTable({ lines }: { lines: readonly UsageLine[] }): ReactNode {
  const rows = summaryRows(lines);
  if (rows.length === 0) return <p className="muted">No requests finished in this period.</p>;
  return (
    <StackTable label="Usage per endpoint" columns={["Endpoint", "Requests", "Quantity", "Unit", "Unit price", "Cost", "Compute"]}>
      {rows.map((r) => (
        <tr key={`${r.endpoint_id} ${r.unit} ${r.unit_price} ${r.currency}`} data-endpoint={r.endpoint_id}>
          <td data-label="Endpoint">
            <code>{r.endpoint_id}</code>
          </td>
          <td data-label="Requests" data-stat="requests">
            {r.request_count}
          </td>
          <td data-label="Quantity" data-stat="quantity">
            {formatAmount(r.quantity)}
          </td>
          <td data-label="Unit" data-stat="unit">
            {r.unit}
          </td>
          <td data-label="Unit price" data-stat="unit_price">
            {formatAmount(r.unit_price)} {r.currency}
          </td>
          <td data-label="Cost" data-stat="cost">
            {formatAmount(r.cost)} {r.currency}
          </td>
          <td data-label="Compute" data-stat="compute">
            {formatSeconds(r.compute_seconds)}
          </td>
        </tr>
      ))}
    </StackTable>
  );
}

const CHART_MODES = [
  { value: "lines", label: "One line per series" },
  { value: "stacked", label: "Stacked" },
] as const;

export function Usage(): ReactNode {
  useTitle("Usage");
  const api = useApi();
  const { session } = useSession();
  const { query: params } = useLocation();
  const rawPeriod = params.get("period");
  const period: Period = isPeriod(rawPeriod) ? rawPeriod : "24h";
  const timeframe = timeframeFor(period, params.get("timeframe"));
  const metric: Metric = METRICS.find((m) => m.value === params.get("metric"))?.value ?? "requests";
  const grouping: Grouping = GROUPINGS.find((g) => g.value === params.get("group"))?.value ?? "app";
  const stack = params.get("chart") === "stacked";
  // The period ends when it was chosen (or refreshed), not at every render.
  const [now, setNow] = useState(() => Date.now());
  const range = periodRange(period, now);
  const query: UsageQuery = { ...range, timeframe };
  const [progress, setProgress] = useState<Progress | null>(null);
  const headingRef = useRef<HTMLHeadingElement>(null);
  // Loaded on first visit: the shell focused the placeholder's heading, which is gone now.
  useEffect(() => {
    if (document.activeElement === document.body) headingRef.current?.focus();
  }, []);
  const usage = useAsync(
    (signal) =>
      loadUsage(
        api,
        query,
        (p) => {
          if (!signal.aborted) setProgress(p);
        },
        signal,
      ),
    [api, period, timeframe, now],
  );
  const keys = useAsync((signal) => api.json<{ keys: KeyView[] }>("GET", "/v1/keys", undefined, signal), [api, now]);

  const setParam = (name: string, value: string): void => {
    const next = new URLSearchParams(params);
    next.set(name, value);
    // A new period starts now, at the timeframe that fits it unless the one chosen does too.
    if (name === "period") {
      setNow(Date.now());
      if (isPeriod(value)) next.set("timeframe", timeframeFor(value, next.get("timeframe")));
    }
    navigate(`/usage?${next.toString()}`, { replace: true });
  };

  const data = usage.loading ? null : usage.data;
  const keyList = keys.data?.keys;
  // Memoised: the chart is drawn anew only when its numbers change.
  const chart = useMemo(() => (data ? chartData(data.buckets, metric, grouping, tenantMap(keyList ?? [])) : null), [data, metric, grouping, keyList]);
  const metricLabel = METRICS.find((m) => m.value === metric)?.label ?? metric;
  const totals = data ? usageTotals(summaryRows(data.summary)) : null;
  const withTime = timeframe === "minute" || timeframe === "hour";

  return (
    <div className="usage-page">
      <h1 tabIndex={-1} ref={headingRef}>
        Usage
      </h1>
      {session?.scope !== "admin" ? <p className="notice warning">Usage needs an admin key.</p> : null}
      <div className="filters" role="search" aria-label="Usage period and chart">
        <FilterField id="usage-period" label="Period">
          <select id="usage-period" value={period} onChange={(e) => setParam("period", e.target.value)}>
            {PERIODS.map((p) => (
              <option key={p.value} value={p.value}>
                {p.label}
              </option>
            ))}
          </select>
        </FilterField>
        <FilterField id="usage-timeframe" label="Buckets">
          <select id="usage-timeframe" value={timeframe} onChange={(e) => setParam("timeframe", e.target.value)}>
            {periodChoice(period).timeframes.map((t) => (
              <option key={t} value={t}>
                {t === "day" ? "Daily" : `${t.charAt(0).toUpperCase()}${t.slice(1)}ly`}
              </option>
            ))}
          </select>
        </FilterField>
        <FilterField id="usage-metric" label="Metric">
          <select id="usage-metric" value={metric} onChange={(e) => setParam("metric", e.target.value)}>
            {METRICS.map((m) => (
              <option key={m.value} value={m.value}>
                {m.label}
              </option>
            ))}
          </select>
        </FilterField>
        <FilterField id="usage-group" label="Per">
          <select id="usage-group" value={grouping} onChange={(e) => setParam("group", e.target.value)} aria-describedby="usage-group-hint">
            {GROUPINGS.map((g) => (
              <option key={g.value} value={g.value}>
                {g.label}
              </option>
            ))}
          </select>
        </FilterField>
        <FilterField id="usage-chart-mode" label="Chart">
          <select id="usage-chart-mode" value={stack ? "stacked" : "lines"} onChange={(e) => setParam("chart", e.target.value)}>
            {CHART_MODES.map((m) => (
              <option key={m.value} value={m.value}>
                {m.label}
              </option>
            ))}
          </select>
        </FilterField>
        <button type="button" className="button" onClick={() => setNow(Date.now())} disabled={usage.loading}>
          Refresh
        </button>
        <CsvDownload api={api} query={query} />
      </div>
      <p id="usage-group-hint" className="hint">
        Buckets are in UTC. Per tenant counts each key under the tenant it belongs to now (Keys page).
      </p>
      {usage.error ? <ErrorNotice error={usage.error} onRetry={usage.reload} /> : null}
      {keys.error && grouping === "tenant" ? <ErrorNotice error={keys.error} onRetry={keys.reload} /> : null}
      {usage.loading ? <UsageProgress progress={progress} /> : null}
      {!usage.loading && !usage.data && !usage.error ? <Loading what="usage" /> : null}
      {data && chart && totals ? (
        <>
          <dl className="stats usage-totals" aria-label="Totals">
            <div>
              <dt>Requests</dt>
              <dd data-stat="requests">{totals.requests}</dd>
            </div>
            <div>
              <dt>Cost</dt>
              <dd data-stat="cost">{formatCosts(totals.costs)}</dd>
            </div>
            <div>
              <dt>Compute time</dt>
              <dd data-stat="compute">{formatSeconds(totals.computeSeconds)}</dd>
            </div>
          </dl>
          <p className="muted small">
            From {data.start.replace("T", " ").slice(0, 16)} to {data.end.replace("T", " ").slice(0, 16)} UTC, {data.buckets.length} {data.timeframe} buckets.
          </p>
          <section className="panel" aria-labelledby="usage-chart-heading">
            <h2 id="usage-chart-heading">
              {metricLabel} per {grouping}
            </h2>
            <UsageChart
              data={chart}
              metric={metric}
              stack={stack}
              withTime={withTime}
              label={`${metricLabel} per ${grouping}`}
              caption={`${stack ? "Stacked: the top edge is the total. " : ""}${metric === "compute" ? "Run time of the requests that finished in each bucket. " : ""}Point at the chart for a bucket's values.`}
            />
          </section>
          <section aria-labelledby="usage-summary-heading">
            <h2 id="usage-summary-heading">Per endpoint</h2>
            <SummaryTable lines={data.summary} />
          </section>
        </>
      ) : null}
    </div>
  );
}
