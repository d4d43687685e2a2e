/**
 * The bus conformance suite: every {@link Bus} driver runs it through its own test file. A fixture
 * is one or more buses over one store (for PostgreSQL: several store instances, as on several
 * gateways); the first publishes, and every one of them must deliver to its subscribers.
 * @module
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import type { Bus, BusChannel } from "../../src/store/bus.js";

export interface BusFixture {
  /** `buses[0]` publishes; every bus gets subscribers. */
  buses: Bus[];
  close(): Promise<void>;
}

/** Creates the buses; `onListenerError` receives what a listener threw. */
export type OpenBusFixture = (onListenerError: (error: unknown) => void) => Promise<BusFixture>;

const DELIVERY_TIMEOUT_MS = 5_000;
const PROBE = "probe:";

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Messages received by one listener, probes left out. */
function collector(): { messages: string[]; listener: (message: string) => void } {
  const messages: string[] = [];
  return { messages, listener: (message) => void (message.startsWith(PROBE) || messages.push(message)) };
}

/**
 * Waits until a message published now reaches every bus on `channels`: a distributed bus subscribes
 * asynchronously (LISTEN on another connection), so a message sent right after subscribing may
 * legitimately be missed. Probes are resent until each bus has seen one.
 */
async function settle(fixture: BusFixture, channels: readonly BusChannel[]): Promise<void> {
  for (const channel of channels) {
    const seen = fixture.buses.map(() => false);
    const unsubscribes = fixture.buses.map((bus, i) =>
      bus.subscribe(channel, (message) => {
        if (message.startsWith(PROBE)) seen[i] = true;
      }),
    );
    try {
      const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
      while (!seen.every(Boolean)) {
        if (Date.now() > deadline) assert.fail(`the buses never heard a probe on "${channel}"`);
        await fixture.buses[0]!.publish(channel, `${PROBE}${randomUUID()}`);
        await sleep(20);
      }
    } finally {
      for (const unsubscribe of unsubscribes) unsubscribe();
    }
  }
}

export function runBusConformance(driverName: string, open: OpenBusFixture): void {
  async function withBuses(body: (fixture: BusFixture, listenerErrors: unknown[]) => Promise<void>): Promise<void> {
    const listenerErrors: unknown[] = [];
    const fixture = await open((error) => listenerErrors.push(error));
    try {
      await settle(fixture, ["queue", "request"]);
      await body(fixture, listenerErrors);
    } finally {
      await fixture.close();
    }
  }

  describe(`bus conformance: ${driverName}`, () => {
    it("delivers a message to every subscriber of the channel on every bus", () =>
      withBuses(async ({ buses }) => {
        const received = buses.flatMap((bus) => [collector(), collector()].map((c) => (bus.subscribe("queue", c.listener), c)));
        await buses[0]!.publish("queue", "app-1");
        await buses[0]!.publish("queue", "app-2 — ünïcode 🎞️");
        await waitFor(() => received.every((c) => c.messages.length === 2), "both messages on every subscriber");
        for (const c of received) assert.deepEqual(new Set(c.messages), new Set(["app-1", "app-2 — ünïcode 🎞️"]));
      }));

    it("keeps channels apart", () =>
      withBuses(async ({ buses }) => {
        const queue = buses.map(() => collector());
        const request = buses.map(() => collector());
        buses.forEach((bus, i) => {
          bus.subscribe("queue", queue[i]!.listener);
          bus.subscribe("request", request[i]!.listener);
        });
        await buses[0]!.publish("request", "event");
        await buses[0]!.publish("queue", "wake");
        await waitFor(() => [...queue, ...request].every((c) => c.messages.length > 0), "one message per channel");
        // Time for a misrouted copy to arrive, had there been one.
        await sleep(50);
        for (const c of queue) assert.deepEqual(c.messages, ["wake"]);
        for (const c of request) assert.deepEqual(c.messages, ["event"]);
      }));

    it("stops delivering to a listener once it unsubscribes", () =>
      withBuses(async ({ buses }) => {
        const gone = collector();
        const staying = collector();
        const unsubscribe = buses.at(-1)!.subscribe("request", gone.listener);
        buses.at(-1)!.subscribe("request", staying.listener);
        await buses[0]!.publish("request", "first");
        await waitFor(() => gone.messages.length === 1 && staying.messages.length === 1, "the first message");
        unsubscribe();
        unsubscribe(); // a second call is harmless
        await buses[0]!.publish("request", "second");
        await waitFor(() => staying.messages.length === 2, "the second message");
        await sleep(50);
        assert.deepEqual(gone.messages, ["first"]);
        assert.deepEqual(staying.messages, ["first", "second"]);
      }));

    it("delivers large messages whole", () =>
      withBuses(async ({ buses }) => {
        const received = buses.map(() => collector());
        buses.forEach((bus, i) => bus.subscribe("request", received[i]!.listener));
        // Multi-byte characters, so a limit counted in characters instead of bytes would show.
        const large = `${"é🎞️".repeat(25_000)}${JSON.stringify({ end: randomUUID() })}`;
        assert.ok(Buffer.byteLength(large) > 100_000);
        // Both sides of PostgreSQL's 8000-byte NOTIFY limit.
        const nearLimit = ["x".repeat(7_890), "x".repeat(7_999), "x".repeat(8_000), "é".repeat(4_000)];
        for (const message of [large, ...nearLimit]) await buses[0]!.publish("request", message);
        await waitFor(() => received.every((c) => c.messages.length === 5), "every large message");
        for (const c of received) assert.deepEqual(new Set(c.messages), new Set([large, ...nearLimit]));
      }));

    it("keeps delivering to the other listeners when one throws", () =>
      withBuses(async ({ buses }, listenerErrors) => {
        const before = collector();
        const after = collector();
        let thrown = 0;
        const bus = buses.at(-1)!;
        bus.subscribe("queue", before.listener);
        bus.subscribe("queue", (message) => {
          if (message.startsWith(PROBE)) return;
          thrown += 1;
          throw new Error("listener failure");
        });
        bus.subscribe("queue", after.listener);
        await buses[0]!.publish("queue", "one");
        await buses[0]!.publish("queue", "two");
        await waitFor(() => before.messages.length === 2 && after.messages.length === 2, "both messages on both listeners");
        assert.equal(thrown, 2, "the throwing listener stays subscribed");
        assert.equal(listenerErrors.length, 2);
        assert.match(String(listenerErrors[0]), /listener failure/);
      }));

    it("delivers to a subscriber on the publishing bus itself", () =>
      withBuses(async ({ buses }) => {
        const own = collector();
        buses[0]!.subscribe("queue", own.listener);
        await buses[0]!.publish("queue", "to myself");
        await waitFor(() => own.messages.length === 1, "the message");
        assert.deepEqual(own.messages, ["to myself"]);
      }));
  });
}
