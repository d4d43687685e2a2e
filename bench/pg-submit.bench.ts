/**
 * What a submit costs the PostgreSQL store, without HTTP or runners, against earlier code in the same
 * run: the store of each ref (this checkout, and each `--baseline-ref` in a temporary worktree) is
 * loaded side by side, and each measurement gets a fresh schema of one scratch database.
 *
 * - `lone`: one submit at a time (a caller waiting for its queue position): p50 and p99 latency.
 * - `burst`: batches of `--batch` submits at once from one tenant, the hot case for anything kept per
 *   tenant; then one claim takes the batch and finishes it, so the queue stays short and its clock
 *   moves as in production. Submits per second of the submit phase, and the p50 of one submit.
 * - `tenants`: the same batches spread over four tenants.
 *
 * Rounds alternate the refs' order, so a noisy machine's drift favours none.
 *
 *   node --import tsx bench/pg-submit.bench.ts --rounds 5 --baseline-ref 529e401 --baseline-ref f8b9757
 * @module
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import type { NewRequest, Store } from "../src/store/store.js";
import { addBaselineWorktree, Cleanups, gitOutput } from "./lib/baseline-worktree.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    "lone-n": { type: "string", default: "300" },
    batches: { type: "string", default: "40" },
    batch: { type: "string", default: "64" },
    "baseline-ref": { type: "string", multiple: true, default: [] },
    url: { type: "string", default: process.env.DARKROOM_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" },
  },
});
const ROUNDS = Number(values.rounds);
const LONE_N = Number(values["lone-n"]);
const BATCHES = Number(values.batches);
const BATCH = Number(values.batch);
const ROOT = path.resolve(import.meta.dirname, "..");

type CreateStore = (options: { url: string; schema: string; onError?: (error: unknown, context: string) => void }) => Store & { migrate(): Promise<void> };

interface Variant {
  label: string;
  commit: string;
  create: CreateStore;
}

interface Sample {
  loneP50Ms: number;
  loneP99Ms: number;
  burstPerS: number;
  burstP50Ms: number;
  tenantsPerS: number;
  tenantsP50Ms: number;
}

const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};
const median = (xs: readonly number[]): number => quantile(xs, 0.5);

function newRequest(tenant: string): NewRequest {
  return {
    id: crypto.randomUUID(), appId: "bench/echo", endpoint: "", input: { message: { hello: "world" } }, priority: "normal", mode: "queue",
    startDeadline: null, maxAttempts: 3, webhookUrl: null, keyId: null, baseUrl: "http://127.0.0.1", outputTtlSeconds: null, tenant, weight: 1,
  };
}

async function timedSubmit(store: Store, tenant: string, latencies: number[]): Promise<void> {
  const t = performance.now();
  await store.submit(newRequest(tenant), null);
  latencies.push(performance.now() - t);
}

/** Claims and finishes everything queued, as runners would between batches. */
async function drain(store: Store): Promise<void> {
  for (;;) {
    const claimed = await store.claimMany("bench/echo", "runner-1", 30_000, 256);
    if (claimed.length === 0) return;
    await Promise.all(
      claimed.map((r) =>
        store.finish(r.id, { state: "SUCCEEDED", output: {}, statusCode: 200, error: null, errorType: null, billableUnits: 1 }, { owner: "runner-1", attempt: r.attempt }),
      ),
    );
  }
}

async function bursts(store: Store, tenants: readonly string[], latencies: number[]): Promise<number> {
  let submitMs = 0;
  for (let b = 0; b < BATCHES; b++) {
    const t = performance.now();
    await Promise.all(Array.from({ length: BATCH }, (_, i) => timedSubmit(store, tenants[i % tenants.length] as string, latencies)));
    submitMs += performance.now() - t;
    await drain(store);
  }
  return (BATCHES * BATCH) / (submitMs / 1000);
}

let schemaCounter = 0;
async function measure(variant: Variant): Promise<Sample> {
  const schema = `bench_pg_submit_${process.pid}_${++schemaCounter}`;
  const store = variant.create({ url: values.url, schema, onError: (error, context) => console.error(`${variant.label}: ${context}:`, error) });
  try {
    await store.migrate();
    // Warm-up: prepared statements, connections, the catalogue cache.
    await bursts(store, ["warm"], []);
    const lone: number[] = [];
    for (let i = 0; i < LONE_N; i++) {
      await timedSubmit(store, "lone", lone);
      if (i % 50 === 49) await drain(store);
    }
    await drain(store);
    const burstLatencies: number[] = [];
    const burstPerS = await bursts(store, ["flood"], burstLatencies);
    const tenantLatencies: number[] = [];
    const tenantsPerS = await bursts(store, ["t1", "t2", "t3", "t4"], tenantLatencies);
    return {
      loneP50Ms: median(lone), loneP99Ms: quantile(lone, 0.99),
      burstPerS, burstP50Ms: median(burstLatencies),
      tenantsPerS, tenantsP50Ms: median(tenantLatencies),
    };
  } finally {
    await store.close();
    const client = new pg.Client({ connectionString: values.url });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  }
}

async function variantAt(root: string, label: string, commit: string): Promise<Variant> {
  const module = (await import(path.join(root, "src/store/postgres/postgres-store.ts"))) as { createPostgresStore: CreateStore };
  return { label, commit, create: module.createPostgresStore };
}

const cleanups = new Cleanups("removing the baseline worktrees");
try {
  const variants: Variant[] = [];
  for (const ref of values["baseline-ref"]) {
    const baseline = addBaselineWorktree(ROOT, ref, cleanups);
    variants.push(await variantAt(baseline.root, ref, baseline.commit));
  }
  const dirty = gitOutput(ROOT, ["status", "--porcelain", "--", "src"]) !== "";
  const head = gitOutput(ROOT, ["rev-parse", "--short", "HEAD"]);
  variants.push(await variantAt(ROOT, `this checkout (${head}${dirty ? " + uncommitted changes" : ""})`, gitOutput(ROOT, ["rev-parse", "HEAD"])));

  const samples = new Map<string, Sample[]>(variants.map((v) => [v.label, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const variant of round % 2 ? variants : [...variants].reverse()) {
      const s = await measure(variant);
      samples.get(variant.label)?.push(s);
      console.log(
        `round ${round} ${variant.label}: lone p50 ${s.loneP50Ms.toFixed(2)} ms p99 ${s.loneP99Ms.toFixed(2)} ms; ` +
          `burst ${s.burstPerS.toFixed(0)}/s p50 ${s.burstP50Ms.toFixed(1)} ms; 4 tenants ${s.tenantsPerS.toFixed(0)}/s p50 ${s.tenantsP50Ms.toFixed(1)} ms`,
      );
    }
  }
  const summary: Record<string, Record<string, { median: number; min: number; max: number }>> = {};
  for (const variant of variants) {
    const rows = samples.get(variant.label) ?? [];
    const fields = Object.keys(rows[0] ?? {}) as (keyof Sample)[];
    summary[variant.label] = Object.fromEntries(
      fields.map((field) => {
        const xs = rows.map((r) => r[field]);
        return [field, { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) }];
      }),
    );
    console.log(`${variant.label}:`, JSON.stringify(summary[variant.label]));
  }
  mkdirSync(path.join(import.meta.dirname, "results"), { recursive: true });
  writeFileSync(
    path.join(import.meta.dirname, "results", "pg-submit.json"),
    JSON.stringify(
      {
        command: `node --import tsx bench/pg-submit.bench.ts --rounds ${ROUNDS} --lone-n ${LONE_N} --batches ${BATCHES} --batch ${BATCH}${values["baseline-ref"].map((r) => ` --baseline-ref ${r}`).join("")}`,
        date: new Date().toISOString(), node: process.version, cpus: os.cpus().length,
        variants: variants.map((v) => ({ label: v.label, commit: v.commit })), summary, samples: Object.fromEntries(samples),
      },
      null,
      2,
    ) + "\n",
  );
} finally {
  await cleanups.run();
}
