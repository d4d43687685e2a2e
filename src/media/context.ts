/**
 * The parts of an app's handler context that the media helpers use. The media layer sits below the
 * runtime (docs/architecture.md, "Layers"), so it names these shapes rather than importing
 * `HandlerContext` from `src/runtime/sdk.ts`; an app passes its own `ctx`, which has them all.
 * @module
 */

/** `ctx.throwIfCancelled()`. */
export interface Cancellable {
  throwIfCancelled(): void;
}

/** `ctx.files.read`: an input file given by URL, under a size limit. */
export interface InputFiles {
  files: { read(url: string, options?: { maxBytes?: number }): Promise<{ data: Buffer }> };
}

/** What `ctx.files.put` returns that the media helpers copy into their records. */
export interface StoredFile {
  url: string;
  file_name: string;
  file_size: number;
}

/** `ctx.signal` and `ctx.files.put`: storing an output file of the request. */
export interface OutputFiles {
  signal: AbortSignal;
  files: {
    put(body: Buffer, options: { contentType: string; fileName?: string; width?: number; height?: number }): Promise<StoredFile>;
  };
}
