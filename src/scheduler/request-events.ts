/**
 * In-process fan-out of request events to the gateway's waiters (SSE status streams, sync runs,
 * `/stream`, realtime). Across several gateways the same events will travel over the store's
 * notification channel; this bus is the local end of it.
 * @module
 */
import type { Progress, RequestLog, RequestRecord } from "../core/types.js";

export type RequestEvent =
  | { type: "state"; record: RequestRecord }
  | { type: "log"; log: RequestLog }
  | { type: "progress"; progress: Progress }
  | { type: "partial"; data: unknown };

export type RequestEventListener = (event: RequestEvent) => void;

export class RequestEvents {
  readonly #listeners = new Map<string, Set<RequestEventListener>>();

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

  listenerCount(): number {
    let n = 0;
    for (const set of this.#listeners.values()) n += set.size;
    return n;
  }
}
