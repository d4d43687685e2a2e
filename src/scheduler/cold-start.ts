/**
 * A runner's cold start split into its phases, so that an operator sees where the time goes
 * (`/v1/ops`, `/metrics`, the Playground's Ops page): the runner reports what it saw (when its
 * process began, when the runtime had loaded, the app's import and setup), the scheduler adds what
 * only it sees (when it forked the process or took a spare, when the runner said ready, how long the
 * first request took).
 * @module
 */
import type { StartPhases } from "../runtime/protocol.js";

export interface ColdStart {
  runner: string;
  /** Whether a spare runner was taken (its spawn and runtime were paid before it was needed). */
  spare: boolean;
  /** When the start for the app began: the fork, or the moment the spare was taken (unix ms). */
  began_at: number;
  /** Fork to the process's own start. Null for a spare. */
  spawn_ms: number | null;
  /**
   * Node, the loader and the runner's modules. For a spare, what was left of that when it was taken
   * (about 0 for one that was ready).
   */
  runtime_ms: number | null;
  /** Importing the app's module graph. Null when the runner did not report it. */
  import_ms: number | null;
  setup_ms: number;
  /** From the start's beginning to the runner's `ready`, as the scheduler saw it: every phase above and the messages between. */
  ready_ms: number;
  /** The runner's first request, from its dispatch to its outcome; null until it ended. */
  first_request_ms: number | null;
}

/** The phases as `/metrics` labels them, with their value in a cold start (null: not observed). */
export const COLD_START_PHASES = ["spawn", "runtime", "import", "setup", "first_request"] as const;
export type ColdStartPhase = (typeof COLD_START_PHASES)[number];

const rounded = (ms: number): number => Math.max(0, Math.round(ms * 10) / 10);

/** The cold start of a runner that said ready at `readyAt`, from what it reported. */
export function coldStartOf(
  runner: { id: string; startedAsSpare: boolean; processSpawnedAt: number; spawnedAt: number },
  ready: { setupMs: number; phases?: StartPhases },
  readyAt: number,
): ColdStart {
  const phases = ready.phases;
  const fresh = !runner.startedAsSpare;
  return {
    runner: runner.id,
    spare: runner.startedAsSpare,
    began_at: runner.spawnedAt,
    spawn_ms: fresh && phases ? rounded(phases.processStartedAt - runner.processSpawnedAt) : null,
    runtime_ms: phases ? rounded(fresh ? phases.runtimeLoadedAt - phases.processStartedAt : phases.runtimeLoadedAt - runner.spawnedAt) : null,
    import_ms: phases ? rounded(phases.importMs) : null,
    setup_ms: ready.setupMs,
    ready_ms: rounded(readyAt - runner.spawnedAt),
    first_request_ms: null,
  };
}

/** A phase's value in `start`, null when it was not observed. */
export function phaseMs(start: ColdStart, phase: ColdStartPhase): number | null {
  switch (phase) {
    case "spawn":
      return start.spawn_ms;
    case "runtime":
      return start.runtime_ms;
    case "import":
      return start.import_ms;
    case "setup":
      return start.setup_ms;
    case "first_request":
      return start.first_request_ms;
  }
}
