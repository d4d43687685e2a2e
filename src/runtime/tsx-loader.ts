/**
 * The tsx loader that child processes (runners, the app probe) start with. Resolved here, from the
 * package's own folder, because Node resolves a bare `--import tsx` from the working directory, and
 * `darkroom serve` may be started from anywhere.
 * @module
 */
export const TSX_LOADER: string = import.meta.resolve("tsx");
