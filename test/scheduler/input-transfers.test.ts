/**
 * Spilled inputs on their way to local runners share a byte budget (src/scheduler/input-transfers.ts):
 * in dispatch order, never more than the budget at once unless one input alone is larger, every
 * release counted once; reads come from a real storage folder.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { UnparsedInput } from "../../src/core/unparsed-input.js";
import { InputTransfers } from "../../src/scheduler/input-transfers.js";
import { createLocalStorage } from "../../src/storage/local-storage.js";
import { spillInput } from "../../src/storage/spilled-inputs.js";

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("input transfers", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "darkroom-transfers-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("admits transfers in order within the budget, and one larger than it alone", async () => {
    const transfers = new InputTransfers(undefined, 100);
    const granted: string[] = [];
    const releases = new Map<string, () => void>();
    const ask = (name: string, bytes: number): void =>
      void transfers.reserve(bytes).then((release) => {
        granted.push(name);
        releases.set(name, release);
      });
    ask("a", 60);
    ask("b", 40);
    ask("c", 250);
    ask("d", 10);
    await tick();
    assert.deepEqual(granted, ["a", "b"]);
    assert.equal(transfers.held, 100);
    assert.equal(transfers.waiting, 2);
    releases.get("a")!();
    await tick();
    // c is larger than the whole budget: it waits until nothing else is in transfer, and d behind it.
    assert.deepEqual(granted, ["a", "b"]);
    releases.get("b")!();
    releases.get("b")!();
    await tick();
    assert.deepEqual(granted, ["a", "b", "c"]);
    assert.equal(transfers.held, 250, "a release called twice counts once");
    releases.get("c")!();
    await tick();
    assert.deepEqual(granted, ["a", "b", "c", "d"]);
    releases.get("d")!();
    assert.equal(transfers.held, 0);
    assert.equal(transfers.waiting, 0);
  });

  it("reads a spilled input as its bytes, leaves an ordinary one alone, and releases a failed read", async () => {
    const storage = createLocalStorage({ root: dir });
    const transfers = new InputTransfers(storage, 1024 * 1024);
    const input = { message: "é".repeat(200_000) };
    const stored = await spillInput(storage, "req-1", input, 1024);
    assert.ok(stored.spilledKey);
    const read = await transfers.read({ id: "req-1", input: stored.input });
    assert.ok(read && read.input instanceof UnparsedInput);
    assert.deepEqual(JSON.parse(read.input.bytes.toString("utf8")), input);
    assert.equal(transfers.held, read.input.bytes.length);
    read.release();
    assert.equal(transfers.held, 0);

    assert.equal(await transfers.read({ id: "req-2", input: { message: "small" } }), null);

    await storage.delete(stored.spilledKey);
    await assert.rejects(transfers.read({ id: "req-1", input: stored.input }), /no longer in storage/);
    assert.equal(transfers.held, 0, "a failed read gives its room back");
  });
});
