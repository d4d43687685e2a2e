/**
 * Queue wake-ups: who waits for an app's queue to get work (runner-protocol long polls), and the
 * hints that wake them. A request that goes (back) into the queue wakes the watchers here and, on a
 * shared store, is announced on the bus so that every other gateway pumps and wakes its own.
 * @module
 */
import type { Bus } from "../store/bus.js";
import type { SchedulerLogger } from "./scheduler.js";

export interface QueueWakeupsDeps {
  bus: Bus;
  logger?: SchedulerLogger;
  /** Whether this scheduler has a pool for the app. */
  serves: (appId: string) => boolean;
  pump: (appId: string) => void;
  /** Reads the remote apps that runners registered on other gateways. */
  loadRemoteApps: () => Promise<void>;
}

export class QueueWakeups {
  readonly #deps: QueueWakeupsDeps;
  /** Who waits for an app's queue to get work (runner-protocol long polls), by app id. */
  readonly #watchers = new Map<string, Set<() => void>>();
  #unsubscribe: (() => void) | null = null;

  constructor(deps: QueueWakeupsDeps) {
    this.#deps = deps;
  }

  /** Listens for the wake-ups of other gateways (on a shared store). */
  listen(): void {
    this.#unsubscribe = this.#deps.bus.subscribe("queue", (appId) => this.#onQueued(appId));
  }

  stopListening(): void {
    this.#unsubscribe?.();
  }

  /**
   * Calls `wake` whenever a request of `appId` may have become claimable here or, on a shared store,
   * on any gateway. Returns the function that stops watching. Runner-protocol long polls wait on it.
   */
  watch(appId: string, wake: () => void): () => void {
    let set = this.#watchers.get(appId);
    if (!set) {
      set = new Set();
      this.#watchers.set(appId, set);
    }
    set.add(wake);
    return () => {
      const current = this.#watchers.get(appId);
      current?.delete(wake);
      if (current?.size === 0) this.#watchers.delete(appId);
    };
  }

  /** Wakes every watcher of every app (the scheduler stops: long polls answer at once). */
  wakeAll(): void {
    for (const watchers of this.#watchers.values()) for (const wake of watchers) wake();
  }

  /** A request of `appId` went (back) into the queue: wake watchers here and, on a shared store, everywhere. */
  announce(appId: string): void {
    this.#wake(appId);
    const { bus } = this.#deps;
    if (bus.distributed) void bus.publish("queue", appId).catch((err: unknown) => this.#deps.logger?.warn({ err }, "publishing a queue wake-up failed"));
  }

  /** Another gateway queued a request (or registered a remote app). */
  #onQueued(appId: string): void {
    if (!this.#deps.serves(appId)) {
      // An app a runner registered on another gateway: read it from the store.
      void this.#deps.loadRemoteApps().catch((err: unknown) => this.#deps.logger?.warn({ err }, "loading remote apps failed"));
      return;
    }
    this.#deps.pump(appId);
    this.#wake(appId);
  }

  #wake(appId: string): void {
    const watchers = this.#watchers.get(appId);
    if (!watchers) return;
    for (const wake of [...watchers]) {
      try {
        wake();
      } catch (err) {
        this.#deps.logger?.warn({ err }, "queue watcher failed");
      }
    }
  }
}
