/**
 * The subscribers of each bus channel within one process, which every {@link Bus} driver hands a
 * received message to: the in-process bus on publish, PostgreSQL's on a notification.
 * @module
 */
import type { Bus, BusChannel, BusListener } from "./bus.js";

export interface BusListeners {
  /** Calls every listener of `channel` with `message`; one that throws goes to the error callback and the others still get it. */
  deliver(channel: BusChannel, message: string): void;
  /** Adds `listener` to `channel` and returns its unsubscribe. */
  add(channel: BusChannel, listener: BusListener): ReturnType<Bus["subscribe"]>;
}

export function createBusListeners(onListenerError: (error: unknown, channel: BusChannel) => void): BusListeners {
  const listeners = new Map<BusChannel, Set<BusListener>>();
  return {
    deliver(channel, message) {
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

    add(channel, listener) {
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
