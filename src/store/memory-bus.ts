/**
 * The in-process {@link Bus} of the embedded store: one process holds the SQLite file, so every
 * subscriber lives in it and a publish is a loop over local listeners.
 * @module
 */
import type { Bus, BusChannel, BusListener } from "./bus.js";

export interface MemoryBusOptions {
  /**
   * Receives what a listener threw; the other listeners still get the message.
   * @default a process warning
   */
  onListenerError?: (error: unknown, channel: BusChannel) => void;
}

function warnListenerError(error: unknown, channel: BusChannel): void {
  process.emitWarning(`A listener on bus channel "${channel}" threw: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
}

export function createMemoryBus(options: MemoryBusOptions = {}): Bus {
  const onListenerError = options.onListenerError ?? warnListenerError;
  const listeners = new Map<BusChannel, Set<BusListener>>();

  return {
    distributed: false,

    // Listeners run before publish returns, so a caller that awaits it knows they have seen the message.
    async publish(channel, message) {
      const subscribed = listeners.get(channel);
      if (!subscribed) return;
      // A snapshot: a listener that subscribes or unsubscribes while this runs does not change who gets this message.
      for (const listener of [...subscribed]) {
        try {
          listener(message);
        } catch (error) {
          onListenerError(error, channel);
        }
      }
    },

    subscribe(channel, listener) {
      let subscribed = listeners.get(channel);
      if (!subscribed) {
        subscribed = new Set();
        listeners.set(channel, subscribed);
      }
      // Each subscription is its own entry, so subscribing one function twice needs two unsubscribes.
      const entry: BusListener = (message) => listener(message);
      subscribed.add(entry);
      return () => {
        subscribed.delete(entry);
      };
    },
  };
}
