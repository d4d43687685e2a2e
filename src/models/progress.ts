/**
 * Transfer progress for a whole pull: bytes over all files, a rate over the last few seconds (a
 * whole-pull average hides stalls) and the time left at that rate.
 * @module
 */

export interface PullProgress {
  /** The file being transferred (`unet/model.onnx`), or null between files. */
  file: string | null;
  /** 1-based index of that file among those that need a transfer, and their count. */
  fileIndex: number;
  fileCount: number;
  bytesDone: number;
  /** Null while a size is unknown (a plain URL without Content-Length). */
  bytesTotal: number | null;
  /** Bytes per second over the recent window. */
  rate: number;
  /** Seconds left at that rate; null when unknown. */
  etaSeconds: number | null;
}

export type ProgressListener = (progress: PullProgress) => void;

const WINDOW_MS = 5_000;

export class ProgressTracker {
  #samples: { at: number; bytes: number }[] = [];
  #done = 0;
  #file: string | null = null;
  #fileIndex = 0;
  #lastEmit = 0;

  constructor(
    private readonly total: number | null,
    private readonly fileCount: number,
    private readonly listener: ProgressListener | undefined,
    private readonly now: () => number = Date.now,
    /** Reports are throttled to this interval, except the first and the last of each file. */
    private readonly intervalMs = 100,
  ) {}

  startFile(file: string): void {
    this.#file = file;
    this.#fileIndex += 1;
    this.#emit(true);
  }

  add(bytes: number): void {
    this.#done += bytes;
    const at = this.now();
    this.#samples.push({ at, bytes: this.#done });
    while (this.#samples.length > 2 && (this.#samples[0]?.at ?? at) < at - WINDOW_MS) this.#samples.shift();
    this.#emit(false);
  }

  endFile(): void {
    this.#emit(true);
  }

  snapshot(): PullProgress {
    const first = this.#samples[0];
    const last = this.#samples[this.#samples.length - 1];
    const span = first && last ? (last.at - first.at) / 1000 : 0;
    const rate = first && last && span > 0 ? (last.bytes - first.bytes) / span : 0;
    const left = this.total === null ? null : Math.max(this.total - this.#done, 0);
    return {
      file: this.#file,
      fileIndex: this.#fileIndex,
      fileCount: this.fileCount,
      bytesDone: this.#done,
      bytesTotal: this.total,
      rate,
      etaSeconds: left === null || rate <= 0 ? null : left / rate,
    };
  }

  #emit(force: boolean): void {
    if (!this.listener) return;
    const at = this.now();
    if (!force && at - this.#lastEmit < this.intervalMs) return;
    this.#lastEmit = at;
    this.listener(this.snapshot());
  }
}
