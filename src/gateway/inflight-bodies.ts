/**
 * A budget for the JSON bodies one gateway holds at once. A large inline input (a `data:` URI) is
 * read whole, parsed, validated, stored and handed on while its request is answered, and costs the
 * gateway a multiple of its size in memory meanwhile: sixteen 30 MB inputs at once took one from
 * 0.4 to 1.45 GB. Each JSON request reserves its announced length (a chunked one, the body limit)
 * when it arrives and gives it back when it is answered; a request that does not fit is refused at
 * once with 503 and `Retry-After`, before a byte of its body is read. Small requests (under 64 KiB)
 * are never refused: the budget is for the large ones.
 * @module
 */
import { PlatformError } from "../core/errors.js";

export const ALWAYS_ADMITTED_BYTES = 64 * 1024;

export class InflightBodies {
  #held = 0;

  constructor(private readonly budget: number) {}

  get held(): number {
    return this.#held;
  }

  /** Reserves `bytes`; returns the release, or throws 503 when the budget is spent. */
  reserve(bytes: number): () => void {
    if (bytes > ALWAYS_ADMITTED_BYTES && this.#held + bytes > this.budget) {
      throw new PlatformError("ERR_GATEWAY_BUSY", {
        message: `The gateway is holding ${Math.round(this.#held / 1024 / 1024)} MiB of request bodies (limit ${Math.round(this.budget / 1024 / 1024)} MiB); retry shortly, or upload large inputs as files and send their URLs`,
        headers: { "retry-after": "2" },
      });
    }
    this.#held += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#held -= bytes;
    };
  }
}
