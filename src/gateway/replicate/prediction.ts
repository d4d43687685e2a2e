/**
 * A request as Replicate's prediction object (`id, model, version, input, output, logs, error,
 * status, created_at, started_at, completed_at, urls, metrics`): what the `/replicate/v1` routes
 * answer and what a prediction's webhooks carry.
 * @module
 */
import { isTerminal, type AppManifest, type RequestRecord } from "../../core/types.js";
import type { Store } from "../../store/store.js";

export type PredictionStatus = "starting" | "processing" | "succeeded" | "failed" | "canceled";

export function predictionStatus(record: RequestRecord): PredictionStatus {
  switch (record.state) {
    case "QUEUED":
      return "starting";
    case "RUNNING":
      return "processing";
    case "SUCCEEDED":
      return "succeeded";
    case "FAILED":
      return "failed";
    case "CANCELLED":
      return "canceled";
  }
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

export interface PredictionSources {
  store: Pick<Store, "getLogs">;
  appOf: (appId: string) => AppManifest | undefined;
  revisionOf: (app: AppManifest) => string;
}

/**
 * The prediction object of `record`; `apiBase` is `{origin}/replicate/v1`. `output` overrides the
 * record's (a running prediction's output so far, for `output` webhooks); `streamUrl` is its signed
 * server-sent-events URL.
 */
export async function predictionOf(sources: PredictionSources, record: RequestRecord, apiBase: string, options: { logs?: boolean; output?: unknown; streamUrl?: string } = {}): Promise<Record<string, unknown>> {
  const app = sources.appOf(record.appId);
  const logs = options.logs !== false && record.state !== "QUEUED" ? (await sources.store.getLogs(record.id)).map((l) => l.message).join("\n") : "";
  return {
    id: record.id,
    model: record.appId,
    version: app ? sources.revisionOf(app) : record.appId,
    input: record.input,
    output: options.output !== undefined ? options.output : record.state === "SUCCEEDED" ? record.output : null,
    logs,
    error: record.state === "FAILED" ? (record.error ?? "Prediction failed") : null,
    status: predictionStatus(record),
    source: "api",
    data_removed: false,
    created_at: iso(record.createdAt),
    started_at: iso(record.startedAt),
    completed_at: isTerminal(record.state) ? iso(record.finishedAt) : null,
    urls: { get: `${apiBase}/predictions/${record.id}`, cancel: `${apiBase}/predictions/${record.id}/cancel`, ...(options.streamUrl ? { stream: options.streamUrl } : {}) },
    metrics: record.startedAt !== null && record.finishedAt !== null ? { predict_time: Math.max(0, record.finishedAt - record.startedAt) / 1000 } : {},
  };
}
