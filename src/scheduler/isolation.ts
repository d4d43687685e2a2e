/**
 * Isolation of suspect requests: the decisions, apart from processes and the store so that they can
 * be tested alone.
 *
 * When a runner dies and nothing explains which of its requests killed it, any of them may be a
 * poisonous input that takes down every runner it runs on. Those requests become suspects and are
 * retried apart from all other work: a group of suspects runs on a runner of its own, which takes
 * nothing else while any of them runs. Only the suspects are held back; the app's other runners keep
 * multiplexing everything else.
 *
 * The requests of a dead runner are retried in two halves at once (bisection), so that a runner
 * killed from outside (kill -9, the OOM killer) with many requests costs about one run time rather
 * than one run per request, and a group that dies again is halved again, down to single requests.
 * A request on its last attempt always runs alone: a crash caused by a neighbour must never use up
 * an innocent request's last attempt. A request that keeps killing its runner alone ends with its
 * error once its attempts are used up, as any request does.
 * @module
 */

/** A suspect on its way back to the queue, with the attempts it has left (this one included). */
export interface SuspectRun {
  id: string;
  attemptsLeft: number;
}

/**
 * The groups the requests of a dead runner are retried in, in the order given: those on their last
 * attempt alone, the others in two halves (one group when there is only one).
 */
export function splitSuspects(runs: readonly SuspectRun[]): string[][] {
  const shared = runs.filter((r) => r.attemptsLeft > 1);
  const half = Math.ceil(shared.length / 2);
  const groupOf = new Map<string, string[]>();
  const first = shared.slice(0, half).map((r) => r.id);
  const second = shared.slice(half).map((r) => r.id);
  for (const id of first) groupOf.set(id, first);
  for (const id of second) groupOf.set(id, second);
  // Ordered by each group's first request.
  const groups: string[][] = [];
  for (const r of runs) {
    const group = groupOf.get(r.id);
    if (!group) groups.push([r.id]);
    else if (group[0] === r.id) groups.push(group);
  }
  return groups;
}

/** The suspects of one app, by group. */
export class Suspects {
  /** Request id → its group (members of a group are claimed together, by one runner). */
  readonly #groups = new Map<string, number>();
  /** Suspects on their way back to the queue: no claim may take them until they are placed in a group. */
  readonly #held = new Set<string>();
  #nextGroup = 1;

  get size(): number {
    return this.#groups.size + this.#held.size;
  }

  has(id: string): boolean {
    return this.#groups.has(id) || this.#held.has(id);
  }

  /** Every suspect: waiting, held or running. */
  ids(): string[] {
    return [...this.#held, ...this.#groups.keys()];
  }

  /** Marks a request as a suspect before it goes back to the queue, so that no claim pairs it with other work in between. */
  hold(id: string): void {
    this.#groups.delete(id);
    this.#held.add(id);
  }

  /** Puts held requests back into the running for claims, each list a group (see `splitSuspects`). */
  place(groups: readonly (readonly string[])[]): void {
    for (const group of groups) {
      if (group.length === 0) continue;
      const n = this.#nextGroup++;
      for (const id of group) {
        this.#held.delete(id);
        this.#groups.set(id, n);
      }
    }
  }

  /** The request is no longer a suspect (it ended, or it is out of this scheduler's hands). */
  delete(id: string): boolean {
    const held = this.#held.delete(id);
    return this.#groups.delete(id) || held;
  }

  /** Groups waiting for a runner: placed suspects that are not `running`, oldest group first, in claim-list order. */
  waiting(running: (id: string) => boolean): string[][] {
    const byGroup = new Map<number, string[]>();
    for (const [id, group] of this.#groups) {
      if (running(id)) continue;
      const members = byGroup.get(group);
      if (members) members.push(id);
      else byGroup.set(group, [id]);
    }
    return [...byGroup.entries()].sort((a, b) => a[0] - b[0]).map(([, members]) => members);
  }
}

/** One runner as the claim plan sees it. */
export interface RunnerView {
  id: string;
  state: "starting" | "ready" | "draining" | "stopped";
  /** Ids of what it runs, durable requests and realtime calls (a runner's assignments map will do). */
  inFlight: { readonly size: number; keys(): IterableIterator<string> };
}

export interface ClaimPlan {
  /** A waiting group for each idle ready runner, oldest group first: the runner claims only those requests. */
  groups: { runnerId: string; ids: string[] }[];
  /** Free slots for other work, by runner; a runner left out takes no other work now. */
  slots: { runnerId: string; slots: number }[];
  /** Suspects no claim for other work may take (all of them but those running). */
  except: string[];
  /** Runners that hold suspects (each takes nothing else until they end). */
  isolating: number;
  /** Groups waiting for a runner, those given one in `groups` included. */
  waitingGroups: number;
  /**
   * True when groups wait and no runner will come free for them by itself: none is idle, none holds
   * suspects (it would take the next group when done), none is starting. The pool starts another
   * runner if it may; otherwise `reserved` is held back.
   */
  stranded: boolean;
  /**
   * A runner held back from new work until it is empty, so that a stranded group gets one, when the
   * pool cannot start another runner. Null when none is.
   */
  reserved: string | null;
}

/**
 * Decides what each runner of an app may claim now. Without suspects every ready runner takes up to
 * `maxMultiplexing` requests. With suspects: a runner that runs suspects takes nothing else; an idle
 * runner takes the oldest waiting group (and nothing else); every other ready runner multiplexes as
 * usual but skips the suspects.
 */
export function planClaims(input: { runners: readonly RunnerView[]; maxMultiplexing: number; suspects: Suspects; canSpawn: boolean }): ClaimPlan {
  const { runners, maxMultiplexing, suspects, canSpawn } = input;
  const free = (r: RunnerView): number => Math.max(0, maxMultiplexing - r.inFlight.size);
  if (suspects.size === 0) {
    const slots = runners.filter((r) => r.state === "ready" && free(r) > 0).map((r) => ({ runnerId: r.id, slots: free(r) }));
    return { groups: [], slots, except: [], isolating: 0, waitingGroups: 0, stranded: false, reserved: null };
  }
  const running = new Set<string>();
  const isolatingRunners = new Set<string>();
  for (const r of runners) {
    for (const id of r.inFlight.keys()) {
      if (!suspects.has(id)) continue;
      running.add(id);
      isolatingRunners.add(r.id);
    }
  }
  const waiting = suspects.waiting((id) => running.has(id));
  const except = suspects.ids().filter((id) => !running.has(id));

  const groups: ClaimPlan["groups"] = [];
  const taken = new Set<string>();
  for (const r of runners) {
    const group = waiting[groups.length];
    if (!group) break;
    if (r.state !== "ready" || r.inFlight.size > 0) continue;
    groups.push({ runnerId: r.id, ids: group });
    taken.add(r.id);
  }

  let reserved: string | null = null;
  const stranded = waiting.length > 0 && groups.length === 0 && isolatingRunners.size === 0 && !runners.some((r) => r.state === "starting");
  if (stranded && !canSpawn) {
    // The one that empties soonest, most likely: the least loaded.
    let best: RunnerView | undefined;
    for (const r of runners) if (r.state === "ready" && (!best || r.inFlight.size < best.inFlight.size)) best = r;
    reserved = best?.id ?? null;
  }

  const slots: ClaimPlan["slots"] = [];
  for (const r of runners) {
    if (r.state !== "ready" || isolatingRunners.has(r.id) || taken.has(r.id) || r.id === reserved || free(r) === 0) continue;
    slots.push({ runnerId: r.id, slots: free(r) });
  }
  return { groups, slots, except, isolating: isolatingRunners.size, waitingGroups: waiting.length, stranded, reserved };
}
