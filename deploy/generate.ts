/**
 * Writes one runner Deployment and one KEDA ScaledObject per app of `apps.ts` to
 * `kubernetes/runners/<owner>-<alias>.yaml`.
 *
 *   node --import tsx deploy/generate.ts [--check] [--prometheus-url URL] [--gateway-url URL] [--runner-image IMAGE]
 *
 * `--check` writes nothing and exits 1 when a file differs from what the list gives (the tests run it).
 * @module
 */
import { readFileSync, readdirSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { RUNNER_APPS, type RunnerApp } from "./apps.js";

export const RUNNERS_DIR = fileURLToPath(new URL("./kubernetes/runners/", import.meta.url));

export interface GenerateOptions {
  namespace: string;
  runnerImage: string;
  /** In-cluster URL of the gateway Service: runners connect out to it. */
  gatewayUrl: string;
  /** Prometheus that scrapes the gateways' `/metrics`, queried by KEDA. */
  prometheusUrl: string;
  /** Seconds between KEDA's queries: the delay before a first runner starts, on top of the scrape interval. */
  pollingInterval: number;
}

export const DEFAULT_OPTIONS: GenerateOptions = {
  namespace: "darkroom",
  runnerImage: "registry.example.com/darkroom/runner:0.1.0",
  gatewayUrl: "http://darkroom-gateway.darkroom.svc.cluster.local",
  // The Service prometheus-operator creates for every Prometheus (kube-prometheus-stack in `monitoring`).
  prometheusUrl: "http://prometheus-operated.monitoring.svc.cluster.local:9090",
  pollingInterval: 10,
};

/** The gauge KEDA scales on (src/observability/metrics.ts): queued plus running requests of one app. */
export const DEMAND_METRIC = "darkroom_requests_outstanding";

type Manifest = Record<string, unknown>;

/** `darkroom/upscale` → `darkroom-upscale`: Kubernetes names and label values take no slash. */
export function slugOf(appId: string): string {
  return appId.toLowerCase().replace(/[^a-z0-9-]+/g, "-");
}

export function runnerName(appId: string): string {
  return `runner-${slugOf(appId)}`;
}

/**
 * Every gateway replica reads the same shared store, so each one exports the same value: `max`
 * takes it once where `sum` would count it once per replica.
 */
export function demandQuery(appId: string): string {
  return `max(${DEMAND_METRIC}{app="${appId}"})`;
}

export function runnerDeployment(app: RunnerApp, options: GenerateOptions): Manifest {
  const name = runnerName(app.id);
  const labels = { "app.kubernetes.io/name": "darkroom", "app.kubernetes.io/component": "runner", "darkroom.dev/app": slugOf(app.id) };
  const limits: Record<string, string> = { ...app.limits };
  if (app.gpus) limits["nvidia.com/gpu"] = String(app.gpus);
  const podSpec: Manifest = {
    // Room for a runner told to stop to drain what it holds (SIGTERM); what it cannot finish goes back to the queue.
    terminationGracePeriodSeconds: app.terminationGraceSeconds,
    automountServiceAccountToken: false,
    // Service links would inject DARKROOM_GATEWAY_PORT and the like, which read as Darkroom settings.
    enableServiceLinks: false,
    securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001, seccompProfile: { type: "RuntimeDefault" } },
    containers: [
      {
        name: "runner",
        image: app.image ?? options.runnerImage,
        // `darkroom runner` takes --gateway and --token from these variables: the token stays out of `ps`.
        args: ["runner", "--app", app.app],
        // Runners hold no database or storage credentials: inputs, outputs and results all go through the gateway.
        env: [
          { name: "DARKROOM_GATEWAY", value: options.gatewayUrl },
          { name: "DARKROOM_RUNNER_TOKEN", valueFrom: { secretKeyRef: { name: "darkroom-runner-token", key: "token" } } },
          // Writable (the root file system is not): pulled model weights land under it, per pod.
          { name: "DARKROOM_DATA_DIR", value: "/var/lib/darkroom" },
          ...Object.entries(app.env ?? {}).map(([name, value]) => ({ name, value })),
        ],
        resources: { requests: { ...app.requests }, limits },
        securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
        volumeMounts: [
          { name: "tmp", mountPath: "/tmp" },
          { name: "data", mountPath: "/var/lib/darkroom" },
        ],
      },
    ],
    volumes: [
      { name: "tmp", emptyDir: {} },
      { name: "data", emptyDir: {} },
    ],
  };
  if (app.gpus) {
    // GPU nodes are usually tainted so that only pods asking for a GPU land there.
    podSpec["tolerations"] = [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }];
  }
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: options.namespace, labels, annotations: { "darkroom.dev/app-id": app.id } },
    // No `replicas`: KEDA owns the count, and applying this file again must not reset it.
    spec: {
      revisionHistoryLimit: 3,
      selector: { matchLabels: { "app.kubernetes.io/component": "runner", "darkroom.dev/app": slugOf(app.id) } },
      template: { metadata: { labels }, spec: podSpec },
    },
  };
}

export function runnerScaledObject(app: RunnerApp, options: GenerateOptions): Manifest {
  const name = runnerName(app.id);
  return {
    apiVersion: "keda.sh/v1alpha1",
    kind: "ScaledObject",
    metadata: { name, namespace: options.namespace, labels: { "app.kubernetes.io/name": "darkroom", "app.kubernetes.io/component": "runner", "darkroom.dev/app": slugOf(app.id) } },
    spec: {
      scaleTargetRef: { name },
      pollingInterval: options.pollingInterval,
      cooldownPeriod: app.cooldownSeconds,
      minReplicaCount: 0,
      maxReplicaCount: app.maxReplicas,
      advanced: {
        // Idle runners above the need stay as long as the last one would (the app's keep_alive).
        horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilizationWindowSeconds: app.cooldownSeconds } } },
      },
      triggers: [
        {
          type: "prometheus",
          metricType: "AverageValue",
          metadata: {
            serverAddress: options.prometheusUrl,
            query: demandQuery(app.id),
            // One runner per `concurrency` outstanding requests; the first as soon as one waits.
            threshold: String(app.concurrency),
            activationThreshold: "0",
            // A lost gateway is an error, not an empty queue: KEDA must not scale runners away on it.
            ignoreNullValues: "false",
          },
        },
      ],
    },
  };
}

// --- YAML ---------------------------------------------------------------------------------------

const PLAIN = /^[A-Za-z_/$][A-Za-z0-9_./$()-]*$/;
const RESERVED = /^(true|false|yes|no|on|off|y|n|null|~)$/i;

function scalar(value: unknown): string {
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "string") return PLAIN.test(value) && !RESERVED.test(value) ? value : JSON.stringify(value);
  throw new Error(`cannot write ${typeof value} as YAML`);
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function emit(value: unknown, indent: string): string[] {
  if (Array.isArray(value)) {
    if (value.length === 0) return [`${indent}[]`];
    return value.flatMap((item) => {
      const lines = isMap(item) || Array.isArray(item) ? emit(item, `${indent}  `) : [`${indent}  ${scalar(item)}`];
      const first = lines[0] ?? "";
      return [`${indent}- ${first.trimStart()}`, ...lines.slice(1)];
    });
  }
  if (isMap(value)) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return [`${indent}{}`];
    return entries.flatMap(([key, v]) => {
      const k = scalar(key);
      if ((isMap(v) && Object.keys(v).length > 0) || (Array.isArray(v) && v.length > 0)) return [`${indent}${k}:`, ...emit(v, Array.isArray(v) ? indent : `${indent}  `)];
      if (isMap(v)) return [`${indent}${k}: {}`];
      if (Array.isArray(v)) return [`${indent}${k}: []`];
      return [`${indent}${k}: ${scalar(v)}`];
    });
  }
  return [`${indent}${scalar(value)}`];
}

/** Block-style YAML of plain JSON data: every string that could read as something else is quoted. */
export function toYaml(documents: readonly unknown[]): string {
  return documents.map((d) => `${emit(d, "").join("\n")}\n`).join("---\n");
}

const HEADER = "# Generated by deploy/generate.ts from deploy/apps.ts: edit those and rerun it, not this file.\n";

/** File name → content, for every app of the list. */
export function renderRunnerFiles(apps: readonly RunnerApp[] = RUNNER_APPS, options: GenerateOptions = DEFAULT_OPTIONS): Map<string, string> {
  const files = new Map<string, string>();
  const applied: string[] = [];
  for (const app of apps) {
    const file = `${slugOf(app.id)}.yaml`;
    if (files.has(file) || file === "kustomization.yaml") throw new Error(`two files named ${file}`);
    files.set(file, HEADER + toYaml([runnerDeployment(app, options), runnerScaledObject(app, options)]));
    if (!app.example) applied.push(file);
  }
  files.set("kustomization.yaml", kustomization(applied));
  return files;
}

/** Lists the runner files for `kubectl apply -k` (kustomize takes no globs). */
function kustomization(files: readonly string[]): string {
  return HEADER + toYaml([{ apiVersion: "kustomize.config.k8s.io/v1beta1", kind: "Kustomization", resources: [...files].sort() }]);
}

/** Files that are missing, differ, or are left over from an app no longer in the list. */
export function staleRunnerFiles(dir: string, expected: Map<string, string>): string[] {
  let present: string[] = [];
  try {
    present = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const stale = present.filter((f) => !expected.has(f));
  for (const [file, content] of expected) {
    let current: string | null = null;
    try {
      current = readFileSync(path.join(dir, file), "utf8");
    } catch {
      current = null;
    }
    if (current !== content) stale.push(file);
  }
  return stale.sort();
}

function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      check: { type: "boolean", default: false },
      "prometheus-url": { type: "string" },
      "gateway-url": { type: "string" },
      "runner-image": { type: "string" },
      namespace: { type: "string" },
    },
  });
  const options: GenerateOptions = {
    ...DEFAULT_OPTIONS,
    ...(values["prometheus-url"] ? { prometheusUrl: values["prometheus-url"] } : {}),
    ...(values["gateway-url"] ? { gatewayUrl: values["gateway-url"] } : {}),
    ...(values["runner-image"] ? { runnerImage: values["runner-image"] } : {}),
    ...(values.namespace ? { namespace: values.namespace } : {}),
  };
  const files = renderRunnerFiles(RUNNER_APPS, options);
  const stale = staleRunnerFiles(RUNNERS_DIR, files);
  if (values.check) {
    if (stale.length > 0) {
      process.stderr.write(`out of date: ${stale.join(", ")} (run: node --import tsx deploy/generate.ts)\n`);
      return 1;
    }
    return 0;
  }
  mkdirSync(RUNNERS_DIR, { recursive: true });
  for (const file of stale) {
    const content = files.get(file);
    if (content === undefined) rmSync(path.join(RUNNERS_DIR, file));
    else writeFileSync(path.join(RUNNERS_DIR, file), content);
    process.stdout.write(`${content === undefined ? "removed" : "wrote"} ${path.join("deploy/kubernetes/runners", file)}\n`);
  }
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) process.exitCode = main(process.argv.slice(2));
