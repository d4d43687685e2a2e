/**
 * The in-process bus: the shared bus conformance suite, plus what callers rely on in one process:
 * listeners have run when publish resolves, and the SQLite store exposes such a bus.
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createMemoryBus } from "../../src/store/memory-bus.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { runBusConformance } from "./bus.case.js";

runBusConformance("memory", async (onListenerError) => ({
  buses: [createMemoryBus({ onListenerError })],
  close: async () => undefined,
}));

describe("memory bus", () => {
  it("has run every listener when publish resolves", async () => {
    const bus = createMemoryBus();
    const got: string[] = [];
    bus.subscribe("queue", (m) => got.push(`a:${m}`));
    bus.subscribe("queue", (m) => got.push(`b:${m}`));
    await bus.publish("queue", "x");
    assert.deepEqual(got, ["a:x", "b:x"]);
    await bus.publish("request", "not for queue listeners");
    assert.deepEqual(got, ["a:x", "b:x"]);
  });

  it("counts each subscription of the same function separately", async () => {
    const bus = createMemoryBus();
    let calls = 0;
    const listener = (): void => void (calls += 1);
    const first = bus.subscribe("queue", listener);
    bus.subscribe("queue", listener);
    await bus.publish("queue", "x");
    assert.equal(calls, 2);
    first();
    await bus.publish("queue", "y");
    assert.equal(calls, 3);
  });

  it("is the SQLite store's bus, and not distributed", async () => {
    const store = createSqliteStore({ path: ":memory:" });
    try {
      assert.equal(store.bus.distributed, false);
      const got: string[] = [];
      store.bus.subscribe("request", (m) => got.push(m));
      await store.bus.publish("request", "event");
      assert.deepEqual(got, ["event"]);
    } finally {
      await store.close();
    }
  });
});
