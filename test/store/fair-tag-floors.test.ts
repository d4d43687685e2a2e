/**
 * FairTagFloors (src/store/postgres/fair-tag-floors.ts): the floors one process gives one tenant's
 * overlapping submits, with a stand-in for the submit statement that computes tags the way the
 * database would from what it can see committed.
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { FairTagFloors } from "../../src/store/postgres/fair-tag-floors.js";

/** A tenant's tags as the database computes them: one stride past the latest committed one, at least the floor. */
function fakeDatabase(stride: number) {
  const committed: number[] = [];
  const seenFloors: (number | null)[] = [];
  return {
    committed,
    seenFloors,
    async submit(floor: number | null, failWith?: Error): Promise<{ tag: number; value: number }> {
      seenFloors.push(floor);
      // What the statement sees is read at its start; it commits a few milliseconds later.
      const latest = committed.length ? Math.max(...committed) : null;
      const tag = Math.max(latest === null ? 0 : latest + stride, floor ?? -Infinity);
      await sleep(5);
      if (failWith) throw failWith;
      committed.push(tag);
      return { tag, value: tag };
    },
  };
}

describe("FairTagFloors", () => {
  it("gives overlapping submits of one tenant distinct tags, one stride apart", async () => {
    const floors = new FairTagFloors();
    const db = fakeDatabase(1);
    const tags = await Promise.all(Array.from({ length: 20 }, () => floors.run("flow", 1, (floor) => db.submit(floor))));
    assert.deepEqual([...tags].sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
    assert.equal(db.seenFloors[0], null, "the first of a burst goes without a floor");
    assert.equal(floors.size, 0, "nothing is kept once no submit is in flight");
  });

  it("without floors the same burst would tie (what the floors are for)", async () => {
    const db = fakeDatabase(1);
    const tags = (await Promise.all(Array.from({ length: 20 }, () => db.submit(null)))).map((r) => r.tag);
    assert.ok(new Set(tags).size < 20, `tags ${tags.join(",")}`);
  });

  it("moves the floors on when the database moved the tenant on (another gateway's submits)", async () => {
    const floors = new FairTagFloors();
    const db = fakeDatabase(1);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const first = floors.run("flow", 1, (floor) => db.submit(floor));
    // Keeps the burst going (in flight, floor handed out) while the rest happens.
    const keeper = floors.run("flow", 1, async (floor) => {
      await held;
      return db.submit(floor);
    });
    const raised = floors.run("flow", 1, async (floor) => {
      db.committed.push(100); // committed meanwhile by another gateway
      return db.submit(floor);
    });
    assert.equal(await first, 0);
    assert.equal(await raised, 101);
    // Two more at once: both must start past 101 on their floors, as the database sees neither yet.
    const after = await Promise.all([floors.run("flow", 1, (floor) => db.submit(floor)), floors.run("flow", 1, (floor) => db.submit(floor))]);
    assert.deepEqual(after, [102, 103]);
    release();
    assert.equal(await keeper, 104);
  });

  it("hands the first place on when the first submit of a burst fails", async () => {
    const floors = new FairTagFloors();
    const db = fakeDatabase(2);
    const failed = floors.run("flow", 2, (floor) => db.submit(floor, new Error("connection lost")));
    const next = Array.from({ length: 3 }, () => floors.run("flow", 2, (floor) => db.submit(floor)));
    await assert.rejects(failed, /connection lost/);
    assert.deepEqual(await Promise.all(next), [0, 2, 4]);
    assert.equal(floors.size, 0);
  });

  it("keeps tenants (flows) apart", async () => {
    const floors = new FairTagFloors();
    const a = fakeDatabase(1);
    const b = fakeDatabase(1);
    const tags = await Promise.all([
      floors.run("a", 1, (floor) => a.submit(floor)),
      floors.run("b", 1, (floor) => b.submit(floor)),
      floors.run("a", 1, (floor) => a.submit(floor)),
    ]);
    assert.deepEqual(tags, [0, 0, 1]);
  });
});
