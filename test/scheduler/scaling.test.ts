/**
 * The scheduler's scaling arithmetic without a server: how many runners a pool wants from its
 * knobs, what its runners hold, the queue and what the claim plan says of suspects.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { desiredRunners, type ScalingInput } from "../../src/scheduler/scaling.js";

const NO_SUSPECTS: ScalingInput["plan"] = { except: [], isolating: 0, waitingGroups: 0, stranded: false };

/** A pool of up to ten single-slot runners, none warm, with nothing running or queued. */
function input(overrides: { knobs?: Partial<ScalingInput["knobs"]>; plan?: Partial<ScalingInput["plan"]> } & Partial<Omit<ScalingInput, "knobs" | "plan">> = {}): ScalingInput {
  const { knobs, plan, ...rest } = overrides;
  return {
    knobs: { min_runners: 0, max_runners: 10, max_multiplexing: 1, concurrency_buffer: 0, ...knobs },
    inFlight: [],
    waitingCalls: 0,
    queueDepth: 0,
    plan: { ...NO_SUSPECTS, ...plan },
    ...rest,
  };
}

const cases: { name: string; given: ScalingInput; want: number }[] = [
  { name: "an idle app with nothing queued wants no runner", given: input(), want: 0 },
  { name: "an idle app keeps min_runners", given: input({ knobs: { min_runners: 2 } }), want: 2 },
  { name: "one runner per queued request without multiplexing", given: input({ queueDepth: 4 }), want: 4 },
  { name: "never more than max_runners", given: input({ knobs: { max_runners: 3 }, queueDepth: 100 }), want: 3 },
  { name: "max_runners wins over min_runners", given: input({ knobs: { min_runners: 5, max_runners: 3 } }), want: 3 },
  { name: "multiplexing packs queued requests, rounding up", given: input({ knobs: { max_multiplexing: 4 }, queueDepth: 9 }), want: 3 },
  { name: "what alive runners run counts with the queue", given: input({ knobs: { max_multiplexing: 4 }, inFlight: [4, 2], queueDepth: 3 }), want: 3 },
  { name: "busy runners keep their count with an empty queue", given: input({ inFlight: [1, 1, 1] }), want: 3 },
  { name: "concurrency_buffer keeps warm runners on top of the work", given: input({ knobs: { concurrency_buffer: 2 }, queueDepth: 1 }), want: 3 },
  { name: "concurrency_buffer alone starts runners for an idle app", given: input({ knobs: { concurrency_buffer: 1 } }), want: 1 },
  { name: "waiting realtime calls count as queued work", given: input({ waitingCalls: 2 }), want: 2 },
  { name: "claimedAll: the queue depth was not read and counts for nothing", given: input({ inFlight: [1], queueDepth: null }), want: 1 },
  { name: "claimedAll: waiting realtime calls still count", given: input({ waitingCalls: 1, queueDepth: null }), want: 1 },
  {
    name: "queued suspects are not ordinary work: their waiting groups count instead",
    given: input({ queueDepth: 5, plan: { except: ["a", "b", "c"], waitingGroups: 2 } }),
    want: 4,
  },
  {
    name: "more suspects than the queue depth counts no negative work",
    given: input({ queueDepth: 1, plan: { except: ["a", "b", "c"], waitingGroups: 1 } }),
    want: 1,
  },
  {
    name: "each runner isolating suspects counts as one (their suspects are not in flight counts)",
    given: input({ knobs: { max_multiplexing: 4 }, inFlight: [0, 0, 3], queueDepth: 0, plan: { isolating: 2 } }),
    want: 3,
  },
  {
    name: "isolating and waiting groups add up with multiplexed work",
    given: input({ knobs: { max_multiplexing: 4 }, inFlight: [2], queueDepth: 4, plan: { except: ["s1", "s2"], isolating: 1, waitingGroups: 1 } }),
    want: 3,
  },
  {
    name: "stranded suspects get one runner more than are alive",
    given: input({ knobs: { max_multiplexing: 4 }, inFlight: [1, 1], queueDepth: null, plan: { waitingGroups: 1, stranded: true } }),
    want: 3,
  },
  {
    name: "stranded suspects get no runner past max_runners",
    given: input({ knobs: { max_multiplexing: 4, max_runners: 2 }, inFlight: [1, 1], queueDepth: null, plan: { waitingGroups: 1, stranded: true } }),
    want: 2,
  },
  {
    name: "stranded adds nothing when the work already asks for more",
    given: input({ inFlight: [1], queueDepth: 3, plan: { waitingGroups: 1, stranded: true } }),
    want: 5,
  },
];

describe("desiredRunners", () => {
  for (const { name, given, want } of cases) {
    it(name, () => assert.equal(desiredRunners(given), want));
  }
});
