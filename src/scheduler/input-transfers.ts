/**
 * Spilled inputs on their way to local runners. Each one is read back from storage and serialized
 * into its runner's IPC pipe, where it waits until the runner has read it: a 30 MB input costs the
 * gateway about three times its size until then. Dispatched all at once (sixteen large requests
 * claimed in one go by a multiplexing app), that was most of the gateway's peak memory. So at most
 * `maxBytes` of them are in transfer at once, in dispatch order; one input larger than that goes
 * alone. A transfer ends when its message was written to the runner (or could not be).
 * @module
 */
import type { UnparsedInput } from "../core/unparsed-input.js";
import { inputOfRetrying, spilledInputRef } from "../storage/spilled-inputs.js";
import type { StorageDriver } from "../storage/storage.js";

/** Enough for two inputs at the body limit in flight to runners at once. */
export const DEFAULT_INPUT_TRANSFER_BYTES = 64 * 1024 * 1024;

export class InputTransfers {
  #held = 0;
  readonly #waiting: { bytes: number; grant: (release: () => void) => void }[] = [];

  constructor(
    private readonly storage: StorageDriver | undefined,
    private readonly maxBytes = DEFAULT_INPUT_TRANSFER_BYTES,
  ) {}

  /** Bytes in transfer now. */
  get held(): number {
    return this.#held;
  }

  /** Transfers waiting for room. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Resolves with the release of `bytes` of room once they fit. */
  reserve(bytes: number): Promise<() => void> {
    return new Promise((grant) => {
      this.#waiting.push({ bytes, grant });
      this.#admit();
    });
  }

  #admit(): void {
    for (let next = this.#waiting[0]; next; next = this.#waiting[0]) {
      if (this.#held > 0 && this.#held + next.bytes > this.maxBytes) return;
      this.#waiting.shift();
      this.#held += next.bytes;
      let released = false;
      const { bytes } = next;
      next.grant(() => {
        if (released) return;
        released = true;
        this.#held -= bytes;
        this.#admit();
      });
    }
  }

  /**
   * Reads the spilled input of `record` as its JSON bytes, once it has room; null when the record's
   * input is not spilled. Resolves with the input and the release to call once the run was written
   * to its runner; a failed read releases by itself and throws what inputOf throws.
   */
  async read(record: { id: string; input: unknown }): Promise<{ input: UnparsedInput; release: () => void } | null> {
    const ref = spilledInputRef(record.id, record.input);
    if (!ref) return null;
    const release = await this.reserve(ref.bytes);
    try {
      return { input: (await inputOfRetrying(this.storage, record, "bytes")) as UnparsedInput, release };
    } catch (err) {
      release();
      throw err;
    }
  }
}
