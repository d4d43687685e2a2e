/**
 * The isolation decisions of the scheduler without a server: how the requests of a dead runner are
 * grouped for their retries, and what each runner of an app may claim while suspects exist.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { planClaims, splitSuspects, Suspects, type RunnerView } from "../../src/scheduler/isolation.js";

const ready = (id: string, ...inFlight: string[]): RunnerView => ({ id, state: "ready", inFlight: new Set(inFlight) });
const starting = (id: string): RunnerView => ({ id, state: "starting", inFlight: new Set() });

function suspectsOf(...groups: string[][]): Suspects {
  const suspects = new Suspects();
  for (const id of groups.flat()) suspects.hold(id);
  suspects.place(groups);
  return suspects;
}

describe("splitSuspects", () => {
  it("retries the requests of a dead runner in two halves, in the order given", () => {
    const runs = ["a", "b", "c", "d", "e"].map((id) => ({ id, attemptsLeft: 2 }));
    assert.deepEqual(splitSuspects(runs), [["a", "b", "c"], ["d", "e"]]);
    assert.deepEqual(splitSuspects(runs.slice(0, 2)), [["a"], ["b"]]);
    assert.deepEqual(splitSuspects(runs.slice(0, 1)), [["a"]]);
    assert.deepEqual(splitSuspects([]), []);
  });

  it("puts a request on its last attempt alone, so that a neighbour's crash cannot use it up", () => {
    const runs = [
      { id: "a", attemptsLeft: 2 },
      { id: "last", attemptsLeft: 1 },
      { id: "b", attemptsLeft: 5 },
      { id: "c", attemptsLeft: 2 },
      { id: "d", attemptsLeft: 2 },
    ];
    assert.deepEqual(splitSuspects(runs), [["a", "b"], ["last"], ["c", "d"]]);
    assert.deepEqual(splitSuspects(runs.map((r) => ({ ...r, attemptsLeft: 1 }))), [["a"], ["last"], ["b"], ["c"], ["d"]]);
  });

  it("lets a poisonous request use up its attempts while every other request of its runner succeeds", () => {
    // Simulates the retries of 32 requests of a runner that died, with 3 attempts each (the queue's
    // default), for each position of one request that kills every runner it runs on.
    for (let culprit = 0; culprit < 32; culprit++) {
      const attempt = new Map<string, number>();
      const ids = Array.from({ length: 32 }, (_, i) => `r${i}`);
      for (const id of ids) attempt.set(id, 2); // the first crash took the first attempt of all
      const outcome = new Map<string, "SUCCEEDED" | "FAILED">();
      let groups = splitSuspects(ids.map((id) => ({ id, attemptsLeft: 3 - 2 + 1 })));
      let rounds = 0;
      while (groups.length > 0) {
        rounds += 1;
        const next: string[][] = [];
        for (const group of groups) {
          if (!group.includes(`r${culprit}`)) {
            for (const id of group) outcome.set(id, "SUCCEEDED");
            continue;
          }
          // The runner dies: every member loses this attempt; the exhausted end FAILED, the rest are split.
          const back = group.filter((id) => {
            const n = attempt.get(id) ?? 0;
            if (n >= 3) {
              outcome.set(id, "FAILED");
              return false;
            }
            attempt.set(id, n + 1);
            return true;
          });
          next.push(...splitSuspects(back.map((id) => ({ id, attemptsLeft: 3 - (attempt.get(id) ?? 0) + 1 }))));
        }
        groups = next;
      }
      for (const id of ids) assert.equal(outcome.get(id), id === `r${culprit}` ? "FAILED" : "SUCCEEDED", `culprit r${culprit}: ${id}`);
      assert.equal(attempt.get(`r${culprit}`), 3, "the culprit failed after its 3 attempts");
      assert.equal(rounds, 2, "the culprit's half crashes once more, then each of its requests runs alone");
    }
  });
});

describe("Suspects", () => {
  it("holds requests on their way back to the queue, then waits them in groups, oldest group first", () => {
    const suspects = new Suspects();
    suspects.hold("a");
    suspects.hold("b");
    suspects.hold("c");
    assert.equal(suspects.size, 3);
    assert.deepEqual(suspects.waiting(() => false), [], "held suspects are not claimable yet");
    suspects.place([["b", "c"], ["a"]]);
    assert.deepEqual(suspects.waiting(() => false), [["b", "c"], ["a"]]);
    assert.deepEqual(suspects.waiting((id) => id === "b"), [["c"], ["a"]], "running ones do not wait");
    assert.ok(suspects.delete("c"));
    assert.ok(!suspects.delete("c"));
    assert.deepEqual(suspects.waiting(() => false), [["b"], ["a"]]);
    suspects.hold("b");
    assert.deepEqual(suspects.waiting(() => false), [["a"]], "a held one leaves its group");
    assert.ok(suspects.has("b"));
    assert.deepEqual(new Set(suspects.ids()), new Set(["a", "b"]));
  });
});

describe("planClaims", () => {
  it("lets every ready runner fill its free slots when there are no suspects", () => {
    const plan = planClaims({
      runners: [ready("r1", "x", "y"), ready("r2"), ready("full", "1", "2", "3", "4"), starting("r3"), { id: "r4", state: "draining", inFlight: new Set() }],
      maxMultiplexing: 4,
      suspects: new Suspects(),
      canSpawn: false,
    });
    assert.deepEqual(plan.slots, [
      { runnerId: "r1", slots: 2 },
      { runnerId: "r2", slots: 4 },
    ]);
    assert.deepEqual(plan.groups, []);
    assert.deepEqual(plan.except, []);
    assert.equal(plan.reserved, null);
  });

  it("keeps the busy runners multiplexing, suspects excluded, while a replacement starts for the suspects", () => {
    // A crash took down a runner with three requests; its replacement is starting.
    const suspects = suspectsOf(["l1", "l2"], ["l3", "crash"]);
    const plan = planClaims({ runners: [ready("b", "l4", "l5", "l6"), starting("a2")], maxMultiplexing: 4, suspects, canSpawn: false });
    assert.deepEqual(plan.slots, [{ runnerId: "b", slots: 1 }], "the other runner takes new work at full multiplexing");
    assert.deepEqual(new Set(plan.except), new Set(["l1", "l2", "l3", "crash"]));
    assert.deepEqual(plan.groups, []);
    assert.equal(plan.waitingGroups, 2);
    assert.equal(plan.reserved, null, "the starting runner will take a group");
    assert.equal(plan.stranded, false);
  });

  it("gives each idle runner a waiting group, which it claims alone", () => {
    const suspects = suspectsOf(["l1", "l2"], ["l3", "crash"]);
    const plan = planClaims({ runners: [ready("b", "l4"), ready("a2"), ready("c")], maxMultiplexing: 4, suspects, canSpawn: false });
    assert.deepEqual(plan.groups, [
      { runnerId: "a2", ids: ["l1", "l2"] },
      { runnerId: "c", ids: ["l3", "crash"] },
    ]);
    assert.deepEqual(plan.slots, [{ runnerId: "b", slots: 3 }]);
  });

  it("takes no other work on a runner that runs suspects, and no suspect on one that runs other work", () => {
    const suspects = suspectsOf(["l1", "l2"], ["l3", "crash"]);
    const plan = planClaims({ runners: [ready("a2", "l1"), ready("b", "t1")], maxMultiplexing: 4, suspects, canSpawn: false });
    assert.deepEqual(plan.slots, [{ runnerId: "b", slots: 3 }]);
    assert.deepEqual(plan.groups, [], "the waiting group waits for an idle runner");
    assert.deepEqual(new Set(plan.except), new Set(["l2", "l3", "crash"]), "a running suspect needs no exclusion");
    assert.equal(plan.isolating, 1);
    assert.equal(plan.waitingGroups, 2, "l2, whose group mate runs, and the other group");
    assert.equal(plan.reserved, null, "the isolating runner takes the next group when it is done");
  });

  it("holds back the least loaded runner for a group that could get no runner otherwise", () => {
    const suspects = suspectsOf(["s1"]);
    const runners = [ready("r1", "a", "b", "c"), ready("r2", "d"), ready("r3", "e", "f")];
    const plan = planClaims({ runners, maxMultiplexing: 4, suspects, canSpawn: false });
    assert.equal(plan.stranded, true);
    assert.equal(plan.reserved, "r2");
    assert.deepEqual(plan.slots, [
      { runnerId: "r1", slots: 1 },
      { runnerId: "r3", slots: 2 },
    ]);
    const canSpawn = planClaims({ runners, maxMultiplexing: 4, suspects, canSpawn: true });
    assert.equal(canSpawn.stranded, true, "the pool starts a runner for it");
    assert.equal(canSpawn.reserved, null, "and holds none back");
    assert.equal(canSpawn.slots.length, 3);
    const withStarting = planClaims({ runners: [...runners, starting("r4")], maxMultiplexing: 4, suspects, canSpawn: false });
    assert.equal(withStarting.stranded, false, "the starting runner will take it");
    assert.equal(withStarting.reserved, null);
    // Once empty, it takes the group.
    const later = planClaims({ runners: [runners[0]!, ready("r2"), runners[2]!], maxMultiplexing: 4, suspects, canSpawn: false });
    assert.deepEqual(later.groups, [{ runnerId: "r2", ids: ["s1"] }]);
    assert.equal(later.reserved, null);
  });

  it("keeps held suspects out of every claim until they are placed", () => {
    const suspects = new Suspects();
    suspects.hold("h");
    const plan = planClaims({ runners: [ready("r1"), ready("r2", "x")], maxMultiplexing: 2, suspects, canSpawn: false });
    assert.deepEqual(plan.groups, []);
    assert.deepEqual(plan.except, ["h"]);
    assert.deepEqual(plan.slots, [
      { runnerId: "r1", slots: 2 },
      { runnerId: "r2", slots: 1 },
    ]);
  });
});
