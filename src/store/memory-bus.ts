/**
 * The in-process {@link Bus} of the embedded store: one process holds the SQLite file, so every
 * subscriber lives in it and a publish is a loop over local listeners.
 * @module
 */
import type { Bus, BusChannel } from "./bus.js";
import { createBusListeners } from "./bus-listeners.js";

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
  const listeners = createBusListeners(options.onListenerError ?? warnListenerError);

  return {
    distributed: false,

    // Listeners run before publish returns, so a caller that awaits it knows they have seen the message.
    async publish(channel, message) {
      listeners.deliver(channel, message);
    },

    subscribe(channel, listener) {
      return listeners.add(channel, listener);
    },
  };
}
