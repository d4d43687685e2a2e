/**
 * SpareRunners on stand-in processes: how many it keeps, when it waits to start one, what it hands
 * out first, and when it gives up. The real processes are in spare-runners.test.ts.
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { FromRunner } from "../../src/runtime/protocol.js";
import type { RunnerHandlers, RunnerProcess } from "../../src/scheduler/runner-process.js";
import { SpareRunners } from "../../src/scheduler/spare-runners.js";

interface StandIn {
  id: string;
  pid: number;
  alive: boolean;
  spareReady: boolean;
  became: string | null;
  killed: boolean;
  handlers: RunnerHandlers;
  /** The process says `spare`. */
  loaded(): void;
  /** The process exits. */
  exit(): void;
}

function fleet() {
  const started: StandIn[] = [];
  const spawn = (handlers: RunnerHandlers): RunnerProcess => {
    const standIn: StandIn = {
      id: `spare-${started.length + 1}`,
      pid: 1000 + started.length,
      alive: true,
      spareReady: false,
      became: null,
      killed: false,
      handlers,
      loaded() {
        this.spareReady = true;
        this.handlers.onMessage(this as unknown as RunnerProcess, { t: "spare" } satisfies FromRunner);
      },
      exit() {
        this.alive = false;
        this.handlers.onExit(this as unknown as RunnerProcess, 1, null);
      },
    };
    const asRunner = Object.assign(standIn, {
      outdated: false,
      canBecome: () => true,
      become(app: { id: string }, next: RunnerHandlers) {
        standIn.became = app.id;
        standIn.handlers = next;
        return true;
      },
      kill() {
        standIn.killed = true;
      },
    });
    started.push(standIn);
    return asRunner as unknown as RunnerProcess;
  };
  return { started, spawn };
}

const APP = { id: "acme/app", modulePath: "/apps/app.ts" };
const NO_HANDLERS: RunnerHandlers = { onMessage: () => undefined, onExit: () => undefined };

describe("SpareRunners", () => {
  it("keeps the count, prefers a ready spare to a loading one, and is refilled only when asked", () => {
    const { started, spawn } = fleet();
    const spares = new SpareRunners({ count: 2, env: {}, spawn });
    spares.fill();
    spares.fill();
    assert.equal(started.length, 2, "fill() tops up to the count and no further");
    started[1]!.loaded();
    assert.deepEqual(spares.snapshot().runners.map((r) => r.state), ["starting", "ready"]);
    const first = spares.take(APP, NO_HANDLERS);
    assert.equal(first?.id, "spare-2", "the ready one goes first");
    assert.equal(started[1]!.became, APP.id);
    const second = spares.take(APP, NO_HANDLERS);
    assert.equal(second?.id, "spare-1", "then the one still loading, ahead of a new process");
    assert.equal(spares.take(APP, NO_HANDLERS), null);
    assert.equal(started.length, 2, "take() starts nothing");
    spares.fill();
    assert.equal(started.length, 4);
    spares.stop();
  });

  it("waits while runners are starting before it starts a spare", async () => {
    const { started, spawn } = fleet();
    let busy = true;
    const spares = new SpareRunners({ count: 1, env: {}, spawn, busy: () => busy });
    spares.fill();
    await sleep(300);
    assert.equal(started.length, 0, "no spare while a runner that is needed now starts");
    busy = false;
    await sleep(400);
    assert.equal(started.length, 1);
    spares.stop();
  });

  it("replaces a spare that dies, and stops after three that die before they are ready", async () => {
    const { started, spawn } = fleet();
    const spares = new SpareRunners({ count: 1, env: {}, spawn });
    spares.fill();
    for (let i = 0; i < 3; i++) {
      started[i]!.exit();
      if (i < 2) {
        await sleep(1100);
        assert.equal(started.length, i + 2, `replaced after death ${i + 1}`);
      }
    }
    await sleep(1100);
    assert.equal(started.length, 3, "no fourth start after three failed ones");
    assert.equal(spares.snapshot().runners.length, 0);
    spares.stop();
  });

  it("kills its spares on stop and starts none after", () => {
    const { started, spawn } = fleet();
    const spares = new SpareRunners({ count: 1, env: {}, spawn });
    spares.fill();
    const stopped = spares.stop();
    assert.equal(stopped.length, 1);
    assert.ok(started[0]!.killed);
    spares.fill();
    assert.equal(started.length, 1);
  });
});
