/**
 * Checks `deploy/` without a cluster:
 * - every YAML document under `kubernetes/` parses and validates against the Kubernetes JSON schemas
 *   (Namespace, ConfigMap, Secret, Service, Deployment, PodDisruptionBudget, HPA) or KEDA's CRD
 *   schema (ScaledObject, TriggerAuthentication), from `kubernetes-models` and `@kubernetes-models/keda`;
 * - rules the schemas cannot express: images pinned, requests set, non-root, selectors that select,
 *   ScaledObjects that target a Deployment KEDA may own, trigger settings present, referenced Secrets
 *   and ConfigMaps defined, kustomizations complete, generated runner files up to date;
 * - the Dockerfiles: base images pinned, a non-root USER, no ADD of URLs, dev dependencies left out,
 *   a HEALTHCHECK where a port is exposed.
 *
 *   node --import tsx deploy/validate.ts [DEPLOY_DIR]
 *
 * Exit codes: 0 clean, 1 findings, 2 a validation package is not installed.
 * @module
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { RUNNER_APPS } from "./apps.js";
import { renderRunnerFiles, slugOf, staleRunnerFiles } from "./generate.js";

export const DEPLOY_DIR = fileURLToPath(new URL(".", import.meta.url));

/** The packages this script validates with (devDependencies of the repository). */
export const VALIDATION_PACKAGES = ["yaml", "kubernetes-models", "@kubernetes-models/keda"] as const;

export interface Finding {
  /** Path relative to the deploy folder. */
  file: string;
  /** `Kind/name` of the document, when there is one. */
  object?: string;
  message: string;
}

export class MissingPackageError extends Error {
  constructor(readonly packageName: string, cause: unknown) {
    super(`${packageName} is not installed (needed by deploy/validate.ts; add ${VALIDATION_PACKAGES.join(", ")} to devDependencies)`, { cause });
  }
}

interface ModelClass {
  new (data: unknown): { validate(): void };
}

type Doc = Record<string, unknown>;

interface Loaded {
  file: string;
  doc: Doc;
}

// Specifiers held in variables: the packages are optional until they are in package.json, and
// the type checker must not require them.
async function importPackage(specifier: string, packageName: string): Promise<Record<string, unknown>> {
  try {
    return (await import(specifier)) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND") throw new MissingPackageError(packageName, err);
    throw err;
  }
}

/** `apiVersion/kind` → the model whose `validate()` applies that kind's schema. */
async function loadModels(): Promise<Map<string, ModelClass>> {
  const groups: [apiVersion: string, specifier: string, packageName: string, kinds: string[]][] = [
    ["v1", "kubernetes-models/v1", "kubernetes-models", ["Namespace", "ConfigMap", "Secret", "Service", "ServiceAccount"]],
    ["apps/v1", "kubernetes-models/apps/v1", "kubernetes-models", ["Deployment"]],
    ["policy/v1", "kubernetes-models/policy/v1", "kubernetes-models", ["PodDisruptionBudget"]],
    ["autoscaling/v2", "kubernetes-models/autoscaling/v2", "kubernetes-models", ["HorizontalPodAutoscaler"]],
    ["keda.sh/v1alpha1", "@kubernetes-models/keda/keda.sh/v1alpha1", "@kubernetes-models/keda", ["ScaledObject", "TriggerAuthentication"]],
  ];
  const models = new Map<string, ModelClass>();
  for (const [apiVersion, specifier, packageName, kinds] of groups) {
    const mod = await importPackage(specifier, packageName);
    for (const kind of kinds) {
      const model = mod[kind];
      if (typeof model !== "function") throw new Error(`${specifier} has no ${kind}`);
      models.set(`${apiVersion}/${kind}`, model as ModelClass);
    }
  }
  return models;
}

interface YamlModule {
  parseAllDocuments(source: string): { errors: { message: string }[]; toJS(): unknown }[];
}

function walk(dir: string, suffixes: readonly string[]): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...walk(full, suffixes));
    else if (suffixes.some((s) => name.endsWith(s))) out.push(full);
  }
  return out;
}

const isMap = (v: unknown): v is Doc => typeof v === "object" && v !== null && !Array.isArray(v);
const mapAt = (v: unknown, ...keys: string[]): Doc | undefined => {
  let cur: unknown = v;
  for (const k of keys) cur = isMap(cur) ? cur[k] : undefined;
  return isMap(cur) ? cur : undefined;
};
const listAt = (v: unknown, ...keys: string[]): unknown[] => {
  let cur: unknown = v;
  for (const k of keys) cur = isMap(cur) ? cur[k] : undefined;
  return Array.isArray(cur) ? cur : [];
};
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

function objectName(doc: Doc): string {
  return `${str(doc["kind"]) ?? "?"}/${str(mapAt(doc, "metadata")?.["name"]) ?? "?"}`;
}

function selects(selector: Doc | undefined, labels: Doc | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** An image reference is pinned when it names a digest or a version down to the minor (`20.20.2`, `0.1`): `latest` and `20-slim` move. */
export function isPinnedImage(image: string): boolean {
  if (image.includes("@sha256:")) return true;
  const slash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  if (colon <= slash) return false;
  const tag = image.slice(colon + 1);
  return /\d+\.\d+/.test(tag);
}

/** Checks that no JSON schema expresses: each returns its findings for one document. */
function policyFindings(all: readonly Loaded[]): Finding[] {
  const findings: Finding[] = [];
  const add = (l: Loaded, message: string): void => void findings.push({ file: l.file, object: objectName(l.doc), message });
  const byKind = (kind: string): Loaded[] => all.filter((l) => l.doc["kind"] === kind);
  const ns = (l: Loaded): string | undefined => str(mapAt(l.doc, "metadata")?.["namespace"]);
  const named = (kind: string, name: string, namespace: string | undefined): Loaded | undefined =>
    byKind(kind).find((l) => str(mapAt(l.doc, "metadata")?.["name"]) === name && ns(l) === namespace);

  const namespaces = new Set(byKind("Namespace").map((l) => str(mapAt(l.doc, "metadata")?.["name"])));
  const scaled = new Set(byKind("ScaledObject").map((l) => `${ns(l)}/${str(mapAt(l.doc, "spec", "scaleTargetRef")?.["name"])}`));

  for (const l of all) {
    const kind = str(l.doc["kind"]);
    if (kind !== "Namespace" && kind !== "Kustomization") {
      const namespace = ns(l);
      if (!namespace) add(l, "metadata.namespace is not set: the object would land in whatever namespace kubectl points at");
      else if (!namespaces.has(namespace)) add(l, `namespace ${namespace} is not defined by any manifest`);
    }
  }

  for (const l of byKind("Deployment")) {
    const spec = mapAt(l.doc, "spec");
    const template = mapAt(spec, "template");
    const podSpec = mapAt(template, "spec");
    if (!selects(mapAt(spec, "selector", "matchLabels"), mapAt(template, "metadata", "labels"))) {
      add(l, "spec.selector.matchLabels does not select the pod template's labels");
    }
    const name = str(mapAt(l.doc, "metadata")?.["name"]);
    if (scaled.has(`${ns(l)}/${name}`) && spec?.["replicas"] !== undefined) {
      add(l, "a Deployment scaled by KEDA must not set spec.replicas: each apply would reset what KEDA chose");
    }
    const podSecurity = mapAt(podSpec, "securityContext");
    for (const c of listAt(podSpec, "containers")) {
      const cname = str(mapAt(c)?.["name"]) ?? "?";
      const image = str(mapAt(c)?.["image"]);
      if (!image) add(l, `container ${cname} has no image`);
      else if (!isPinnedImage(image)) add(l, `container ${cname}: image ${image} is not pinned to a version or digest`);
      const requests = mapAt(c, "resources", "requests");
      if (!requests?.["cpu"] || !requests["memory"]) add(l, `container ${cname} has no cpu and memory requests (the scheduler needs them to place it)`);
      if (!mapAt(c, "resources", "limits")?.["memory"]) add(l, `container ${cname} has no memory limit`);
      const nonRoot = mapAt(c, "securityContext")?.["runAsNonRoot"] ?? podSecurity?.["runAsNonRoot"];
      if (nonRoot !== true) add(l, `container ${cname} may run as root: set runAsNonRoot`);
      for (const from of listAt(c, "envFrom")) {
        const secret = str(mapAt(from, "secretRef")?.["name"]);
        const configMap = str(mapAt(from, "configMapRef")?.["name"]);
        if (secret && !named("Secret", secret, ns(l))) add(l, `container ${cname} reads Secret ${secret}, which no manifest defines`);
        if (configMap && !named("ConfigMap", configMap, ns(l))) add(l, `container ${cname} reads ConfigMap ${configMap}, which no manifest defines`);
      }
      for (const env of listAt(c, "env")) {
        const ref = mapAt(env, "valueFrom", "secretKeyRef");
        const secretName = str(ref?.["name"]);
        if (!secretName) continue;
        const secret = named("Secret", secretName, ns(l));
        const keys = { ...mapAt(secret?.doc, "data"), ...mapAt(secret?.doc, "stringData") };
        const key = str(ref?.["key"]) ?? "";
        if (!secret) add(l, `container ${cname} reads Secret ${secretName}, which no manifest defines`);
        else if (!(key in keys)) add(l, `container ${cname} reads key ${key} that Secret ${secretName} lacks`);
      }
    }
    for (const v of listAt(podSpec, "volumes")) {
      const secretName = str(mapAt(v, "secret")?.["secretName"]);
      if (secretName && !named("Secret", secretName, ns(l))) add(l, `volume ${str(mapAt(v)?.["name"])} mounts Secret ${secretName}, which no manifest defines`);
    }
  }

  const podLabels = byKind("Deployment").map((d) => ({ namespace: ns(d), labels: mapAt(d.doc, "spec", "template", "metadata", "labels") }));
  for (const l of [...byKind("Service"), ...byKind("PodDisruptionBudget")]) {
    const selector = l.doc["kind"] === "Service" ? mapAt(l.doc, "spec", "selector") : mapAt(l.doc, "spec", "selector", "matchLabels");
    if (!podLabels.some((p) => p.namespace === ns(l) && selects(selector, p.labels))) add(l, "its selector matches no Deployment's pods");
  }

  for (const l of byKind("ScaledObject")) {
    const spec = mapAt(l.doc, "spec");
    const target = mapAt(spec, "scaleTargetRef");
    const targetKind = str(target?.["kind"]) ?? "Deployment";
    const targetName = str(target?.["name"]) ?? "";
    if (targetKind !== "Deployment" || !named("Deployment", targetName, ns(l))) add(l, `scaleTargetRef names ${targetKind} ${targetName}, which no manifest defines`);
    const min = spec?.["minReplicaCount"];
    const max = spec?.["maxReplicaCount"];
    if (typeof max !== "number" || max < 1) add(l, "maxReplicaCount must be set and at least 1");
    if (typeof min === "number" && typeof max === "number" && min > max) add(l, "minReplicaCount exceeds maxReplicaCount");
    const triggers = listAt(spec, "triggers");
    if (triggers.length === 0) add(l, "has no triggers");
    for (const t of triggers) {
      const type = str(mapAt(t)?.["type"]);
      const meta = mapAt(t, "metadata") ?? {};
      const required: Record<string, string[]> = {
        prometheus: ["serverAddress", "query", "threshold"],
        "metrics-api": ["url", "valueLocation", "targetValue"],
      };
      const need = type ? required[type] : undefined;
      if (!need) {
        add(l, `trigger type ${type} is not one this repository scales on (prometheus, metrics-api)`);
        continue;
      }
      for (const key of need) if (!str(meta[key])) add(l, `${type} trigger lacks metadata.${key}`);
      for (const key of ["threshold", "activationThreshold", "targetValue", "activationTargetValue"]) {
        const raw = meta[key];
        if (raw === undefined) continue;
        const value = Number(raw);
        if (typeof raw !== "string" || !Number.isFinite(value) || value < 0) add(l, `metadata.${key} must be a non-negative number written as a string, not ${JSON.stringify(raw)}`);
        else if ((key === "threshold" || key === "targetValue") && value <= 0) add(l, `metadata.${key} must be above 0`);
      }
    }
  }
  return findings;
}

function kustomizationFindings(root: string, files: readonly string[], loaded: readonly Loaded[]): Finding[] {
  const findings: Finding[] = [];
  for (const l of loaded.filter((x) => x.doc["kind"] === "Kustomization")) {
    const dir = path.dirname(path.join(root, l.file));
    for (const r of listAt(l.doc, "resources")) {
      const ref = str(r) ?? "";
      const full = path.resolve(dir, ref);
      const ok = existsSync(full) && (statSync(full).isFile() || existsSync(path.join(full, "kustomization.yaml")));
      if (!ok) findings.push({ file: l.file, object: "Kustomization", message: `resource ${ref} does not exist` });
    }
  }
  // Every manifest is either applied through a kustomization or a model kept out on purpose.
  const listed = new Set<string>();
  for (const l of loaded.filter((x) => x.doc["kind"] === "Kustomization")) {
    const dir = path.dirname(path.join(root, l.file));
    for (const r of listAt(l.doc, "resources")) listed.add(path.resolve(dir, str(r) ?? ""));
  }
  const models = new Set(RUNNER_APPS.filter((a) => a.example).map((a) => path.join("kubernetes", "runners", `${slugOf(a.id)}.yaml`)));
  for (const file of files) {
    const full = path.join(root, file);
    if (path.basename(file) === "kustomization.yaml" || listed.has(full) || listed.has(path.dirname(full))) continue;
    if (!file.includes(".example.") && !models.has(file)) findings.push({ file, message: "not listed in any kustomization.yaml" });
  }
  return findings;
}

/** Lints a Dockerfile by its instructions (line continuations joined, comments dropped). */
export function dockerfileFindings(file: string, text: string): Finding[] {
  const findings: Finding[] = [];
  const add = (message: string): void => void findings.push({ file, message });
  const instructions = text
    .replace(/\\\r?\n/g, " ")
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const [op = "", ...rest] = line.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(" ") };
    });
  const stages = new Set<string>();
  let froms = 0;
  let user: string | null = null;
  for (const { op, args } of instructions) {
    if (op === "FROM") {
      froms += 1;
      user = null;
      const parts = args.split(/\s+/).filter((p) => !p.startsWith("--"));
      const image = parts[0] ?? "";
      const alias = parts[1]?.toUpperCase() === "AS" ? parts[2] : undefined;
      if (!stages.has(image.toLowerCase()) && !isPinnedImage(image)) add(`FROM ${image} is not pinned to a version or digest`);
      if (alias) stages.add(alias.toLowerCase());
    } else if (op === "USER") {
      user = args.trim();
    } else if (op === "ADD" && /\b(https?|ftp):\/\//i.test(args)) {
      add(`ADD ${args}: fetch with RUN and a checksum instead, or COPY`);
    } else if (op === "RUN" && /\bnpm (ci|install)\b/.test(args) && !/--omit[= ]dev\b/.test(args)) {
      add(`RUN ${args}: install with --omit=dev, the image needs no dev dependencies`);
    }
  }
  if (froms === 0) add("has no FROM");
  const root = user === null || /^(root|0)(:|$)/.test(user);
  if (root) add("the final stage runs as root: add a USER with a non-zero uid");
  if (instructions.some((i) => i.op === "EXPOSE") && !instructions.some((i) => i.op === "HEALTHCHECK")) add("exposes a port but has no HEALTHCHECK");
  return findings;
}

function dockerignoreFindings(repoRoot: string): Finding[] {
  const file = path.join(repoRoot, ".dockerignore");
  if (!existsSync(file)) return [{ file: "../.dockerignore", message: "missing: the build context would carry node_modules and .darkroom" }];
  const lines = readFileSync(file, "utf8").split(/\r?\n/).map((l) => l.trim());
  return ["node_modules", ".darkroom", ".git"].filter((p) => !lines.includes(p)).map((p) => ({ file: "../.dockerignore", message: `does not exclude ${p}` }));
}

export interface ValidationReport {
  findings: Finding[];
  /** Documents validated against a schema, by `apiVersion/kind`. */
  validated: Map<string, number>;
  dockerfiles: number;
}

export async function validateDeploy(root: string = DEPLOY_DIR): Promise<ValidationReport> {
  const yaml = (await importPackage("yaml", "yaml")) as unknown as YamlModule;
  const models = await loadModels();
  const findings: Finding[] = [];
  const validated = new Map<string, number>();
  const manifestsDir = path.join(root, "kubernetes");
  const files = walk(manifestsDir, [".yaml", ".yml"]).map((f) => path.relative(root, f));
  if (files.length === 0) findings.push({ file: "kubernetes/", message: "no manifests found" });

  const loaded: Loaded[] = [];
  for (const file of files) {
    for (const d of yaml.parseAllDocuments(readFileSync(path.join(root, file), "utf8"))) {
      if (d.errors.length > 0) {
        findings.push({ file, message: `YAML: ${d.errors.map((e) => e.message).join("; ")}` });
        continue;
      }
      const doc = d.toJS();
      if (doc === null || doc === undefined) continue;
      if (!isMap(doc)) {
        findings.push({ file, message: "a document is not a mapping" });
        continue;
      }
      loaded.push({ file, doc });
    }
  }

  for (const l of loaded) {
    const apiVersion = str(l.doc["apiVersion"]);
    const kind = str(l.doc["kind"]);
    if (kind === "Kustomization") continue;
    const model = models.get(`${apiVersion}/${kind}`);
    if (!model) {
      findings.push({ file: l.file, object: objectName(l.doc), message: `no schema for ${apiVersion}/${kind}: add its model to deploy/validate.ts` });
      continue;
    }
    try {
      new model(l.doc).validate();
      validated.set(`${apiVersion}/${kind}`, (validated.get(`${apiVersion}/${kind}`) ?? 0) + 1);
    } catch (err) {
      findings.push({ file: l.file, object: objectName(l.doc), message: `schema: ${err instanceof Error ? err.message : String(err)}` });
    }
  }
  findings.push(...policyFindings(loaded), ...kustomizationFindings(root, files, loaded));

  const runnersDir = path.join(manifestsDir, "runners");
  for (const stale of staleRunnerFiles(runnersDir, renderRunnerFiles())) {
    findings.push({ file: path.join("kubernetes/runners", stale), message: "differs from what deploy/apps.ts gives: run node --import tsx deploy/generate.ts" });
  }

  const dockerfiles = walk(path.join(root, "docker"), ["Dockerfile"]);
  if (dockerfiles.length === 0) findings.push({ file: "docker/", message: "no Dockerfiles found" });
  for (const f of dockerfiles) findings.push(...dockerfileFindings(path.relative(root, f), readFileSync(f, "utf8")));
  findings.push(...dockerignoreFindings(path.resolve(root, "..")));
  return { findings, validated, dockerfiles: dockerfiles.length };
}

async function main(argv: string[]): Promise<number> {
  const root = path.resolve(argv[0] ?? DEPLOY_DIR);
  let report: ValidationReport;
  try {
    report = await validateDeploy(root);
  } catch (err) {
    if (err instanceof MissingPackageError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
  for (const f of report.findings) process.stderr.write(`${f.file}${f.object ? ` ${f.object}` : ""}: ${f.message}\n`);
  const kinds = [...report.validated].map(([k, n]) => `${n} ${k}`).join(", ");
  if (report.findings.length > 0) {
    process.stderr.write(`${report.findings.length} problem(s)\n`);
    return 1;
  }
  process.stdout.write(`ok: ${kinds}; ${report.dockerfiles} Dockerfiles\n`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) process.exitCode = await main(process.argv.slice(2));
