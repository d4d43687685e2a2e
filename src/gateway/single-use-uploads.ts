/**
 * Signed upload URLs write their file once. A URL lives an hour and can leak (logs, browser history,
 * a shared snippet); were it replayable, whoever held it could replace the file, and its type, after
 * the owner had used it. Each URL targets a fresh random key, so "already used" is "the object
 * exists, or an upload to it is running on this gateway". An interrupted upload stores nothing
 * (storage commits atomically), so it may be retried.
 * @module
 */
import { PlatformError } from "../core/errors.js";
import type { StorageDriver } from "../storage/storage.js";

export class SingleUseUploads {
  readonly #running = new Set<string>();

  constructor(private readonly storage: Pick<StorageDriver, "head">) {}

  /** Refuses a key already written or being written; else holds it until `release` is called. */
  async claim(key: string): Promise<() => void> {
    if (this.#running.has(key)) throw used();
    this.#running.add(key);
    try {
      if (await this.storage.head(key)) throw used();
    } catch (error) {
      this.#running.delete(key);
      throw error;
    }
    return () => this.#running.delete(key);
  }

  /** For a step before the write (a multipart part): refuses when the file already exists. */
  async assertUnused(key: string): Promise<void> {
    if (await this.storage.head(key)) throw used();
  }
}

function used(): PlatformError {
  return new PlatformError("ERR_UPLOAD_URL_USED");
}
