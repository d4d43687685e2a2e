/**
 * The apps that get a runner Deployment and a KEDA ScaledObject on Kubernetes. `generate.ts` turns
 * this list into `kubernetes/runners/*.yaml`; edit it and rerun the generator to add an app.
 *
 * For a built-in app the scaling numbers mirror its own knobs (`src/apps/<name>/app.ts`), and
 * `test/deploy/scaling.test.ts` holds them in step: `concurrency` is `max_multiplexing`, `cooldownSeconds`
 * is `keep_alive`, and the grace period covers `request_timeout`.
 * @module
 */

export interface RunnerApp {
  /** App id as clients call it (`owner/alias`). */
  id: string;
  /** What `darkroom runner --app` takes: a built-in app id, or an app module path inside the image. */
  app: string;
  /** Folder of a built-in app under `src/apps/`, to check the numbers against its knobs. */
  builtin?: string;
  /** Requests one runner serves at once (the app's `max_multiplexing`): KEDA's target per replica. */
  concurrency: number;
  maxReplicas: number;
  /** Seconds without work before the last runner goes (the app's `keep_alive`). */
  cooldownSeconds: number;
  /** Seconds a stopping runner gets to finish what it holds: at least the app's `request_timeout`. */
  terminationGraceSeconds: number;
  requests: { cpu: string; memory: string };
  limits: { memory: string; cpu?: string };
  /** More environment for the runner container (settings of the app's own). */
  env?: Readonly<Record<string, string>>;
  /** GPUs per runner; such runners land on GPU nodes only. */
  gpus?: number;
  /** Image other than the stock runner image (a custom app baked on top of it). */
  image?: string;
  /** Left out of `runners/kustomization.yaml`: written as a model to copy, applied by hand. */
  example?: boolean;
}

/** Grace beyond `request_timeout` for the runner to report its last result and exit. */
export const GRACE_MARGIN_SECONDS = 30;

/** A built-in app's entry: its id, what `--app` takes and its folder all follow from its name. */
function builtinApp(name: string, scaling: Omit<RunnerApp, "id" | "app" | "builtin">): RunnerApp {
  return { id: `darkroom/${name}`, app: `darkroom/${name}`, builtin: name, ...scaling };
}

export const RUNNER_APPS: readonly RunnerApp[] = [
  // Needs nothing: the quickest way to watch a runner come up from zero.
  builtinApp("echo", {
    concurrency: 32,
    maxReplicas: 2,
    cooldownSeconds: 300,
    terminationGraceSeconds: 600 + GRACE_MARGIN_SECONDS,
    requests: { cpu: "100m", memory: "256Mi" },
    limits: { memory: "512Mi" },
  }),
  builtinApp("upscale", {
    concurrency: 1,
    maxReplicas: 4,
    cooldownSeconds: 300,
    terminationGraceSeconds: 600 + GRACE_MARGIN_SECONDS,
    // One request's tiles go to a worker thread per core (each with its own tfjs-wasm, 70-175 MB).
    // Node sees the node's cores, not the pod's share: the threads follow the CPU requested instead.
    requests: { cpu: "2", memory: "2Gi" },
    limits: { memory: "4Gi" },
    env: { DARKROOM_MODEL_THREADS: "2" },
  }),
  builtinApp("text-to-speech", {
    concurrency: 1,
    maxReplicas: 4,
    cooldownSeconds: 300,
    terminationGraceSeconds: 300 + GRACE_MARGIN_SECONDS,
    requests: { cpu: "500m", memory: "512Mi" },
    limits: { memory: "1Gi" },
  }),
  {
    // A GPU app of your own, baked into an image built FROM the runner image (docs/kubernetes.md).
    // It batches: one runner takes four requests at once.
    id: "acme/image-gen",
    app: "/app/apps/image-gen/app.ts",
    concurrency: 4,
    maxReplicas: 8,
    // GPU nodes start slowly and models load slowly: keep an idle runner longer.
    cooldownSeconds: 600,
    terminationGraceSeconds: 600 + GRACE_MARGIN_SECONDS,
    requests: { cpu: "4", memory: "16Gi" },
    limits: { memory: "24Gi" },
    gpus: 1,
    image: "registry.example.com/acme/image-gen-runner:1.0.0",
    example: true,
  },
];
