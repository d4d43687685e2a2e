/**
 * Wires the parts of one Darkroom server together — store, storage, keys, scheduler, webhooks,
 * gateway — and tears them down in order. `darkroom serve` and the tests both start servers here.
 * @module
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import pino, { type Logger } from "pino";
import { BUILTIN_APP_MODULES } from "./apps/builtin.js";
import { pulledModelAppModules } from "./apps/text-to-image/pulled-model-apps.js";
import { KeyService } from "./auth/keys.js";
import { TokenService } from "./auth/tokens.js";
import type { Config } from "./core/config.js";
import { applyKnobOverrides } from "./core/knob-overrides.js";
import type { AppManifest, RequestRecord } from "./core/types.js";
import type { GatewayContext } from "./gateway/context.js";
import { InputValidator } from "./gateway/input-validator.js";
import { MonthlySpend } from "./pricing/monthly-spend.js";
import { defaultPriceOf } from "./pricing/price-book.js";
import { createGatewayServer } from "./gateway/server.js";
import { AllowList } from "./net/allow-list.js";
import { safeFetch } from "./net/safe-fetch.js";
import { Metrics } from "./observability/metrics.js";
import { probeApps } from "./runtime/app-catalog.js";
import { checkWorkflow } from "./workflows/document.js";
import { BUILTIN_WORKFLOWS_DIR, readWorkflowFiles } from "./workflows/files.js";
import { Scheduler } from "./scheduler/scheduler.js";
import { openStorage } from "./storage/open-storage.js";
import { createUrlSigner, loadOrCreateSecret } from "./storage/signed-url.js";
import { standardWebhookSecret } from "./webhooks/standard-signature.js";
import { sha256OfStream } from "./reuse/result-key.js";
import { predictionOf } from "./gateway/replicate/prediction.js";
import type { StorageDriver } from "./storage/storage.js";
import { openStore } from "./store/open-store.js";
import type { Store } from "./store/store.js";
import { WebhookDeliverer } from "./webhooks/deliverer.js";
import { SigningKeys } from "./webhooks/signing-keys.js";

export interface Platform {
  config: Config;
  server: FastifyInstance;
  store: Store;
  storage: StorageDriver;
  scheduler: Scheduler;
  keys: KeyService;
  webhooks: WebhookDeliverer;
  logger: Logger;
  /** "http://host:port" the server listens on. */
  url: string;
  /** `id:secret` of an admin key generated on this start (printed once), else null. */
  generatedAdminKey: string | null;
  adminKeyFile: string | null;
  /** A runner token for `apps`, under the admin key (`darkroom run app.py` serving its own runner). */
  issueRunnerToken(apps: readonly string[]): string;
  /** Drains runners (up to `graceMs`), stops webhooks, closes the server and the store. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  /** App modules to serve; defaults to the built-ins plus `config.appPaths`. */
  appModules?: readonly string[];
  logger?: Logger;
  /** Overrides for the scheduler (tests shorten timers). */
  scheduler?: { cancelGraceMs?: number; tickMs?: number; leaseMs?: number };
  webhookPollIntervalMs?: number;
  /** Replaces the webhook retry schedule (tests). */
  webhookBackoff?: (attemptNumber: number) => number | null;
}

export async function startPlatform(config: Config, options: StartOptions = {}): Promise<Platform> {
  const logger = options.logger ?? pino({ level: config.logLevel });
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const storageRoot = path.join(config.dataDir, "files");
  const store = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, onError: (err, context) => logger.warn({ err }, context) });
  await store.migrate();
  const storage = await openStorage({ storageUrl: config.storageUrl, dataDir: config.dataDir, env: process.env });
  const allow = AllowList.parse(config.allowHosts);
  const tokens = await TokenService.open(config.dataDir);
  const keys = new KeyService({ store, tokens });
  const admin = await keys.ensureAdminKey({ dataDir: config.dataDir, adminKeyEnv: config.adminKey });
  const signingKeys = await SigningKeys.open(config.dataDir);
  const urlSigner = createUrlSigner(loadOrCreateSecret(path.join(config.dataDir, "url-secret")));
  const metrics = new Metrics();

  // Where `darkroom models pull` keeps models for this data folder; apps that serve pulled models read it.
  const modelsDir = path.join(config.dataDir, "models");
  // Apps made for pulled models come last: an id declared by a built-in or --apps module stays theirs.
  const modules = options.appModules ?? [
    ...(config.builtinApps ? BUILTIN_APP_MODULES : []),
    ...config.appPaths.map((p) => path.resolve(p)),
    ...(config.builtinApps ? await pulledModelAppModules(modelsDir) : []),
  ];
  const catalog = await probeApps(modules, { ...process.env, DARKROOM_MODELS_DIR: modelsDir });
  for (const failure of catalog.failures) logger.error({ module: failure.modulePath, error: failure.error }, "app failed to load");
  let apps: AppManifest[] = catalog.apps;
  if (config.onlyApps.length > 0) {
    for (const id of config.onlyApps) {
      // `--only echo` for darkroom/echo would otherwise serve nothing at all, and say nothing.
      if (!apps.some((a) => a.id === id)) logger.warn({ app: id, loaded: apps.filter((a) => a.id.endsWith(`/${id}`)).map((a) => a.id) }, "--only names an app that is not loaded (ids are owner/name)");
    }
    apps = apps.filter((a) => config.onlyApps.includes(a.id));
  }
  for (const id of config.appKnobs.keys()) {
    if (id !== "*" && !apps.some((a) => a.id === id)) logger.warn({ app: id }, "--app-knobs names an app that is not loaded");
  }
  apps = apps.map((a) => ({ ...a, knobs: applyKnobOverrides(a.id, a.knobs, config.appKnobs) }));
  if (!config.localRunners) {
    // The apps run on runner machines, not here: what this machine lacks (ffmpeg, a model) says
    // nothing about them. A remote runner that cannot run its app refuses to start instead.
    apps = apps.map((a) => (a.unavailable ? { ...a, unavailable: null } : a));
  }
  for (const a of apps) if (a.unavailable) logger.warn({ app: a.id, ...a.unavailable }, "app unavailable");

  const webhookSecret = loadOrCreateSecret(path.join(config.dataDir, "webhook-secret"));
  const webhookSecretOf = (tenant: string): string => standardWebhookSecret(webhookSecret, tenant);
  const webhooks = new WebhookDeliverer({
    store,
    signingKeys,
    standardSecret: webhookSecretOf,
    // A Replicate prediction's `completed` webhook carries its prediction object.
    predictionBody: async (record) =>
      JSON.stringify(await predictionOf({ store, appOf: (id) => scheduler.app(id), revisionOf: (app) => scheduler.revisionOf(app) }, record, `${record.baseUrl}/replicate/v1`)),
    allow,
    userId: "darkroom",
    logger,
    onAttempt: (attempt, next) =>
      metrics.webhookDeliveries.inc({ outcome: attempt.ok ? "delivered" : next.state === "failed" ? "failed" : "retrying" }),
    ...(options.webhookPollIntervalMs ? { pollIntervalMs: options.webhookPollIntervalMs } : {}),
    ...(options.webhookBackoff ? { backoff: options.webhookBackoff } : {}),
  });

  // Usage is recorded by the store in the same transaction as the terminal state.
  const onFinished = (record: RequestRecord): void => {
    if (record.webhookUrl) {
      void webhooks.enqueueFor(record).catch((err: unknown) => logger.error({ err, request: record.id }, "enqueueing webhook failed"));
    }
  };

  const scheduler = new Scheduler({
    store,
    apps,
    leaseMs: config.leaseMs,
    localRunners: config.localRunners,
    spareRunners: config.spareRunners,
    parallelStarts: config.parallelStarts,
    ownOrigins: [config.publicUrl, `http://${config.host}:${config.port}`, config.filesUrl].filter((o): o is string => Boolean(o)),
    // Another server's input file, for its content in a result key: the same policy and limits as a runner's fetch.
    fetchForKey: async (url) => {
      const res = await safeFetch(url, { allow, maxBytes: config.limits.maxFileBytes, timeoutMs: config.limits.fetchTimeoutMs });
      if (res.status < 200 || res.status > 299) {
        res.body.destroy();
        throw new Error(`HTTP ${res.status}`);
      }
      return sha256OfStream(res.body);
    },
    storage,
    inputSpillBytes: config.limits.inputSpillBytes,
    metrics,
    logger,
    onFinished,
    runnerEnv: {
      DARKROOM_STORAGE_ROOT: storageRoot,
      DARKROOM_MODELS_DIR: modelsDir,
      // Runners write output files straight into storage: the same storage as the server's.
      ...(config.storageUrl ? { DARKROOM_STORAGE_URL: config.storageUrl } : {}),
      DARKROOM_ALLOW_HOSTS: config.allowHosts,
      DARKROOM_MAX_FILE_BYTES: String(config.limits.maxFileBytes),
      DARKROOM_FETCH_TIMEOUT_MS: String(config.limits.fetchTimeoutMs),
      DARKROOM_OWN_ORIGINS: [config.publicUrl, `http://${config.host}:${config.port}`].filter(Boolean).join(","),
      // Output URLs are built on the files origin; empty when there is none, whatever the server's
      // environment holds, so that the runner agrees with the gateway.
      DARKROOM_FILES_URL: config.filesUrl ?? "",
    },
    ...options.scheduler,
  });

  const ctx: GatewayContext = {
    config,
    store,
    storage,
    scheduler,
    keys,
    tokens,
    urlSigner,
    validator: new InputValidator(),
    signingKeys,
    allow,
    metrics,
    webhookSecretOf,
    spend: new MonthlySpend({ store, defaultPrice: defaultPriceOf(config.pricing.defaultComputePrice) }),
    startedAt: Date.now(),
  };
  const server = await createGatewayServer(ctx, { loggerInstance: logger });
  await scheduler.start();
  // Registered workflows are apps of this gateway too (src/workflows/): scheduler.start() served the
  // stored ones; workflow files are registered (again) over them: the examples over the built-in
  // apps, then --workflows-dir's.
  const workflowFiles = [...(config.builtinApps ? readWorkflowFiles(BUILTIN_WORKFLOWS_DIR).map((f) => ({ ...f, example: true })) : []), ...(config.workflowsDir ? readWorkflowFiles(path.resolve(config.workflowsDir)).map((f) => ({ ...f, example: false })) : [])];
  for (const file of workflowFiles) {
    if (!file.ok) {
      logger.error({ file: file.file, error: file.error }, "a workflow file does not parse");
      continue;
    }
    const problems = checkWorkflow(file.doc, (id) => scheduler.app(id), file.id);
    if (problems.length > 0) {
      // An example over apps this server does not load (--only, --builtin-apps false) is left out quietly.
      if (file.example) logger.debug({ workflow: file.id }, "example workflow left out: its apps are not loaded");
      else logger.error({ file: file.file, problems }, "a workflow file has problems; not registered");
      continue;
    }
    await store.putWorkflow(file.id, JSON.stringify(file.doc), Date.now());
    scheduler.registerWorkflow(file.id, file.doc);
  }
  webhooks.start();
  await server.listen({ host: config.host, port: config.port });
  const address = server.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;

  const sweep = setInterval(() => {
    void storage.sweepExpired().catch(() => undefined);
    void store.sweepIdempotencyKeys(Date.now()).catch(() => undefined);
  }, 60_000);
  sweep.unref();

  let stopped = false;
  return {
    config,
    server,
    store,
    storage,
    scheduler,
    keys,
    webhooks,
    logger,
    url: `http://${host}:${port}`,
    generatedAdminKey: admin.credentials,
    adminKeyFile: admin.file,
    issueRunnerToken: (apps) => tokens.issue({ keyId: admin.id, scope: "runner", allowedApps: apps }).token,
    async stop(graceMs = 10_000) {
      if (stopped) return;
      stopped = true;
      clearInterval(sweep);
      // Stop taking requests first, then let runners finish what they hold.
      const closing = server.close();
      await scheduler.stop(graceMs);
      await webhooks.stop();
      // Status streams of requests that did not finish would hold the server open forever.
      const linger = setTimeout(() => server.server.closeAllConnections(), 1000);
      await closing;
      clearTimeout(linger);
      await store.close();
      await (storage as { close?: () => Promise<void> | void }).close?.();
    },
  };
}
