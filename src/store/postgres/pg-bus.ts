/**
 * The {@link Bus} on PostgreSQL LISTEN/NOTIFY, for several gateways sharing one database.
 *
 * Publishing goes through the store's pool (`pg_notify`); listening holds one dedicated connection,
 * because a pooled connection is handed to other queries and returned at will, and a LISTEN lives only
 * as long as its session. That connection is opened on the first subscribe and, when it drops, opened
 * again with backoff and every channel LISTENed again; messages sent while it was down are lost, which
 * the bus allows (it carries hints, see `src/store/bus.ts`).
 *
 * A NOTIFY payload must be shorter than 8000 bytes. A larger message is written to `bus_spill` in
 * the same statement as the notification, which then carries only the row id; receivers read the
 * row back. Spilled rows older than a minute are deleted by later spills.
 * @module
 */
import pg from "pg";
import type { Bus, BusChannel } from "../bus.js";
import { createBusListeners } from "../bus-listeners.js";

export interface PgBusOptions {
  pool: pg.Pool;
  /** Settings for the listening connection (those of the pool). */
  clientConfig: pg.ClientConfig;
  /** Channel names are `<prefix>_queue` and `<prefix>_request`. */
  channelPrefix: string;
  onError: (error: unknown, context: string) => void;
}

export interface PgBus extends Bus {
  /**
   * Resolves once every channel subscribed so far is LISTENed on a live connection: from then on,
   * messages published anywhere reach this process's subscribers. Waits through reconnects.
   */
  listening(): Promise<void>;
  /** Ends the listening connection. The pool belongs to the store and stays open. */
  close(): Promise<void>;
}

/** Payload bytes allowed inline: under PostgreSQL's 8000, with room for the kind prefix. */
const INLINE_LIMIT_BYTES = 7900;
const SPILL_RETENTION_MS = 60_000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;
/** A connection that lived this long resets the backoff; one that drops sooner does not. */
const STABLE_CONNECTION_MS = 10_000;
const CHANNELS: readonly BusChannel[] = ["queue", "request"];

// Payload kinds: the message itself, or the id of its bus_spill row.
const INLINE = "m:";
const SPILLED = "s:";

export function createPgBus(options: PgBusOptions): PgBus {
  const { pool, onError } = options;
  const channelName = (channel: BusChannel): string => `${options.channelPrefix}_${channel}`;
  const busChannel = new Map<string, BusChannel>(CHANNELS.map((c) => [channelName(c), c]));
  const listeners = createBusListeners((error, channel) => onError(error, `bus listener on channel "${channel}"`));
  /** Channels to LISTEN on every (re)connect: once subscribed, a channel stays LISTENed. */
  const wanted = new Set<BusChannel>();

  let closed = false;
  let client: pg.Client | null = null;
  let connecting: Promise<void> | null = null;
  let pendingListens = 0;
  let wakeReconnect: (() => void) | null = null;
  let retryDelay = RECONNECT_MIN_MS;
  let connectedAt = 0;
  const waiters = new Set<() => void>();
  const inFlight = new Set<Promise<void>>();

  function wakeWaiters(): void {
    for (const waiter of [...waiters]) waiter();
  }

  function track(work: Promise<void>): void {
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
  }

  function onNotification(notification: pg.Notification): void {
    const channel = busChannel.get(notification.channel);
    const payload = notification.payload ?? "";
    if (!channel) return;
    if (payload.startsWith(INLINE)) {
      listeners.deliver(channel, payload.slice(INLINE.length));
    } else if (payload.startsWith(SPILLED)) {
      const id = Number(payload.slice(SPILLED.length));
      track(
        pool
          .query<{ message: string }>({ name: "darkroom_bus_read_spill", text: "SELECT message FROM bus_spill WHERE id = $1", values: [id] })
          .then((result) => {
            const row = result.rows[0];
            if (row) listeners.deliver(channel, row.message);
            else onError(new Error(`Spilled bus message ${id} is gone`), `bus channel "${channel}"`);
          })
          .catch((error: unknown) => onError(error, `reading spilled bus message ${id}`)),
      );
    }
  }

  function dropped(lost: pg.Client): void {
    if (lost !== client) return;
    client = null;
    lost.removeAllListeners("notification");
    // The socket is gone or broken either way; end() only releases what is left of it.
    lost.end().catch(() => undefined);
    // A server that accepts the connection and then drops it at once must not be redialled at
    // full speed: the backoff carries over until a connection stays up.
    const stable = Date.now() - connectedAt >= STABLE_CONNECTION_MS;
    if (stable) retryDelay = RECONNECT_MIN_MS;
    if (!closed) ensureConnected(!stable);
  }

  /** Waits out the current backoff (cut short by close) and lengthens the next one. */
  async function backOff(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, retryDelay);
      wakeReconnect = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    wakeReconnect = null;
    retryDelay = Math.min(retryDelay * 2, RECONNECT_MAX_MS);
  }

  /** Opens the listening connection, retrying with backoff until it works or the bus closes. */
  function ensureConnected(waitFirst = false): void {
    if (connecting || client || closed) return;
    connecting = (async () => {
      if (waitFirst) await backOff();
      while (!closed) {
        const next = new pg.Client({
          ...options.clientConfig,
          application_name: "darkroom-bus",
          // Without keepalive a connection cut silently (no RST) would look alive forever.
          keepAlive: true,
          keepAliveInitialDelayMillis: 10_000,
        });
        next.on("error", (error) => {
          // Errors while connecting are reported once, by the retry below.
          if (next === client) onError(error, "bus listening connection");
          dropped(next);
        });
        next.on("end", () => dropped(next));
        next.on("notification", onNotification);
        try {
          await next.connect();
          // A Set iterates over channels added while this loop awaits, so a subscribe during the
          // reconnect is LISTENed here.
          for (const channel of wanted) await next.query(`LISTEN ${pg.escapeIdentifier(channelName(channel))}`);
          if (closed) {
            await next.end();
            return;
          }
          client = next;
          connectedAt = Date.now();
          return;
        } catch (error) {
          next.removeAllListeners("notification");
          next.end().catch(() => undefined);
          if (closed) return;
          onError(error, `bus listening connection (retrying in ${retryDelay} ms)`);
          await backOff();
        }
      }
    })().finally(() => {
      connecting = null;
      wakeWaiters();
    });
  }

  function listen(channel: BusChannel): void {
    if (wanted.has(channel)) return;
    wanted.add(channel);
    if (!client) {
      ensureConnected();
      return;
    }
    pendingListens += 1;
    const name = channelName(channel);
    track(
      client
        .query(`LISTEN ${pg.escapeIdentifier(name)}`)
        .then(() => undefined)
        // A failed LISTEN means the connection is going down: the reconnect LISTENs every channel.
        .catch((error: unknown) => onError(error, `LISTEN ${name}`))
        .finally(() => {
          pendingListens -= 1;
          wakeWaiters();
        }),
    );
  }

  return {
    distributed: true,

    async publish(channel, message) {
      const name = channelName(channel);
      const inline = INLINE + message;
      if (Buffer.byteLength(inline, "utf8") <= INLINE_LIMIT_BYTES) {
        await pool.query({ name: "darkroom_bus_notify", text: "SELECT pg_notify($1, $2)", values: [name, inline] });
        return;
      }
      // One statement: the row, the notification and the pruning commit together, so a receiver
      // never gets an id whose row it cannot see yet.
      const now = Date.now();
      await pool.query({
        name: "darkroom_bus_spill",
        text: `
          WITH spilled AS (INSERT INTO bus_spill (message, created_at) VALUES ($2, $3) RETURNING id),
               pruned AS (DELETE FROM bus_spill WHERE created_at < $4)
          SELECT pg_notify($1, $5 || spilled.id) FROM spilled`,
        values: [name, message, now, now - SPILL_RETENTION_MS, SPILLED],
      });
    },

    subscribe(channel, listener) {
      const unsubscribe = listeners.add(channel, listener);
      listen(channel);
      return unsubscribe;
    },

    async listening() {
      while (!closed && (client === null || pendingListens > 0)) {
        if (wanted.size === 0) return;
        await new Promise<void>((resolve) => {
          const waiter = (): void => {
            waiters.delete(waiter);
            resolve();
          };
          waiters.add(waiter);
          // Polled as well: a connection that comes up resolves no waiter by itself until its loop ends.
          setTimeout(waiter, 20).unref();
        });
      }
    },

    async close() {
      closed = true;
      wakeReconnect?.();
      await connecting;
      const last = client;
      client = null;
      if (last) {
        last.removeAllListeners("notification");
        await last.end().catch(() => undefined);
      }
      await Promise.allSettled([...inFlight]);
      wakeWaiters();
    },
  };
}
