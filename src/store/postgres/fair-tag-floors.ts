/**
 * Start tags for one tenant's concurrent submits from this process (docs/fair-share.md). The submit's
 * own statement computes a tag from the database, `GREATEST(clock, the tenant's latest live tag +
 * stride, floor)`, so a submit costs no statement of its own for it and holds no row of the tenant
 * until it commits. What the statement cannot see is another submit of the same tenant still in
 * flight: both would read the same latest tag and tie, and a flood of concurrent submits would all
 * start at one virtual time, ahead of a quiet tenant. So submits of one tenant that overlap in this
 * process carry a floor: the first one of a burst goes alone (the others wait for its tag, one
 * statement's time), and each later one gets the previous tag plus one stride, handed out in order.
 * Once none is in flight, the flow is forgotten and the database is the only memory again, which is
 * what keeps cancellations and idle periods from leaving debt behind.
 *
 * Submits racing on different gateways can still tie; a tie is two requests at one virtual time,
 * ordered by submission time, so the race costs at most one stride of share.
 * @module
 */

interface Flow {
  /** The floor of the next submit; null until the first submit of this burst has its tag. */
  next: number | null;
  /** Submits of this flow started and not yet settled, including any waiting for the first. */
  inFlight: number;
  /** Settles when the submit that went first has its tag (or failed). */
  first: Promise<void> | null;
}

export class FairTagFloors {
  readonly #flows = new Map<string, Flow>();

  /**
   * Runs `submit` with the floor its tag must reach (null: none) and records the tag it got.
   * `submit` returns the tag the database wrote.
   */
  async run<T>(flowKey: string, stride: number, submit: (floor: number | null) => Promise<{ tag: number; value: T }>): Promise<T> {
    let flow = this.#flows.get(flowKey);
    if (!flow) {
      flow = { next: null, inFlight: 0, first: null };
      this.#flows.set(flowKey, flow);
    }
    flow.inFlight++;
    try {
      while (flow.next === null && flow.first) await flow.first;
      if (flow.next === null) return await this.#goFirst(flow, stride, submit);
      const floor = flow.next;
      flow.next = floor + stride;
      const { tag, value } = await submit(floor);
      // A tag above the floor: another gateway's submits moved the tenant on, so this one follows them.
      if (tag + stride > flow.next) flow.next = tag + stride;
      return value;
    } finally {
      if (--flow.inFlight === 0) this.#flows.delete(flowKey);
    }
  }

  async #goFirst<T>(flow: Flow, stride: number, submit: (floor: number | null) => Promise<{ tag: number; value: T }>): Promise<T> {
    let settle!: () => void;
    flow.first = new Promise((resolve) => (settle = resolve));
    try {
      const { tag, value } = await submit(null);
      flow.next = tag + stride;
      return value;
    } finally {
      // On failure `next` stays null and the next waiter goes first instead.
      flow.first = null;
      settle();
    }
  }

  /** Flows with submits in flight (for tests: none are kept once all settled). */
  get size(): number {
    return this.#flows.size;
  }
}
