/**
 * OutcomeWrites on its own: an outage keeps the write and tries it again until the store takes it;
 * anything else fails at once; stop() ends the waiting with one last try.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { OutcomeWrites } from "../../src/scheduler/outcome-writes.js";

const refused = (): Error => Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });

describe("OutcomeWrites", () => {
  it("keeps a write through an outage and holds its request until the store takes it", async () => {
    const kept: string[] = [];
    const writes = new OutcomeWrites({ firstDelayMs: 5, maxDelayMs: 20, onKept: (id) => kept.push(id) });
    let tries = 0;
    const written = writes.write("req-1", async () => {
      tries += 1;
      if (tries < 4) throw refused();
      return "stored";
    });
    await new Promise((resolve) => setTimeout(resolve, 1));
    assert.equal(writes.has("req-1"), true);
    assert.equal(await written, "stored");
    assert.equal(tries, 4);
    assert.deepEqual(kept, ["req-1"]);
    assert.equal(writes.has("req-1"), false);
    assert.equal(writes.size, 0);
  });

  it("throws at once what is not an outage", async () => {
    const writes = new OutcomeWrites({ firstDelayMs: 5 });
    let tries = 0;
    await assert.rejects(
      writes.write("req-2", async () => {
        tries += 1;
        throw new Error("duplicate key value violates unique constraint");
      }),
      /duplicate key/,
    );
    assert.equal(tries, 1);
    assert.equal(writes.has("req-2"), false);
  });

  it("stop() tries once more and then gives the outage back", async () => {
    const writes = new OutcomeWrites({ firstDelayMs: 60_000 });
    let tries = 0;
    const written = writes.write("req-3", async () => {
      tries += 1;
      throw refused();
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(tries, 1);
    writes.stop();
    await assert.rejects(written, /ECONNREFUSED/);
    assert.equal(tries, 2);
    assert.equal(writes.has("req-3"), false);
  });
});
