// The runner scaling rule of deploy/: KEDA's ScaledObject reading the gateway's /metrics. No cluster
// here, so KEDA and the HPA are modelled by their documented rules and fed the real ScaledObjects
// and a /metrics text rendered by the gateway's own Metrics class.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GRACE_MARGIN_SECONDS, RUNNER_APPS } from "../../deploy/apps.js";
import { DEFAULT_OPTIONS, RUNNERS_DIR, renderRunnerFiles, runnerDeployment, runnerScaledObject, staleRunnerFiles } from "../../deploy/generate.js";
import { DEFAULT_KNOBS } from "../../src/core/types.js";
import { Metrics } from "../../src/observability/metrics.js";

interface Trigger {
  type: string;
  metricType?: string;
  metadata: Record<string, string>;
}

interface ScaledObjectSpec {
  cooldownPeriod: number;
  minReplicaCount: number;
  maxReplicaCount: number;
  triggers: Trigger[];
}

function scaledObjectOf(appId: string): ScaledObjectSpec {
  const app = RUNNER_APPS.find((a) => a.id === appId);
  assert.ok(app, `${appId} is in deploy/apps.ts`);
  return (runnerScaledObject(app, DEFAULT_OPTIONS) as { spec: ScaledObjectSpec }).spec;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format, as far as gauges need it. */
function parseExposition(text: string, targetLabels: Record<string, string> = {}): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    assert.ok(m, `parses ${line}`);
    const labels: Record<string, string> = { ...targetLabels };
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, "$1");
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/**
 * What Prometheus answers to the trigger's query over what it scraped. Only the shape the
 * generator writes is understood: `max(metric{app="id"})`; an empty result is KEDA's null value.
 */
function evaluate(query: string, scraped: Sample[]): number | null {
  const m = /^max\(([a-zA-Z_:][a-zA-Z0-9_:]*)\{app="([^"]+)"\}\)$/.exec(query);
  assert.ok(m, `query has the generated shape: ${query}`);
  const values = scraped.filter((s) => s.name === m[1] && s.labels["app"] === m[2]).map((s) => s.value);
  return values.length === 0 ? null : Math.max(...values);
}

/** Each gateway replica renders /metrics from its own Metrics object, with what it read from the shared store. */
async function scrapeGateways(replicas: number, demand: Record<string, { queued: number; running: number }>): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let i = 0; i < replicas; i++) {
    const metrics = new Metrics();
    for (const [app, d] of Object.entries(demand)) {
      metrics.queueDepth.set({ app }, d.queued);
      metrics.outstanding.set({ app }, d.queued + d.running);
    }
    samples.push(...parseExposition(await metrics.registry.metrics(), { instance: `10.0.0.${i + 1}:8787`, job: "darkroom-gateway" }));
  }
  return samples;
}

/** HPA's rule for an AverageValue target; it leaves the count alone within 10 % of the target. */
const HPA_TOLERANCE = 0.1;

interface KedaState {
  replicas: number;
  /** Seconds since the trigger was last active; Infinity when never. */
  idleFor: number;
}

/**
 * One KEDA + HPA evaluation: activation (value > activationThreshold) scales 0 → 1 and hands over to
 * the HPA; inactivity past cooldownPeriod scales to minReplicaCount (0); in between the HPA sets
 * ceil(value / threshold) clamped to [max(1, min), max].
 */
function desiredReplicas(so: ScaledObjectSpec, value: number | null, state: KedaState): number {
  const trigger = so.triggers[0]!;
  assert.equal(trigger.metricType ?? "AverageValue", "AverageValue");
  // ignoreNullValues "false": a missing series is an error, and KEDA keeps the count it has.
  if (value === null) {
    assert.equal(trigger.metadata["ignoreNullValues"], "false");
    return state.replicas;
  }
  const threshold = Number(trigger.metadata["threshold"]);
  const activation = Number(trigger.metadata["activationThreshold"] ?? "0");
  const active = value > activation;
  if (!active) {
    if (state.replicas === 0) return 0;
    return state.idleFor >= so.cooldownPeriod ? so.minReplicaCount : state.replicas;
  }
  const current = Math.max(state.replicas, 1);
  const floor = Math.max(1, so.minReplicaCount);
  const ratio = value / (threshold * current);
  const desired = Math.abs(ratio - 1) <= HPA_TOLERANCE ? current : Math.ceil(value / threshold);
  return Math.min(so.maxReplicaCount, Math.max(floor, desired));
}

async function replicasFor(appId: string, demand: { queued: number; running: number }, state: KedaState, gateways = 2): Promise<number> {
  const so = scaledObjectOf(appId);
  const scraped = await scrapeGateways(gateways, { [appId]: demand, "darkroom/other": { queued: 50, running: 9 } });
  return desiredReplicas(so, evaluate(so.triggers[0]!.metadata["query"]!, scraped), state);
}

const cold: KedaState = { replicas: 0, idleFor: Number.POSITIVE_INFINITY };

describe("runner scaling from the gateway's queue metrics", () => {
  it("the runner manifests on disk are the ones these ScaledObjects come from", () => {
    assert.deepEqual(staleRunnerFiles(RUNNERS_DIR, renderRunnerFiles()), []);
  });

  it("every runner can scale to zero, and starts when one request waits", () => {
    for (const app of RUNNER_APPS) {
      const so = scaledObjectOf(app.id);
      assert.equal(so.minReplicaCount, 0, app.id);
      assert.equal(so.triggers.length, 1, app.id);
      assert.equal(so.triggers[0]!.type, "prometheus", app.id);
      assert.equal(so.triggers[0]!.metadata["activationThreshold"], "0", app.id);
      assert.equal(so.triggers[0]!.metadata["threshold"], String(app.concurrency), app.id);
    }
  });

  it("0 queued → 0 runners; 1 queued → 1 runner", async () => {
    for (const app of ["darkroom/upscale", "darkroom/echo", "acme/image-gen"]) {
      assert.equal(await replicasFor(app, { queued: 0, running: 0 }, cold), 0, app);
      assert.equal(await replicasFor(app, { queued: 1, running: 0 }, cold), 1, app);
    }
  });

  it("25 waiting with 4 per runner → 7 runners", async () => {
    assert.equal(scaledObjectOf("acme/image-gen").triggers[0]!.metadata["threshold"], "4");
    assert.equal(await replicasFor("acme/image-gen", { queued: 25, running: 0 }, { replicas: 1, idleFor: 0 }), 7);
    assert.equal(await replicasFor("acme/image-gen", { queued: 17, running: 8 }, { replicas: 2, idleFor: 0 }), 7);
  });

  it("is capped at maxReplicaCount", async () => {
    const so = scaledObjectOf("darkroom/upscale");
    assert.equal(await replicasFor("darkroom/upscale", { queued: 100, running: 0 }, { replicas: 1, idleFor: 0 }), so.maxReplicaCount);
    assert.equal(await replicasFor("darkroom/echo", { queued: 10_000, running: 64 }, { replicas: 2, idleFor: 0 }), scaledObjectOf("darkroom/echo").maxReplicaCount);
  });

  it("keeps busy runners: running requests count even when the queue is empty", async () => {
    // Queue depth alone would read 0 here and scale the four working runners away.
    assert.equal(await replicasFor("darkroom/upscale", { queued: 0, running: 4 }, { replicas: 4, idleFor: 0 }), 4);
    assert.equal(await replicasFor("darkroom/upscale", { queued: 0, running: 1 }, { replicas: 1, idleFor: 10_000 }), 1);
  });

  it("scales to zero only once the cooldown has passed with nothing outstanding", async () => {
    const so = scaledObjectOf("darkroom/upscale");
    assert.equal(await replicasFor("darkroom/upscale", { queued: 0, running: 0 }, { replicas: 1, idleFor: so.cooldownPeriod - 1 }), 1);
    assert.equal(await replicasFor("darkroom/upscale", { queued: 0, running: 0 }, { replicas: 1, idleFor: so.cooldownPeriod }), 0);
  });

  it("counts the shared queue once however many gateways export it", async () => {
    for (const gateways of [1, 2, 5]) {
      assert.equal(await replicasFor("darkroom/upscale", { queued: 3, running: 0 }, { replicas: 1, idleFor: 0 }, gateways), 3, `${gateways} gateways`);
    }
  });

  it("keeps the count when the gateways' series is gone, rather than reading it as no work", () => {
    const so = scaledObjectOf("darkroom/upscale");
    assert.equal(desiredReplicas(so, evaluate(so.triggers[0]!.metadata["query"]!, []), { replicas: 3, idleFor: 10_000 }), 3);
  });

  it("built-in apps scale by their own knobs: concurrency, keep_alive, request_timeout", async () => {
    for (const app of RUNNER_APPS.filter((a) => a.builtin)) {
      const mod = (await import(`../../src/apps/${app.builtin}/app.ts`)) as { default: { id: string; knobs?: Partial<typeof DEFAULT_KNOBS> } };
      const knobs = { ...DEFAULT_KNOBS, ...mod.default.knobs };
      assert.equal(mod.default.id, app.id);
      assert.equal(app.concurrency, knobs.max_multiplexing, `${app.id} concurrency = max_multiplexing`);
      assert.equal(app.cooldownSeconds, knobs.keep_alive, `${app.id} cooldown = keep_alive`);
      assert.equal(app.terminationGraceSeconds, knobs.request_timeout + GRACE_MARGIN_SECONDS, `${app.id} grace covers request_timeout`);
    }
  });

  it("gives an app that splits a request over worker threads as many threads as the CPUs its pod requests", () => {
    // Node counts the node's cores, not the pod's share: without this, a 64-core node would give
    // the upscale runner 8 threads, each with its own model, on 2 requested CPUs and 4 GiB.
    const threaded = new Set(["upscale", "video-upscale"]);
    const deployed = RUNNER_APPS.filter((app) => app.builtin !== undefined && threaded.has(app.builtin));
    assert.ok(deployed.length > 0, "an app with model threads is deployed");
    for (const app of deployed) {
      const container = (runnerDeployment(app, DEFAULT_OPTIONS) as any).spec.template.spec.containers[0];
      const env = new Map((container.env as { name: string; value?: string }[]).map((e) => [e.name, e.value]));
      assert.equal(env.get("DARKROOM_MODEL_THREADS"), String(Math.max(1, Math.floor(Number(app.requests.cpu)))), app.id);
    }
  });
});
