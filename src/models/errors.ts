/**
 * Errors of the model manager. Each carries a stable `code` so the CLI and tests can tell a
 * refusal (bad name, missing file, full disk) from a failed transfer without parsing messages.
 * @module
 */

export type ModelErrorCode =
  /** The name is empty, too long, or could escape the models folder. */
  | "ERR_MODEL_NAME_INVALID"
  | "ERR_MODEL_NOT_FOUND"
  /** The source is neither `org/name[@rev]`, an https URL (http on loopback) nor a folder. */
  | "ERR_MODEL_SOURCE_INVALID"
  /** The source lacks a file the layout requires (`model_index.json`, `unet/model.onnx`…). */
  | "ERR_MODEL_FILE_MISSING"
  /** Not enough free space for what is left to download. */
  | "ERR_MODEL_DISK_FULL"
  /** A file's sha256 (or git blob id) differs from what the source published. */
  | "ERR_MODEL_CHECKSUM"
  /** 401/403 from the source: a gated or private repository, or a wrong HF_TOKEN. */
  | "ERR_MODEL_AUTH"
  /** Another pull or removal is running on the same data folder. */
  | "ERR_MODEL_BUSY"
  /** The transfer failed after every retry, or the source answered an error. */
  | "ERR_MODEL_DOWNLOAD"
  /** The source's host could not be reached at all: its name does not resolve, or every attempt failed to connect. */
  | "ERR_MODEL_UNREACHABLE";

export class ModelError extends Error {
  override readonly name = "ModelError";
  constructor(
    readonly code: ModelErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isModelError(err: unknown, code?: ModelErrorCode): err is ModelError {
  return err instanceof ModelError && (code === undefined || err.code === code);
}
