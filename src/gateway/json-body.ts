/**
 * JSON request bodies, parsed without letting one caller stall the event loop for the others.
 * JSON.parse takes any depth and any number of values: a 30 MB object of a million keys costs the
 * only thread about two seconds, and deep nesting later overflows the stack of JSON.stringify (when
 * the input is stored) and of structured clone (when a runner gets it). So every body is held to a
 * depth and a count of values (keys plus array items), and bodies too big to parse in a blink are
 * measured first on worker threads: the event loop parses only a body that is within both limits.
 * @module
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { PlatformError } from "../core/errors.js";

/** Deepest nesting accepted; no model input comes near it. */
export const MAX_JSON_DEPTH = 512;
/** Most values (object keys plus array items, at every level) in one body. */
export const MAX_JSON_VALUES = 100_000;
/**
 * Bodies up to this size are parsed on the event loop at once: at most ~30,000 values fit, a parse
 * of well under 10 ms. Bigger ones are measured on a worker first.
 */
export const INLINE_PARSE_BYTES = 64 * 1024;

type Verdict = { ok: true } | { ok: false; reason: "syntax" | "depth" | "values" };

/** Depth and value count of a parsed value, without recursion, stopping at the first limit passed. */
function measure(value: unknown, maxDepth: number, maxValues: number): Verdict {
  const stack: { v: unknown; depth: number }[] = [{ v: value, depth: 1 }];
  let values = 0;
  for (let item = stack.pop(); item; item = stack.pop()) {
    if (typeof item.v !== "object" || item.v === null) continue;
    if (item.depth > maxDepth) return { ok: false, reason: "depth" };
    const children = Array.isArray(item.v) ? item.v : Object.values(item.v);
    values += children.length;
    if (values > maxValues) return { ok: false, reason: "values" };
    for (const child of children) {
      if (typeof child === "object" && child !== null) stack.push({ v: child, depth: item.depth + 1 });
    }
  }
  return { ok: true };
}

// The worker runs the same `measure`, passed as source: it has no TypeScript loader of its own.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const measure = ${measure.toString()};
parentPort.on("message", ({ id, bytes }) => {
  let verdict;
  try {
    verdict = measure(JSON.parse(Buffer.from(bytes).toString("utf8")), workerData.maxDepth, workerData.maxValues);
  } catch {
    verdict = { ok: false, reason: "syntax" };
  }
  parentPort.postMessage({ id, verdict });
});
`;

function refusal(verdict: Verdict): PlatformError | null {
  if (verdict.ok) return null;
  if (verdict.reason === "syntax") return new PlatformError("ERR_BAD_JSON", { message: "Malformed JSON body" });
  if (verdict.reason === "depth") return new PlatformError("ERR_BAD_JSON", { message: `JSON body is nested deeper than ${MAX_JSON_DEPTH} levels` });
  return new PlatformError("ERR_BAD_JSON", {
    message: `JSON body has more than ${MAX_JSON_VALUES} values (object keys and array items); send large data as a file URL instead`,
  });
}

/** A few worker threads that measure big bodies in turn; started on the first big body, never keeping the process alive. */
class JsonMeasurers {
  #workers: Worker[] = [];
  #next = 0;
  #pending = new Map<number, { worker: Worker; resolve: (verdict: Verdict) => void; reject: (error: Error) => void }>();
  #ids = 0;

  #worker(): Worker {
    if (this.#workers.length === 0) {
      const count = Math.max(1, Math.min(2, availableParallelism() - 1));
      for (let i = 0; i < count; i++) {
        const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { maxDepth: MAX_JSON_DEPTH, maxValues: MAX_JSON_VALUES } });
        worker.on("message", ({ id, verdict }: { id: number; verdict: Verdict }) => {
          this.#pending.get(id)?.resolve(verdict);
          this.#pending.delete(id);
          if (![...this.#pending.values()].some((pending) => pending.worker === worker)) worker.unref();
        });
        // A worker that dies (out of memory on a huge body) fails what it held; the next body starts afresh.
        worker.on("error", (error) => this.#fail(worker, error));
        worker.on("exit", () => this.#fail(worker, new Error("JSON measuring worker exited")));
        // Idle workers never keep the process alive (after the listeners: adding one refs the worker).
        worker.unref();
        this.#workers.push(worker);
      }
    }
    return this.#workers[this.#next++ % this.#workers.length]!;
  }

  #fail(worker: Worker, error: Error): void {
    const index = this.#workers.indexOf(worker);
    if (index >= 0) this.#workers.splice(index, 1);
    for (const [id, pending] of this.#pending) {
      if (pending.worker !== worker) continue;
      this.#pending.delete(id);
      pending.reject(error);
    }
  }

  measure(body: Buffer): Promise<Verdict> {
    const id = this.#ids++;
    // A copy, transferred: the parser's buffer may be a slice of a shared pool.
    const bytes = new Uint8Array(body).buffer;
    const worker = this.#worker();
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { worker, resolve, reject });
      worker.ref();
      worker.postMessage({ id, bytes }, [bytes]);
    });
  }
}

const measurers = new JsonMeasurers();

/**
 * Parses a request body; an empty body is no input (fal's clients send the JSON type on bodyless
 * calls). Small bodies are parsed at once (`done` is called before this returns): most requests
 * pay no promise and no worker round trip.
 */
export function parseJsonBody(body: Buffer, done: (error: Error | null, value?: unknown) => void): void {
  if (body.length <= INLINE_PARSE_BYTES) {
    let value: unknown;
    try {
      value = parseMeasured(body);
    } catch (error) {
      return done(error as Error);
    }
    return done(null, value);
  }
  measurers.measure(body).then(
    (verdict) => {
      const refused = refusal(verdict);
      if (refused) return done(refused);
      let value: unknown;
      try {
        value = parseMeasured(body);
      } catch (error) {
        return done(error as Error);
      }
      done(null, value);
    },
    (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
  );
}

function parseMeasured(body: Buffer): unknown {
  const text = body.toString("utf8");
  if (text.trim() === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new PlatformError("ERR_BAD_JSON", { message: "Malformed JSON body" });
  }
  const refused = refusal(measure(value, MAX_JSON_DEPTH, MAX_JSON_VALUES));
  if (refused) throw refused;
  return value;
}
