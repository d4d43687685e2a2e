/**
 * The contract between the tiler (`tiled-upscale.ts`) and whatever runs the model on one tile: in
 * this thread (`model-loader.ts`) or on a worker thread of the pool (`tile-worker-pool.ts`). Both
 * run the same code on the same window (`upscale-tile.ts`), so where a tile ran never shows in
 * the output.
 * @module
 */
import type { ModelSpec } from "./model-specs.js";

/** One tile's input: the window of RGB pixels the model reads, and the core of it that is kept. */
export interface TileWindow {
  /** 8-bit interleaved RGB, `width × height × 3` bytes. */
  pixels: Uint8Array;
  width: number;
  height: number;
  /** The core, in window pixels: the context around it is where "same" padding distorted the output. */
  coreX: number;
  coreY: number;
  coreWidth: number;
  coreHeight: number;
}

/** What tiled upscaling needs of a model: its geometry, and a way to upscale one tile. */
export interface TileUpscaler extends ModelSpec {
  /** Tiles it can work on at once: the tiler keeps this many in flight. */
  readonly parallelism: number;
  /**
   * The tile's core upscaled: `coreWidth × scale` by `coreHeight × scale` RGB bytes. `pixels` may
   * be handed to another thread (its buffer detached). Rejects with the signal's reason when
   * aborted before the result is in.
   */
  upscaleTile(tile: TileWindow, signal?: AbortSignal): Promise<Uint8Array>;
}
