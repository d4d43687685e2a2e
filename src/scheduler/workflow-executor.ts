/**
 * Runs workflows (src/workflows/document.ts) as the runner of their apps: a workflow's request is
 * claimed from the queue like any request, under a lease this gateway renews, and each of its `run`
 * nodes becomes a request of its own app, queued as the workflow's caller, with an id derived from
 * the workflow's request and the node. That id is what makes a workflow durable: a gateway that dies
 * mid-workflow loses its lease, the workflow's request is claimed again (here after a restart, or by
 * another gateway on the store), and each node whose request exists already is waited for, or read
 * when it ended, rather than run again.
 *
 * While it runs, the workflow's request publishes fal's workflow events as partial results (its
 * `/stream` and status streams carry them): `submit` {node_id, app_id, request_id}, `completion`
 * {node_id, output}, `output` {output}, and `error` {node_id, message, error}. Independent nodes run
 * at the same time. Cancelling the workflow cancels its running nodes.
 * @module
 */
import { createHash } from "node:crypto";
import { PlatformError } from "../core/errors.js";
import { isTerminal, type AppManifest, type RequestRecord } from "../core/types.js";
import type { NewRequest, Store } from "../store/store.js";
import { inputOfRetrying } from "../storage/spilled-inputs.js";
import type { StorageDriver } from "../storage/storage.js";
import { inputNodeOf, outputSpecOf, resolveEndpointId, resolveReferences, upstreamOf, type WorkflowDocument } from "../workflows/document.js";
import type { RequestEvent } from "./request-events.js";
import type { RunEnd } from "./run-outcome.js";

/** The lease owner of the workflows this gateway runs (one per process). */
const OWNER_PREFIX = "workflow-executor-";
/** Workflows one gateway runs at once. */
const MAX_RUNNING = 64;

export interface WorkflowExecutorDeps {
  store: Store;
  storage?: StorageDriver | undefined;
  leaseMs: number;
  /** The document of a workflow app, null when `appId` is none. */
  documentOf: (appId: string) => WorkflowDocument | null;
  appOf: (appId: string) => AppManifest | undefined;
  submit: (request: NewRequest) => Promise<{ record: RequestRecord }>;
  waitForTerminal: (requestId: string, signal?: AbortSignal) => Promise<RequestRecord>;
  cancel: (requestId: string) => Promise<unknown>;
  /** A workflow request started here: its status streams learn it runs (they only follow state events). */
  started: (record: RequestRecord) => void;
  event: (requestId: string, event: Extract<RequestEvent, { type: "partial" | "log" }>) => Promise<void>;
  outcome: (requestId: string, guard: { owner: string; attempt: number }, outcome: RunEnd) => Promise<RequestRecord | null>;
  logger?: { warn: (obj: object, msg: string) => void } | undefined;
}

/** A node's request id: the same for the same workflow request and node, whichever gateway asks. */
export function nodeRequestId(workflowRequestId: string, nodeId: string): string {
  const hex = createHash("sha256").update(`darkroom-workflow\0${workflowRequestId}\0${nodeId}`).digest("hex");
  // Shaped as a UUID (version 8, RFC 9562's custom one), like every other request id.
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${((parseInt(hex.slice(16, 18), 16) & 0x3f) | 0x80).toString(16)}${hex.slice(18, 20)}-${hex.slice(20, 32)}`;
}

export class WorkflowExecutor {
  readonly #deps: WorkflowExecutorDeps;
  readonly owner = `${OWNER_PREFIX}${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  readonly #running = new Map<string, AbortController>();
  /** How each running workflow learns at once that its client cancelled it (on this gateway). */
  readonly #cancellers = new Map<string, () => void>();
  #stopping = false;

  constructor(deps: WorkflowExecutorDeps) {
    this.#deps = deps;
  }

  /** Claims and starts the workflow's queued requests, as many as this gateway may still run. */
  async pump(appId: string): Promise<void> {
    if (this.#stopping || !this.#deps.documentOf(appId)) return;
    const room = MAX_RUNNING - this.#running.size;
    if (room <= 0) return;
    const claimed = await this.#deps.store.claimMany(appId, this.owner, this.#deps.leaseMs, room);
    for (const record of claimed) {
      this.#deps.started(record);
      this.#start(record);
    }
  }

  /** The client cancelled a workflow this gateway may be running; elsewhere it is seen within a second. */
  cancel(requestId: string): void {
    this.#cancellers.get(requestId)?.();
  }

  /** Stops claiming; what runs lets its leases lapse, so that a restart (or another gateway) resumes it. */
  stop(): void {
    this.#stopping = true;
    for (const controller of this.#running.values()) controller.abort();
  }

  #start(record: RequestRecord): void {
    const controller = new AbortController();
    this.#running.set(record.id, controller);
    void this.#run(record, controller.signal)
      .catch((err: unknown) => this.#deps.logger?.warn({ err, request: record.id }, "a workflow run failed"))
      .finally(() => this.#running.delete(record.id));
  }

  async #run(record: RequestRecord, stopped: AbortSignal): Promise<void> {
    const deps = this.#deps;
    const guard = { owner: this.owner, attempt: record.attempt };
    const doc = deps.documentOf(record.appId);
    if (!doc) return void (await deps.outcome(record.id, guard, { ok: false, error: new PlatformError("ERR_APP_UNAVAILABLE", { message: `${record.appId} is no longer registered` }) }));
    const nodes = doc.contents.nodes;
    const values: Record<string, unknown> = {};
    const inputNode = inputNodeOf(doc);
    if (inputNode) values[inputNode] = await inputOfRetrying(deps.storage, record);

    // The lease is renewed while the workflow runs; a cancellation of the workflow is seen here too,
    // for one sent to another gateway.
    const cancelled = new AbortController();
    this.#cancellers.set(record.id, () => cancelled.abort());
    const renew = setInterval(() => {
      void (async () => {
        if (stopped.aborted) return;
        await deps.store.heartbeat(record.id, this.owner, deps.leaseMs);
        if ((await deps.store.get(record.id))?.cancelRequested) cancelled.abort();
      })().catch(() => undefined);
    }, Math.max(100, Math.min(1000, Math.floor(deps.leaseMs / 3))));
    const nodeRequests = new Map<string, string>();
    try {
      const failure = await this.#runNodes(record, doc, values, nodeRequests, AbortSignal.any([stopped, cancelled.signal]));
      if (stopped.aborted) return; // this gateway stops: the lease lapses and the workflow resumes elsewhere
      if (cancelled.signal.aborted) {
        await Promise.all([...nodeRequests.values()].map((id) => deps.cancel(id).catch(() => undefined)));
        await deps.outcome(record.id, guard, { ok: false, error: new PlatformError("ERR_CLIENT_CANCELLED") });
        return;
      }
      if (failure) {
        await deps.event(record.id, { type: "partial", data: { type: "error", node_id: failure.nodeId, message: failure.message, error: failure.error } });
        await deps.outcome(record.id, guard, { ok: false, error: new PlatformError("ERR_APP_ERROR", { message: `Node ${failure.nodeId} failed: ${failure.message}` }) });
        return;
      }
      for (const [id, node] of Object.entries(nodes)) if (node.type === "display") values[id] = resolveReferences(node.fields ?? {}, values);
      const output = resolveReferences(outputSpecOf(doc), values);
      await deps.event(record.id, { type: "partial", data: { type: "output", output } });
      await deps.outcome(record.id, guard, { ok: true, output });
    } finally {
      clearInterval(renew);
      this.#cancellers.delete(record.id);
    }
  }

  /** Runs every run node once its upstream nodes are done; the first failure ends it (null: all succeeded). */
  async #runNodes(
    record: RequestRecord,
    doc: WorkflowDocument,
    values: Record<string, unknown>,
    nodeRequests: Map<string, string>,
    signal: AbortSignal,
  ): Promise<{ nodeId: string; message: string; error: string } | null> {
    const deps = this.#deps;
    const nodes = doc.contents.nodes;
    const pending = new Set(Object.entries(nodes).filter(([, n]) => n.type === "run").map(([id]) => id));
    const done = new Set(Object.entries(nodes).filter(([, n]) => n.type === "input").map(([id]) => id));
    const running = new Map<string, Promise<{ nodeId: string; record: RequestRecord | null }>>();
    const ready = (id: string): boolean => [...upstreamOf(nodes, id)].every((up) => done.has(up) || nodes[up]?.type === "display");
    while (pending.size > 0 || running.size > 0) {
      for (const id of [...pending]) {
        if (!ready(id)) continue;
        pending.delete(id);
        running.set(id, this.#runNode(record, doc, id, values, signal).then((r) => ({ nodeId: id, record: r })));
        nodeRequests.set(id, nodeRequestId(record.id, id));
      }
      if (running.size === 0) break; // nothing can start: a cycle the registry should have refused
      const { nodeId, record: ended } = await Promise.race(running.values());
      running.delete(nodeId);
      if (signal.aborted || !ended) return null;
      if (ended.state !== "SUCCEEDED") {
        // The workflow has failed: what still runs for it is of no use.
        await Promise.all([...running.keys()].map((other) => deps.cancel(nodeRequestId(record.id, other)).catch(() => undefined)));
        return { nodeId, message: ended.error ?? `${ended.state.toLowerCase()}`, error: ended.errorType ?? ended.state };
      }
      values[nodeId] = ended.output;
      done.add(nodeId);
      await deps.event(record.id, { type: "partial", data: { type: "completion", node_id: nodeId, output: ended.output } });
    }
    return null;
  }

  /** Starts a node's request (unless an earlier run of this workflow did) and waits for its end; null when stopped. */
  async #runNode(workflow: RequestRecord, doc: WorkflowDocument, nodeId: string, values: Record<string, unknown>, signal: AbortSignal): Promise<RequestRecord | null> {
    const deps = this.#deps;
    const node = doc.contents.nodes[nodeId];
    const target = node?.app ? resolveEndpointId(node.app, deps.appOf) : null;
    const id = nodeRequestId(workflow.id, nodeId);
    let record = await deps.store.get(id);
    if (!record) {
      if (!target) throw new PlatformError("ERR_APP_NOT_FOUND", { message: `Node ${nodeId} calls ${node?.app ?? "nothing"}, which is not served here` });
      const request: NewRequest = {
        id,
        appId: target.app.id,
        endpoint: target.endpoint.path,
        input: resolveReferences(node?.input ?? {}, values),
        priority: "normal",
        mode: "queue",
        startDeadline: null,
        maxAttempts: 3,
        webhookUrl: null,
        keyId: workflow.keyId,
        tenant: workflow.tenant,
        baseUrl: workflow.baseUrl,
      };
      try {
        record = (await deps.submit(request)).record;
      } catch (err) {
        // Written meanwhile by another gateway resuming this workflow: that one is the node's request.
        record = await deps.store.get(id);
        if (!record) throw err;
      }
    }
    await deps.event(workflow.id, { type: "partial", data: { type: "submit", node_id: nodeId, app_id: node?.app ?? record.appId, request_id: id } });
    if (isTerminal(record.state)) return record;
    try {
      return await deps.waitForTerminal(id, signal);
    } catch {
      return null; // stopped or cancelled
    }
  }
}
