/**
 * Upscaling a stream of video frames with ESRGAN, several at once when the model runs on worker
 * threads: frames are independent for this model (it carries no state from one to the next), so
 * while one frame's last tiles finish, the next frame's first tiles keep the other threads busy.
 * Results come out in frame order, and each frame is upscaled exactly as it would be alone.
 * @module
 */
import type { TileUpscaler } from "./tile-upscaler.js";
import { upscaleRaw } from "./tiled-upscale.js";

/**
 * Frames in flight: one per model thread plus one, so that a thread that finishes while the caller
 * writes a frame out finds the next one waiting; one for a model on the calling thread, where a
 * second would only wait. Bounds memory to that many input and output frames.
 */
export function framesInFlight(model: TileUpscaler): number {
  return model.parallelism > 1 ? model.parallelism + 1 : 1;
}

/**
 * Upscales each RGB frame of `frames` (all `width × height`) and yields the results in order. Stopping
 * early (the caller's break or throw, a failed frame, the signal) drops the tiles still queued.
 */
export async function* upscaleFrames(
  model: TileUpscaler,
  frames: AsyncIterable<Uint8Array>,
  size: { width: number; height: number },
  options: { signal?: AbortSignal } = {},
): AsyncGenerator<Uint8Array> {
  const { signal } = options;
  const stop = new AbortController();
  const forwardAbort = (): void => stop.abort(signal?.reason);
  signal?.addEventListener("abort", forwardAbort, { once: true });
  const depth = framesInFlight(model);
  const inFlight: Promise<Uint8Array>[] = [];
  try {
    for await (const frame of frames) {
      const upscaled = upscaleRaw(model, { data: frame, ...size, channels: 3 }, { signal: stop.signal }).then((r) => r.data);
      // Awaited in order below; a frame that fails while an earlier one is awaited is not unhandled.
      upscaled.catch(() => {});
      inFlight.push(upscaled);
      if (inFlight.length >= depth) yield await inFlight.shift()!;
    }
    while (inFlight.length > 0) yield await inFlight.shift()!;
  } finally {
    if (inFlight.length > 0) stop.abort(new Error("frame upscaling stopped early"));
    signal?.removeEventListener("abort", forwardAbort);
  }
}
