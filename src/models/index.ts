/**
 * The model manager: `darkroom models pull|list|show|rm` and the files ONNX Runtime opens.
 * See docs/models.md.
 * @module
 */
export { ModelError, isModelError, type ModelErrorCode } from "./errors.js";
export { DIFFUSERS_ONNX_REQUIRED, missingFiles, type ModelLayout } from "./layout.js";
export { createModelManager, formatBytes, ModelManager, type ManifestFile, type ModelManagerOptions, type ModelManifest, type PullOptions, type RemoveResult } from "./manager.js";
export { defaultModelName, validateModelName, validateModelPath } from "./names.js";
export { ProgressTracker, type ProgressListener, type PullProgress } from "./progress.js";
export { DEFAULT_HF_ENDPOINT, parseSource, type ModelSource, type SourceFile, type SourceListing } from "./sources.js";
