/**
 * Queue wake-ups without a server: watchers woken by announcements here and by other gateways'
 * hints on a bus stand-in, which records what was published.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Bus, BusChannel, BusListener } from "../../src/store/bus.js";
import { QueueWakeups } from "../../src/scheduler/queue-wakeups.js";

/** A bus stand-in: what was published, and a way to deliver a message as if another gateway sent it. */
function bus(distributed: boolean, publishFails = false) {
  const listeners = new Map<BusChannel, Set<BusListener>>();
  const published: [BusChannel, string][] = [];
  const stand: Bus = {
    distributed,
    publish: (channel, message) => {
      published.push([channel, message]);
      return publishFails ? Promise.reject(new Error("bus down")) : Promise.resolve();
    },
    subscribe: (channel, listener) => {
      const set = listeners.get(channel) ?? new Set();
      listeners.set(channel, set);
      set.add(listener);
      return () => set.delete(listener);
    },
  };
  const deliver = (channel: BusChannel, message: string): void => {
    for (const listener of listeners.get(channel) ?? []) listener(message);
  };
  return { stand, published, deliver, listeners: (channel: BusChannel) => listeners.get(channel)?.size ?? 0 };
}

function wakeups(options: { distributed?: boolean; publishFails?: boolean; served?: string[] } = {}) {
  const b = bus(options.distributed ?? false, options.publishFails);
  const seen = { pumped: [] as string[], loads: 0, warnings: [] as string[] };
  const served = new Set(options.served ?? ["a", "b"]);
  const logger = { info: () => undefined, error: () => undefined, warn: (_obj: object, msg?: string) => void seen.warnings.push(msg ?? "") };
  const w = new QueueWakeups({
    bus: b.stand,
    logger,
    serves: (appId) => served.has(appId),
    pump: (appId) => seen.pumped.push(appId),
    loadRemoteApps: () => {
      seen.loads += 1;
      return Promise.resolve();
    },
  });
  return { w, bus: b, seen };
}

describe("QueueWakeups", () => {
  it("wakes the watchers of the announced app only, until they stop watching", () => {
    const { w } = wakeups();
    const woken: string[] = [];
    const stopA = w.watch("a", () => woken.push("a1"));
    w.watch("a", () => woken.push("a2"));
    w.watch("b", () => woken.push("b"));
    w.announce("a");
    assert.deepEqual(woken, ["a1", "a2"]);
    stopA();
    stopA(); // stopping twice is harmless
    w.announce("a");
    assert.deepEqual(woken, ["a1", "a2", "a2"]);
  });

  it("lets a watcher stop watching while it is woken, and goes on past one that throws", () => {
    const { w, seen } = wakeups();
    const woken: string[] = [];
    const stop = w.watch("a", () => {
      woken.push("once");
      stop();
    });
    w.watch("a", () => {
      throw new Error("broken watcher");
    });
    w.watch("a", () => woken.push("after"));
    w.announce("a");
    w.announce("a");
    assert.deepEqual(woken, ["once", "after", "after"]);
    assert.deepEqual(seen.warnings, ["queue watcher failed", "queue watcher failed"]);
  });

  it("announces on the bus only when the bus crosses processes, and logs a failed publish", async () => {
    const local = wakeups({ distributed: false });
    local.w.announce("a");
    assert.deepEqual(local.bus.published, []);

    const shared = wakeups({ distributed: true, publishFails: true });
    shared.w.announce("a");
    assert.deepEqual(shared.bus.published, [["queue", "a"]]);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(shared.seen.warnings, ["publishing a queue wake-up failed"]);
  });

  it("pumps and wakes on another gateway's hint for an app it serves, and reads the remote apps for one it lacks", () => {
    const { w, bus: b, seen } = wakeups({ distributed: true, served: ["a"] });
    const woken: string[] = [];
    w.watch("a", () => woken.push("a"));
    w.listen();
    b.deliver("queue", "a");
    assert.deepEqual(seen.pumped, ["a"]);
    assert.deepEqual(woken, ["a"]);
    b.deliver("queue", "python/app");
    assert.deepEqual(seen.pumped, ["a"], "an app it does not serve is not pumped");
    assert.equal(seen.loads, 1);
    w.stopListening();
    assert.equal(b.listeners("queue"), 0);
    b.deliver("queue", "a");
    assert.deepEqual(seen.pumped, ["a"]);
  });

  it("wakes every watcher when the scheduler stops", () => {
    const { w } = wakeups();
    const woken: string[] = [];
    w.watch("a", () => woken.push("a"));
    w.watch("b", () => woken.push("b"));
    w.wakeAll();
    assert.deepEqual(woken.sort(), ["a", "b"]);
  });
});
