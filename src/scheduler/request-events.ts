/**
 * Fan-out of request events to the gateway's waiters (SSE status streams, sync runs, `/stream`,
 * realtime). Local listeners get events synchronously. When the store's bus is distributed (several
 * gateways on PostgreSQL), every event also goes out on the bus and events published by other
 * gateways come in from it, so a status stream on one gateway follows a request that runs anywhere.
 *
 * It also keeps each running request's latest progress and latest partial result, from whichever
 * gateway they came: status bodies include the progress, and a status stream opened while a request
 * runs starts with its latest partial result, so a client that connects late still sees one.
 * @module
 */
import { randomUUID } from "node:crypto";
import { isTerminal, type Progress, type RequestLog, type RequestRecord } from "../core/types.js";
import type { Bus } from "../store/bus.js";

export type RequestEvent =
  | { type: "state"; record: RequestRecord }
  | { type: "log"; log: RequestLog }
  | { type: "progress"; progress: Progress }
  | { type: "partial"; data: unknown };

export type RequestEventListener = (event: RequestEvent) => void;

const MAX_TRACKED_PROGRESS = 10_000;
/** Partial results can be images: fewer are kept than progress entries. */
const MAX_TRACKED_PARTIALS = 1_000;

/** What travels on the bus: the publishing process, the request and the event. */
interface WireEvent {
  o: string;
  id: string;
  e: RequestEvent;
}

export class RequestEvents {
  readonly #listeners = new Map<string, Set<RequestEventListener>>();
  readonly #progress = new Map<string, Progress>();
  readonly #partials = new Map<string, { data: unknown }>();
  readonly #bus: Bus | null;
  readonly #origin = randomUUID();
  readonly #unsubscribe: (() => void) | null = null;
  /** Called when publishing to the bus fails (the local listeners were served all the same). */
  readonly #onBusError: (err: unknown) => void;

  constructor(options: { bus?: Bus; onBusError?: (err: unknown) => void } = {}) {
    this.#bus = options.bus?.distributed ? options.bus : null;
    this.#onBusError = options.onBusError ?? (() => undefined);
    if (this.#bus) this.#unsubscribe = this.#bus.subscribe("request", (message) => this.#fromBus(message));
  }

  subscribe(requestId: string, listener: RequestEventListener): () => void {
    let set = this.#listeners.get(requestId);
    if (!set) {
      set = new Set();
      this.#listeners.set(requestId, set);
    }
    set.add(listener);
    return () => {
      const current = this.#listeners.get(requestId);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) this.#listeners.delete(requestId);
    };
  }

  emit(requestId: string, event: RequestEvent): void {
    this.#deliver(requestId, event);
    if (this.#bus) {
      const wire: WireEvent = { o: this.#origin, id: requestId, e: event };
      let message: string;
      try {
        message = JSON.stringify(wire);
      } catch (err) {
        // A partial output that cannot be serialized reaches local watchers only.
        this.#onBusError(err);
        return;
      }
      this.#bus.publish("request", message).catch(this.#onBusError);
    }
  }

  /** The latest progress reported for a request that has not ended, from any gateway. */
  progressOf(requestId: string): Progress | undefined {
    return this.#progress.get(requestId);
  }

  /** The latest partial result of a request that has not ended, from any gateway. */
  latestPartialOf(requestId: string): { data: unknown } | undefined {
    return this.#partials.get(requestId);
  }

  listenerCount(): number {
    let n = 0;
    for (const set of this.#listeners.values()) n += set.size;
    return n;
  }

  close(): void {
    this.#unsubscribe?.();
  }

  #fromBus(message: string): void {
    let wire: WireEvent;
    try {
      wire = JSON.parse(message) as WireEvent;
    } catch {
      return;
    }
    if (wire.o === this.#origin || typeof wire.id !== "string" || typeof wire.e !== "object" || wire.e === null) return;
    this.#deliver(wire.id, wire.e);
  }

  #deliver(requestId: string, event: RequestEvent): void {
    if (event.type === "progress") {
      this.#progress.set(requestId, event.progress);
      // Events from other gateways carry no order: a progress event that arrives after its request's
      // end would stay forever. Bound the map; the oldest entries are the stale ones.
      if (this.#progress.size > MAX_TRACKED_PROGRESS) {
        const oldest = this.#progress.keys().next();
        if (!oldest.done) this.#progress.delete(oldest.value);
      }
    }
    else if (event.type === "partial") {
      // Re-inserted so that the map's first entries are the longest without news: those go first.
      this.#partials.delete(requestId);
      this.#partials.set(requestId, { data: event.data });
      if (this.#partials.size > MAX_TRACKED_PARTIALS) {
        const oldest = this.#partials.keys().next();
        if (!oldest.done) this.#partials.delete(oldest.value);
      }
    }
    else if (event.type === "state" && isTerminal(event.record.state)) {
      this.#progress.delete(requestId);
      this.#partials.delete(requestId);
    }
    const set = this.#listeners.get(requestId);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(event);
      } catch {
        // A broken waiter (closed socket) must not stop the others or the scheduler.
      }
    }
  }
}
