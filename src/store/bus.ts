/**
 * Notifications between the processes that share one store: queue wake-ups ("a request of app X
 * was queued") and request events (state, logs, progress, partial output) for status streams
 * watched on another gateway. Drivers: an in-process bus for the embedded SQLite store (one process
 * holds the database) and PostgreSQL's LISTEN/NOTIFY. Every driver passes the shared conformance
 * suite in `test/store/bus.case.ts`.
 *
 * Delivery is at most once and unordered across publishers: a bus carries hints, never state. A
 * receiver re-reads the store for anything it must not miss (a terminal state, the logs).
 * @module
 */

export type BusChannel = "queue" | "request";

export type BusListener = (message: string) => void;

export interface Bus {
  /**
   * True when messages cross process boundaries (PostgreSQL). The in-process bus says false, and
   * callers skip publishing what local listeners already received directly.
   */
  readonly distributed: boolean;
  /**
   * Sends `message` to every subscriber of `channel` in every process sharing the store, this one
   * included. Messages larger than the driver's limit (PostgreSQL: under 8000 bytes) are still
   * delivered whole.
   */
  publish(channel: BusChannel, message: string): Promise<void>;
  /** Returns the unsubscribe function. Listeners that throw do not affect the others. */
  subscribe(channel: BusChannel, listener: BusListener): () => void;
}
