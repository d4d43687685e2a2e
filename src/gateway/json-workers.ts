/**
 * The body workers: threads that check large JSON bodies (json-worker.ts) so that the event loop
 * never parses them. Each worker holds one body at a time; the others wait here, in order, so that
 * a worker that dies takes only its own body with it, and bodies go to the first idle worker rather
 * than queueing behind a slow one. Their heaps are not capped with `resourceLimits`: on Node 20 a
 * worker that runs out of a capped heap can abort the whole process as it is torn down. What bounds
 * them instead is what they are given: one body of at most the body limit, held to the value limit
 * before it is parsed.
 * @module
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { JsonSchema } from "../core/types.js";
import type { JsonCheck, JsonCheckReply } from "./json-worker.js";

// Workers have no TypeScript loader of their own: this bootstrap registers tsx, then loads the
// worker module. Both are resolved here, so the worker finds them wherever the process started.
const WORKER_BOOTSTRAP = `
import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))})
  .then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL("./json-worker.ts", import.meta.url).href)}); });
`;

interface Job {
  message: JsonCheck;
  resolve: (reply: JsonCheckReply) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  job: Job | null;
}

export class JsonWorkers {
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  readonly #size = Math.max(1, Math.min(2, availableParallelism() - 1));
  #ids = 0;

  /** Checks `bytes` (transferred: the caller's view of them is emptied) against the JSON limits and, if given, `schema`. */
  check(bytes: ArrayBuffer, schema: JsonSchema | null): Promise<JsonCheckReply> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ message: { id: this.#ids++, bytes, schema }, resolve, reject });
      this.#pump();
    });
  }

  /**
   * Starts one worker ahead of the first large body, which would otherwise wait for the thread and
   * its TypeScript loader to come up (a few hundred milliseconds): `darkroom serve` calls this once
   * it listens. An idle worker keeps nothing alive.
   */
  warm(): void {
    if (this.#slots.length === 0) this.#start();
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      const slot = this.#slots.find((s) => s.job === null) ?? (this.#slots.length < this.#size ? this.#start() : undefined);
      if (!slot) return;
      const job = this.#queue.shift()!;
      slot.job = job;
      slot.worker.ref();
      slot.worker.postMessage(job.message, [job.message.bytes]);
    }
  }

  #start(): Slot {
    const worker = new Worker(WORKER_BOOTSTRAP, { eval: true });
    const slot: Slot = { worker, job: null };
    worker.on("message", (reply: JsonCheckReply) => {
      const job = slot.job;
      slot.job = null;
      // Idle workers never keep the process alive.
      worker.unref();
      job?.resolve(reply);
      this.#pump();
    });
    worker.on("error", (error) => this.#drop(slot, error));
    worker.on("exit", () => this.#drop(slot, new Error("JSON body worker exited")));
    // After the listeners: adding one refs the worker.
    worker.unref();
    this.#slots.push(slot);
    return slot;
  }

  /** A worker died: its body is refused, and the bodies waiting go to a new one. */
  #drop(slot: Slot, error: Error): void {
    const index = this.#slots.indexOf(slot);
    if (index < 0) return;
    this.#slots.splice(index, 1);
    const job = slot.job;
    slot.job = null;
    job?.reject(error);
    this.#pump();
  }
}

/** The body workers of this process, shared by its gateways. */
export const jsonWorkers = new JsonWorkers();
