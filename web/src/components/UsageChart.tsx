/**
 * The Usage page's chart: uPlot (a small canvas time-series chart) over the buckets, one line per
 * series or stacked areas, times in UTC as the server buckets them. A canvas says nothing to a
 * screen reader, so the same numbers follow in a table (closed by default).
 * @module
 */
import { useEffect, useRef, type ReactNode } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatSeconds } from "../lib/format.js";
import { formatAmount, stacked, type ChartData, type Metric } from "../lib/usage.js";

/** Series colours, distinct on the dark and the light theme alike. */
const PALETTE = ["#f5a524", "#4e9cf5", "#3ecf8e", "#e05d9f", "#9b7bf0", "#e0703c", "#35b8c4", "#a0a8b6"];
const HEIGHT = 300;

/** A value of `metric` for the axis, the legend and the table: seconds for compute time, amounts otherwise. */
export function formatMetric(value: number, metric: Metric): string {
  if (metric === "compute") return formatSeconds(value);
  return formatAmount(value);
}

function timeLabel(seconds: number, withTime: boolean): string {
  const iso = new Date(seconds * 1000).toISOString();
  return withTime ? `${iso.slice(0, 16).replace("T", " ")}` : iso.slice(0, 10);
}

/**
 * `label` names the chart (its table's region); `caption` says how to read it. `withTime` writes
 * buckets with their time of day (minute and hour buckets), else as dates.
 */
export function UsageChart(props: { data: ChartData; metric: Metric; stack: boolean; label: string; caption: string; withTime: boolean }): ReactNode {
  const { data, metric, stack, label, withTime } = props;
  const holder = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const el = holder.current;
    if (!el || data.series.length === 0) return undefined;
    const style = getComputedStyle(el);
    const text = style.getPropertyValue("--muted").trim() || "#9aa3b2";
    const grid = style.getPropertyValue("--border").trim() || "#2a3242";
    const raw = data.series.map((s) => s.values);
    const drawn = stack ? stacked(data.series) : raw;
    // Stacked: the top band is drawn first and each lower one over it, so that every fill reaches down to 0.
    const order = data.series.map((_, i) => (stack ? data.series.length - 1 - i : i));
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height: HEIGHT,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.08 : 1] } },
      axes: [
        { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } },
        { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, size: 70, values: (_u, splits) => splits.map((v) => formatMetric(v, metric)) },
      ],
      series: [
        { label: "Bucket (UTC)", value: (_u, v) => (v === null ? "–" : timeLabel(v, withTime)) },
        ...order.map((i) => {
          const color = PALETTE[i % PALETTE.length] ?? "#888";
          return {
            label: data.series[i]?.label ?? "",
            stroke: color,
            width: 2,
            ...(stack ? { fill: color } : {}),
            points: { show: data.times.length <= 60 },
            // The legend shows each series' own value, not the stacked sum it is drawn at.
            value: (_u: uPlot, _v: number | null, _s: number, idx: number | null) => (idx === null ? "–" : formatMetric(raw[i]?.[idx] ?? 0, metric)),
          };
        }),
      ],
      legend: { live: true },
    };
    const plotData: uPlot.AlignedData = [data.times, ...order.map((i) => drawn[i] ?? [])];
    const plot = new uPlot(opts, plotData, el);
    plot.root.querySelector("canvas")?.setAttribute("aria-hidden", "true");
    const observer = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height: HEIGHT }));
    observer.observe(el);
    return () => {
      observer.disconnect();
      plot.destroy();
    };
  }, [data, metric, stack, withTime]);

  if (data.series.length === 0) return <p className="muted">No usage in this period.</p>;
  return (
    <figure className="usage-chart">
      <figcaption className="muted small">{props.caption}</figcaption>
      <div ref={holder} className="usage-plot" data-testid="usage-chart" />
      <details className="chart-data">
        <summary>The numbers (table)</summary>
        <div className="table-wrap" tabIndex={0} role="region" aria-label={`${label}: table`}>
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Bucket (UTC)</th>
                {data.series.map((s) => (
                  <th key={s.label} scope="col">
                    {s.label}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {data.times.map((t, i) => (
                <tr key={t}>
                  <th scope="row">{timeLabel(t, withTime)}</th>
                  {data.series.map((s) => (
                    <td key={s.label}>{formatMetric(s.values[i] ?? 0, metric)}</td>
                  ))}
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <th scope="row">Total</th>
                {data.series.map((s) => (
                  <td key={s.label} data-series={s.label}>
                    {formatMetric(s.total, metric)}
                  </td>
                ))}
              </tr>
            </tfoot>
          </table>
        </div>
      </details>
    </figure>
  );
}
