/**
 * Waiting for a request's terminal state (sync runs, `/stream` calls): from the request events of
 * this gateway and, on a shared store, from the store itself now and then.
 * @module
 */
import { PlatformError } from "../core/errors.js";
import { isTerminal, type RequestRecord } from "../core/types.js";
import type { Store } from "../store/store.js";
import type { RequestEvents } from "./request-events.js";

/** How often a waiter on a shared store re-reads its request, in case a bus notification was lost. */
const TERMINAL_RECHECK_MS = 2000;

/** Resolves with the terminal record of a request (subscribing before reading, so no event is missed). */
export function waitForTerminal(sources: { store: Store; events: RequestEvents }, requestId: string, signal?: AbortSignal): Promise<RequestRecord> {
  const { store, events } = sources;
  return new Promise((resolve, reject) => {
    let settled = false;
    const unsubscribe = events.subscribe(requestId, (event) => {
      if (event.type === "state" && ["SUCCEEDED", "FAILED", "CANCELLED"].includes(event.record.state)) settle(event.record);
    });
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      unsubscribe();
      if (recheck) clearInterval(recheck);
      reject(signal?.reason instanceof Error ? signal.reason : new PlatformError("ERR_CLIENT_DISCONNECTED"));
    };
    const settle = (record: RequestRecord): void => {
      if (settled) return;
      settled = true;
      unsubscribe();
      if (recheck) clearInterval(recheck);
      signal?.removeEventListener("abort", onAbort);
      resolve(record);
    };
    // Across gateways the end arrives as a bus notification, which a reconnecting listener can
    // miss: look at the store now and then, so a waiter never hangs on a lost hint.
    const recheck = store.bus.distributed
      ? setInterval(() => {
          store.get(requestId).then((record) => {
            if (record && isTerminal(record.state)) settle(record);
          }, () => undefined);
        }, TERMINAL_RECHECK_MS)
      : null;
    signal?.addEventListener("abort", onAbort, { once: true });
    store.get(requestId).then((record) => {
      if (record && ["SUCCEEDED", "FAILED", "CANCELLED"].includes(record.state)) settle(record);
    }, (err: unknown) => {
      if (settled) return;
      settled = true;
      unsubscribe();
      if (recheck) clearInterval(recheck);
      reject(err instanceof Error ? err : new Error(String(err)));
    });
  });
}
