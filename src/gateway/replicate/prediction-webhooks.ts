/**
 * A Replicate prediction's `start`, `output` and `logs` webhooks (`webhook_events_filter`): sent
 * while it runs, from its request's events on the gateway that took it, `output` and `logs` at most
 * every 500 ms (the latest state then). Each goes through the webhook outbox (retried, logged,
 * signed by Standard Webhooks for the prediction's tenant). `completed` is the outbox's own, written
 * when the request ends (webhooks/deliverer.ts), so it survives a restart; these live only while
 * the gateway that took the prediction does.
 * @module
 */
import { isTerminal, type RequestRecord } from "../../core/types.js";
import type { RequestEvent } from "../../scheduler/request-events.js";
import type { PredictionWebhook, Store } from "../../store/store.js";
import { predictionOf, type PredictionSources } from "./prediction.js";

const THROTTLE_MS = 500;

export interface PredictionWebhookDeps {
  store: Pick<Store, "get" | "enqueueWebhook" | "getLogs">;
  sources: PredictionSources;
  subscribe: (requestId: string, listener: (event: RequestEvent) => void) => () => void;
}

export function followPredictionWebhooks(deps: PredictionWebhookDeps, record: RequestRecord, hook: PredictionWebhook & { url: string }, apiBase: string): void {
  const wants = new Set(hook.events);
  if (!wants.has("start") && !wants.has("output") && !wants.has("logs")) return;
  let started = false;
  let lastSent = 0;
  let trailing: NodeJS.Timeout | null = null;
  let output: unknown;
  let ended = false;

  const send = async (): Promise<void> => {
    const current = (await deps.store.get(record.id)) ?? record;
    if (isTerminal(current.state)) return; // `completed` says the rest
    const body = JSON.stringify(await predictionOf(deps.sources, current.state === "QUEUED" ? { ...current, state: "RUNNING" } : current, apiBase, output !== undefined ? { output } : {}));
    await deps.store.enqueueWebhook({ requestId: record.id, url: hook.url, body, scheme: `standard:${hook.tenant}` });
  };
  const sendSoon = (): void => {
    if (ended || trailing) return;
    const wait = Math.max(0, lastSent + THROTTLE_MS - Date.now());
    trailing = setTimeout(() => {
      trailing = null;
      lastSent = Date.now();
      void send().catch(() => undefined);
    }, wait);
    trailing.unref();
  };
  const unsubscribe = deps.subscribe(record.id, (event) => {
    if (ended) return;
    if (event.type === "state" && isTerminal(event.record.state)) {
      ended = true;
      if (trailing) clearTimeout(trailing);
      unsubscribe();
      return;
    }
    const running = event.type !== "state" || event.record.state === "RUNNING";
    if (running && !started) {
      started = true;
      if (wants.has("start")) {
        lastSent = Date.now();
        void send().catch(() => undefined);
      }
    }
    if (event.type === "partial" && wants.has("output")) {
      output = event.data;
      sendSoon();
    }
    if (event.type === "log" && wants.has("logs")) sendSoon();
  });
}
