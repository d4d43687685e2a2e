/**
 * ESRGAN on several threads (issue #16, goal 3), with the real models on real photos: the worker
 * pool must give exactly the bytes one thread gives, tile seams included, for images and for video
 * frames; report progress once per tile; stop on a cancel without reporting tiles after it and
 * leave the pool usable; fail a request rather than hang it when a worker dies; and keep no more
 * tiles (or frames) in flight than the model has threads.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { type ModelCache, preloadModelCache } from "../../src/media/upscale/model-cache.js";
import { modelSpec } from "../../src/media/upscale/model-specs.js";
import { DEFAULT_MAX_MODEL_THREADS, modelThreads } from "../../src/media/upscale/model-threads.js";
import { upscaleRaw, type RawImage } from "../../src/media/upscale/tiled-upscale.js";
import type { TileUpscaler, TileWindow } from "../../src/media/upscale/tile-upscaler.js";
import { acquireSharedTilePool, TileWorkerPool } from "../../src/media/upscale/tile-worker-pool.js";
import { framesInFlight, upscaleFrames } from "../../src/media/upscale/upscale-frames.js";
import { decodeFrames } from "../../src/media/video/frame-pipe.js";

const FIXTURES = fileURLToPath(new URL("../fixtures/media/", import.meta.url));
const CHELSEA = path.join(FIXTURES, "chelsea.png");
const ASTRONAUT = path.join(FIXTURES, "astronaut.png");
const CLIP = path.join(FIXTURES, "clip-320x240-2s.mp4");
const FAILING_WORKER = new URL("../fixtures/workers/failing-tile-worker.ts", import.meta.url);

async function crop(file: string, left: number, top: number, width: number, height: number, alpha = false): Promise<RawImage> {
  let image = sharp(file).extract({ left, top, width, height });
  image = alpha ? image.ensureAlpha() : image.removeAlpha();
  const { data, info } = await image.raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, channels: info.channels as 3 | 4 };
}

/** Same bytes, with the first difference named when not. */
function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const at = actual.findIndex((v, i) => v !== expected[i]);
  assert.equal(at, -1, `${what}: first difference at byte ${at}`);
}

let one: ModelCache;
let two: ModelCache;
let three: ModelCache;

before(async () => {
  [one, two, three] = await Promise.all([
    preloadModelCache(() => {}, { threads: 1 }),
    preloadModelCache(() => {}, { threads: 2 }),
    preloadModelCache(() => {}, { threads: 3 }),
  ]);
});
after(async () => {
  await Promise.all([one, two, three].map((m) => m.dispose()));
});

describe("several threads give the bytes of one", () => {
  const cases = [
    { what: "slim ×2, 12 tiles of a cat photo", file: CHELSEA, box: [150, 60, 128, 96] as const, size: "slim", scale: 2, tileSize: 40, alpha: false },
    { what: "slim ×4 with alpha, 6 tiles", file: ASTRONAUT, box: [192, 64, 64, 48] as const, size: "slim", scale: 4, tileSize: 24, alpha: true },
    // Not preloaded: each worker loads it on its first tile.
    { what: "medium ×2, 4 tiles", file: ASTRONAUT, box: [180, 60, 64, 48] as const, size: "medium", scale: 2, tileSize: 32, alpha: false },
  ] as const;
  for (const c of cases) {
    test(c.what, async () => {
      const [left, top, width, height] = c.box;
      const image = await crop(c.file, left, top, width, height, c.alpha);
      const results: Uint8Array[] = [];
      for (const cache of [one, two, three]) {
        const model = await cache.get(c.size, c.scale);
        let tiles = 0;
        const out = await upscaleRaw(model, image, { tileSize: c.tileSize, onTile: () => void tiles++ });
        assert.ok(tiles > 1, "the image is cut into several tiles");
        assert.equal(out.channels, c.alpha ? 4 : 3);
        results.push(out.data);
      }
      assert.equal(two.threads, 2);
      assertSameBytes(results[1]!, results[0]!, "2 threads against 1");
      assertSameBytes(results[2]!, results[0]!, "3 threads against 1");
    });
  }

  test("two requests at once on the shared pool each come out as alone on one thread", async () => {
    const a = await crop(CHELSEA, 100, 40, 96, 72);
    const b = await crop(ASTRONAUT, 200, 80, 72, 96);
    const [slim1, slim2] = [await one.get("slim", 2), await two.get("slim", 2)];
    const [aAlone, bAlone] = [await upscaleRaw(slim1, a, { tileSize: 32 }), await upscaleRaw(slim1, b, { tileSize: 32 })];
    const [aShared, bShared] = await Promise.all([upscaleRaw(slim2, a, { tileSize: 32 }), upscaleRaw(slim2, b, { tileSize: 32 })]);
    assertSameBytes(aShared.data, aAlone.data, "first request");
    assertSameBytes(bShared.data, bAlone.data, "second request");
  });
});

describe("progress and cancellation on worker threads", () => {
  test("one progress report per tile, counting up to the total", async () => {
    const image = await crop(CHELSEA, 150, 60, 96, 80);
    const reports: [number, number][] = [];
    await upscaleRaw(await two.get("slim", 2), image, { tileSize: 32, onTile: (done, total) => reports.push([done, total]) });
    assert.deepEqual(reports, Array.from({ length: 9 }, (_, i) => [i + 1, 9]));
  });

  test("a cancel mid-way rejects with its reason, reports no tile after it, and leaves the pool usable", async () => {
    const image = await crop(CHELSEA, 150, 60, 96, 80);
    const model = await two.get("slim", 2);
    const controller = new AbortController();
    const reason = new Error("cancelled by test");
    const done: number[] = [];
    await assert.rejects(
      upscaleRaw(model, image, {
        tileSize: 32,
        signal: controller.signal,
        onTile: (i) => {
          done.push(i);
          if (i === 2) controller.abort(reason);
        },
      }),
      (err) => err === reason,
    );
    // The tiles the workers still held finish after the rejection; they must not report.
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.deepEqual(done, [1, 2]);

    let started = 0;
    await assert.rejects(
      upscaleRaw(model, image, { tileSize: 32, signal: AbortSignal.abort(reason), onTile: () => void started++ }),
      (err) => err === reason,
    );
    assert.equal(started, 0);

    const again = await upscaleRaw(model, image, { tileSize: 32 });
    assertSameBytes(again.data, (await upscaleRaw(await one.get("slim", 2), image, { tileSize: 32 })).data, "after the cancel");
  });
});

describe("video frames on worker threads", () => {
  for (const [width, height] of [
    [96, 72],
    [160, 120],
  ] as const) {
    const tiles = Math.ceil(width / 128) * Math.ceil(height / 128);
    test(`${width}×${height} frames (${tiles} tile${tiles > 1 ? "s" : ""} a frame) come out in order, as on one thread`, async () => {
      const decode = (): AsyncGenerator<Buffer> => decodeFrames(CLIP, { width, height }, { filter: `scale=${width}:${height}:flags=area,trim=end_frame=6` });
      const outputs: Uint8Array[][] = [];
      for (const cache of [one, two]) {
        const frames: Uint8Array[] = [];
        for await (const frame of upscaleFrames(await cache.get("slim", 2), decode(), { width, height })) frames.push(frame);
        outputs.push(frames);
      }
      assert.equal(outputs[0]!.length, 6);
      assert.equal(outputs[1]!.length, 6);
      // Frames of a moving pattern differ from each other, so a reordering would show.
      assert.notDeepEqual(outputs[0]![0], outputs[0]![5]);
      for (let i = 0; i < 6; i++) assertSameBytes(outputs[1]![i]!, outputs[0]![i]!, `frame ${i}`);
    });
  }
});

/** A model stand-in: each output pixel is its input pixel (nearest neighbour ×2), after a random delay. */
function fakeUpscaler(parallelism: number): TileUpscaler & { maxInFlight: number } {
  let inFlight = 0;
  const fake = {
    ...modelSpec("slim", 2),
    parallelism,
    maxInFlight: 0,
    async upscaleTile(tile: TileWindow): Promise<Uint8Array> {
      inFlight += 1;
      fake.maxInFlight = Math.max(fake.maxInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 8));
      inFlight -= 1;
      const w = tile.coreWidth * 2;
      const core = new Uint8Array(w * tile.coreHeight * 2 * 3);
      for (let y = 0; y < tile.coreHeight * 2; y++) {
        for (let x = 0; x < w; x++) {
          const src = ((tile.coreY + (y >> 1)) * tile.width + tile.coreX + (x >> 1)) * 3;
          core.set(tile.pixels.subarray(src, src + 3), (y * w + x) * 3);
        }
      }
      return core;
    },
  };
  return fake;
}

describe("bounds", () => {
  test("the tiler keeps at most `parallelism` tiles in flight, and tiles that finish out of order land in place", async () => {
    const image = await crop(ASTRONAUT, 100, 100, 90, 70);
    const serial = fakeUpscaler(1);
    const parallel = fakeUpscaler(3);
    const a = await upscaleRaw(serial, image, { tileSize: 16, overlap: 3 });
    const b = await upscaleRaw(parallel, image, { tileSize: 16, overlap: 3 });
    assert.equal(serial.maxInFlight, 1);
    assert.equal(parallel.maxInFlight, 3);
    assertSameBytes(b.data, a.data, "order of completion");
    const nearest = await sharp(image.data, { raw: { width: 90, height: 70, channels: 3 } }).resize(180, 140, { kernel: "nearest" }).raw().toBuffer();
    assertSameBytes(a.data, nearest, "the fake is nearest-neighbour");
  });

  test("video frames in flight stay at one per thread plus one", async () => {
    const model = fakeUpscaler(2);
    let decoded = 0;
    let written = 0;
    let maxAhead = 0;
    async function* frames(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 12; i++) {
        decoded += 1;
        maxAhead = Math.max(maxAhead, decoded - written);
        yield new Uint8Array(20 * 10 * 3).fill(i);
      }
    }
    for await (const frame of upscaleFrames(model, frames(), { width: 20, height: 10 })) {
      assert.equal(frame[0], written, "in order");
      written += 1;
    }
    assert.equal(written, 12);
    assert.equal(framesInFlight(model), 3);
    assert.ok(maxAhead <= 3, `at most 3 frames decoded ahead of the writer, saw ${maxAhead}`);
  });
});

describe("a worker that dies", () => {
  const tile = (first: number): TileWindow => {
    const pixels = new Uint8Array(8 * 8 * 3).fill(9);
    pixels[0] = first;
    return { pixels, width: 8, height: 8, coreX: 2, coreY: 2, coreWidth: 4, coreHeight: 4 };
  };
  const slim2 = { size: "slim", scale: 2 } as const;

  test("fails the tile it held, and the next tile gets a new worker", async () => {
    const pool = new TileWorkerPool({ threads: 2, workerModule: FAILING_WORKER });
    try {
      assert.equal(await pool.start(), "fake");
      await assert.rejects(pool.run(slim2, tile(1)), /worker thread stopped \(exit code 7\)/);
      await assert.rejects(pool.run(slim2, tile(2)), /worker thread stopped \(exit code 1\): boom in the worker/);
      await assert.rejects(pool.run(slim2, tile(3)), /upscaling a tile failed: the model refused/);
      const core = await pool.run(slim2, tile(0));
      assert.equal(core.length, 8 * 8 * 3);
    } finally {
      await pool.close();
    }
    await assert.rejects(pool.run(slim2, tile(0)), /closed/);
  });

  test("fails the whole request promptly, with no tile reported after the failure", async () => {
    const pool = new TileWorkerPool({ threads: 2, workerModule: FAILING_WORKER });
    try {
      const image: RawImage = { data: new Uint8Array(64 * 64 * 3).fill(9), width: 64, height: 64 };
      // The third tile's window starts at (0, 32 − context): its first byte makes the worker exit.
      image.data[(22 * 64 + 0) * 3] = 1;
      const reports: number[] = [];
      const started = performance.now();
      await assert.rejects(
        upscaleRaw(pool.upscaler(modelSpec("slim", 2)), image, { tileSize: 32, onTile: (done) => reports.push(done) }),
        /exit code 7/,
      );
      assert.ok(performance.now() - started < 10_000, "no hang");
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(reports.length < 4, `tiles reported: ${reports.join(", ")}`);
    } finally {
      await pool.close();
    }
  });

  test("a pool whose workers cannot start fails start()", async () => {
    const broken = new TileWorkerPool({ threads: 1, workerModule: new URL("../fixtures/workers/no-such-worker.ts", import.meta.url) });
    await assert.rejects(broken.start(), /worker thread stopped/);
    await broken.close();
  });
});

describe("configuration", () => {
  test("DARKROOM_MODEL_THREADS, else the cores up to a ceiling", () => {
    assert.equal(modelThreads({}, 2), 2);
    assert.equal(modelThreads({}, 1), 1);
    assert.equal(modelThreads({}, 96), DEFAULT_MAX_MODEL_THREADS);
    assert.equal(modelThreads({ DARKROOM_MODEL_THREADS: " 1 " }, 2), 1);
    assert.equal(modelThreads({ DARKROOM_MODEL_THREADS: "12" }, 2), 12);
    assert.equal(modelThreads({ DARKROOM_MODEL_THREADS: "" }, 4), 4);
    for (const bad of ["0", "-1", "1.5", "two", "65"]) {
      assert.throws(() => modelThreads({ DARKROOM_MODEL_THREADS: bad }, 2), /DARKROOM_MODEL_THREADS must be a whole number from 1 to 64/);
    }
  });

  test("one pool per process and thread count, kept while anyone holds it", async () => {
    const a = acquireSharedTilePool(2, [], () => {});
    const b = acquireSharedTilePool(2, [], () => {});
    assert.equal(a.pool, b.pool);
    await a.release();
    await b.release();
    // `two` still holds it: it keeps working.
    const out = await upscaleRaw(await two.get("slim", 2), await crop(CHELSEA, 0, 0, 24, 24));
    assert.equal(out.width, 48);
  });
});
