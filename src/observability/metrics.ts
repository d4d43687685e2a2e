/**
 * Prometheus metrics of the platform (served at `/metrics`).
 * @module
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { TenantLabels } from "./tenant-labels.js";

/** Tenants named in per-tenant metrics; the rest are "other" (tenant-labels.ts). */
export const NAMED_TENANTS = 20;

export class Metrics {
  readonly registry = new Registry();
  readonly queueDepth = new Gauge({ name: "darkroom_queue_depth", help: "Queued requests per app", labelNames: ["app"], registers: [this.registry] });
  /** What runner autoscalers (KEDA) scale on: queue depth alone reads 0 while runners are busy, which would scale them away mid-request. */
  readonly outstanding = new Gauge({ name: "darkroom_requests_outstanding", help: "Queued plus running requests per app", labelNames: ["app"], registers: [this.registry] });
  readonly runners = new Gauge({ name: "darkroom_runners", help: "Runners per app and state", labelNames: ["app", "state"], registers: [this.registry] });
  readonly requestDuration = new Histogram({
    name: "darkroom_request_duration_seconds",
    help: "Time from submit to terminal state",
    labelNames: ["app", "state"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly runDuration = new Histogram({
    name: "darkroom_run_duration_seconds",
    help: "Time a runner spent on a request",
    labelNames: ["app"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly requestsTotal = new Counter({ name: "darkroom_requests_total", help: "Finished requests", labelNames: ["app", "state"], registers: [this.registry] });
  readonly coldStarts = new Counter({ name: "darkroom_cold_starts_total", help: "Runner starts that ran setup()", labelNames: ["app"], registers: [this.registry] });
  readonly coldStartDuration = new Histogram({
    name: "darkroom_cold_start_duration_seconds",
    help: "Runner spawn to ready, including setup()",
    labelNames: ["app"],
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 600],
    registers: [this.registry],
  });
  readonly coldStartPhase = new Histogram({
    name: "darkroom_cold_start_phase_seconds",
    help: "One phase of a runner's cold start: spawn (fork to process start), runtime (Node, loader, runner modules), import (the app's modules), setup, first_request (the first run, dispatch to outcome); for a spare runner, spawn is not observed and runtime is what was left of its loading when it was taken",
    labelNames: ["app", "phase"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 120],
    registers: [this.registry],
  });
  readonly spareRunners = new Gauge({ name: "darkroom_spare_runners", help: "Spare runner processes with the runtime loaded, by state (starting, ready)", labelNames: ["state"], registers: [this.registry] });
  readonly spareRunnersTaken = new Counter({ name: "darkroom_spare_runners_taken_total", help: "Runner starts that took a spare instead of spawning", labelNames: ["app"], registers: [this.registry] });
  readonly runnerFailures = new Counter({ name: "darkroom_runner_failures_total", help: "Runners that crashed, hung or failed setup", labelNames: ["app", "reason"], registers: [this.registry] });
  // Per tenant: the busiest NAMED_TENANTS by name, the others as "other" (bounded cardinality).
  readonly tenantLabels = new TenantLabels(NAMED_TENANTS);
  readonly tenantRequests = new Counter({ name: "darkroom_tenant_requests_total", help: "Finished requests per tenant", labelNames: ["tenant", "state"], registers: [this.registry] });
  readonly tenantRunSeconds = new Counter({ name: "darkroom_tenant_run_seconds_total", help: "Runner time per tenant", labelNames: ["tenant"], registers: [this.registry] });
  readonly tenantQueueWait = new Histogram({
    name: "darkroom_tenant_queue_wait_seconds",
    help: "Time from submit to start (or to the end, for requests that never started) per tenant",
    labelNames: ["tenant"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly webhookDeliveries = new Counter({ name: "darkroom_webhook_deliveries_total", help: "Webhook delivery attempts", labelNames: ["outcome"], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
