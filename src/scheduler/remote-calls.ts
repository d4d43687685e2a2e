/**
 * Realtime messages for apps this gateway starts no runners for: their remote runners (the runner
 * protocol over HTTP) take them from the long poll like requests, and answer them through the same
 * routes, but nothing is written to the store. A message waits in the pool's ephemeral queue until
 * a runner of the app leases it (at most PICKUP_MS, else the app is unavailable), then for its
 * runner's answer (at most the app's request_timeout).
 *
 * A message is held by the gateway whose client sent it: a runner that moved to another gateway
 * (failover) cannot answer it there, and the client gets the timeout. Messages are not retried: a
 * realtime client that loses one sends the next.
 * @module
 */
import { randomUUID } from "node:crypto";
import { PlatformError } from "../core/errors.js";
import type { EphemeralCall, Pool } from "./pool.js";
import type { RunEnd } from "./run-outcome.js";

/** How long a message waits for a remote runner to lease it. */
export const PICKUP_MS = 30_000;

export interface RemoteCallsDeps {
  /** Wakes the long polls waiting for work of the app. */
  announce: (appId: string) => void;
  /** How long a message waits to be leased; default PICKUP_MS. */
  pickupMs?: number;
}

interface Leased {
  call: EphemeralCall;
  appId: string;
  runnerId: string;
  timer: NodeJS.Timeout;
}

/** A leased message as its runner sees it: what the long poll hands out. */
export interface LeasedCall {
  call: EphemeralCall;
  appId: string;
}

export class RemoteCalls {
  readonly #deps: RemoteCallsDeps;
  /** Ids are unique across gateways: a runner may report to any of them (only the holder accepts). */
  readonly #prefix = `rt-${randomUUID().slice(0, 8)}-`;
  #seq = 0;
  readonly #waiting = new Map<string, { timer: NodeJS.Timeout; pool: Pool; call: EphemeralCall }>();
  readonly #leased = new Map<string, Leased>();

  constructor(deps: RemoteCallsDeps) {
    this.#deps = deps;
  }

  /** Queues a message for the pool's remote runners and wakes their long polls. */
  invoke(pool: Pool, endpoint: string, input: unknown, baseUrl: string, onPartial?: (data: unknown) => void): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const call: EphemeralCall = { id: `${this.#prefix}${++this.#seq}`, endpoint, input, baseUrl, resolve, reject, ...(onPartial ? { onPartial } : {}) };
      pool.ephemeralQueue.push(call);
      const pickupMs = this.#deps.pickupMs ?? PICKUP_MS;
      const timer = setTimeout(() => this.#unpicked(call.id, new PlatformError("ERR_APP_UNAVAILABLE", { message: `No runner of ${pool.app.id} took the message within ${pickupMs / 1000} s` })), pickupMs);
      this.#waiting.set(call.id, { timer, pool, call });
      this.#deps.announce(pool.app.id);
    });
  }

  /** Hands up to `slots` waiting messages of the pool to a remote runner. */
  take(pool: Pool, runnerId: string, slots: number): EphemeralCall[] {
    const calls = pool.ephemeralQueue.splice(0, Math.max(0, slots));
    const timeoutS = pool.app.knobs.request_timeout;
    for (const call of calls) {
      clearTimeout(this.#waiting.get(call.id)?.timer);
      this.#waiting.delete(call.id);
      const timer = setTimeout(() => this.#settle(call.id, { ok: false, error: new PlatformError("ERR_REQUEST_TIMEOUT", { message: `No answer within request_timeout (${timeoutS} s)` }) }), timeoutS * 1000);
      this.#leased.set(call.id, { call, appId: pool.app.id, runnerId, timer });
    }
    return calls;
  }

  /** The message `id` when `runnerId` holds it here; null otherwise (not a message, or not its). */
  held(id: string, runnerId: string): LeasedCall | null {
    const leased = this.#leased.get(id);
    return leased && leased.runnerId === runnerId ? { call: leased.call, appId: leased.appId } : null;
  }

  /** A partial output of a held message, for the client (a streaming realtime handler). */
  partial(id: string, runnerId: string, data: unknown): void {
    if (this.held(id, runnerId)) this.#leased.get(id)?.call.onPartial?.(data);
  }

  /** Its runner's answer to a held message. False when `runnerId` does not hold it. */
  answer(id: string, runnerId: string, outcome: RunEnd): boolean {
    if (!this.held(id, runnerId)) return false;
    this.#settle(id, outcome);
    return true;
  }

  /** A message no runner took: out of the queue, and its client told why. */
  #unpicked(id: string, error: PlatformError): void {
    const waiting = this.#waiting.get(id);
    if (!waiting) return;
    this.#waiting.delete(id);
    clearTimeout(waiting.timer);
    const index = waiting.pool.ephemeralQueue.indexOf(waiting.call);
    if (index >= 0) waiting.pool.ephemeralQueue.splice(index, 1);
    waiting.call.reject(error);
  }

  #settle(id: string, outcome: RunEnd): void {
    const leased = this.#leased.get(id);
    if (!leased) return;
    this.#leased.delete(id);
    clearTimeout(leased.timer);
    if (outcome.ok) leased.call.resolve(outcome.output);
    else leased.call.reject(outcome.error);
  }

  /** The gateway stops: nothing it holds will be answered. */
  stop(): void {
    for (const id of [...this.#waiting.keys()]) this.#unpicked(id, new PlatformError("ERR_APP_UNAVAILABLE", { message: "The gateway is stopping" }));
    for (const id of [...this.#leased.keys()]) this.#settle(id, { ok: false, error: new PlatformError("ERR_RUNNER_DISCONNECTED", { message: "The gateway is stopping" }) });
  }
}
