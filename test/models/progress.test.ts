/**
 * Pull progress: rate over a recent window, time left, throttling; and the line the CLI draws.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { progressLine } from "../../src/cli/models.js";
import { ProgressTracker, type PullProgress } from "../../src/models/index.js";

describe("pull progress", () => {
  it("reports bytes, a windowed rate and the time left, throttled between file boundaries", () => {
    let now = 0;
    const seen: PullProgress[] = [];
    const t = new ProgressTracker(10_000, 2, (p) => seen.push(p), () => now, 100);
    t.startFile("unet/model.onnx");
    assert.deepEqual(seen[0], { file: "unet/model.onnx", fileIndex: 1, fileCount: 2, bytesDone: 0, bytesTotal: 10_000, rate: 0, etaSeconds: null });
    // 1000 bytes per second for 4 s.
    for (let s = 1; s <= 4; s++) {
      now = s * 1000;
      t.add(1000);
    }
    const last = seen.at(-1)!;
    assert.equal(last.bytesDone, 4000);
    assert.equal(last.rate, 1000);
    assert.equal(last.etaSeconds, 6);
    // Within 100 ms of the last report: counted, not reported.
    now += 50;
    t.add(10);
    assert.equal(seen.at(-1)!.bytesDone, 4000);
    t.endFile();
    assert.equal(seen.at(-1)!.bytesDone, 4010);
    // Samples older than the 5 s window stop counting: a stall shows as a falling rate.
    now = 20_000;
    t.add(0);
    now = 21_000;
    t.add(1000);
    assert.equal(t.snapshot().rate, 1000);
  });

  it("draws a bar with size, rate, time left and the current file", () => {
    const line = progressLine({ file: "unet/model.onnx", fileIndex: 3, fileCount: 7, bytesDone: 512 * 1024 * 1024, bytesTotal: 2 * 1024 ** 3, rate: 50 * 1024 * 1024, etaSeconds: 30.7 }, 120);
    assert.equal(line, "[#####---------------]  25%  512.0 MiB/2.00 GiB  50.0 MiB/s  0:31 left  unet/model.onnx (3/7)");
    // Unknown size: no bar, no time left.
    assert.equal(progressLine({ file: "w.bin", fileIndex: 1, fileCount: 1, bytesDone: 2048, bytesTotal: null, rate: 0, etaSeconds: null }), "2.00 KiB  0 B/s  --:-- left  w.bin (1/1)");
    assert.ok(progressLine({ file: "x".repeat(200), fileIndex: 1, fileCount: 1, bytesDone: 1, bytesTotal: 2, rate: 1, etaSeconds: 1 }, 80).length <= 79);
  });
});
