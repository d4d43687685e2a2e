/**
 * `darkroom/echo`: returns its input. Used by integration tests and benchmarks to exercise every
 * platform path (logs, progress, partial results, files, failures, cancellation, realtime) without a
 * model in the way.
 * @module
 */
import { setTimeout as sleep } from "node:timers/promises";
import { defineApp, endpoint, FileSchema, FileUrl, z, type HandlerContext } from "../../runtime/sdk.js";
import { PlatformError } from "../../core/errors.js";

const EchoInput = z.object({
  message: z.unknown().optional().describe("Any JSON value; returned unchanged"),
  sleep_ms: z.number().int().min(0).max(600_000).default(0).describe("Work time to simulate, in ms (cancellable)"),
  logs: z.array(z.string().max(10_000)).max(1000).default([]).describe("Lines to write to the request's logs"),
  progress_steps: z.number().int().min(0).max(1000).default(0).describe("Split the sleep into this many progress steps"),
  emit_partials: z.boolean().default(false).describe("Also send a partial result ({message, step, total}) at each progress step"),
  fail: z
    .enum(["error", "crash", "hang", "validation"])
    .optional()
    .describe("error: the handler throws; crash: the runner process dies; hang: the handler never returns and ignores cancellation; validation: a 422 field error"),
  file_url: FileUrl.optional().describe("A file (http(s) URL or data: URI) to fetch and return as a stored output file"),
  sync_mode: z.boolean().default(false).describe("Return output files inline as data URIs"),
});

const EchoOutput = z.object({
  message: z.unknown().optional(),
  attempt: z.number().int(),
  file: FileSchema.optional(),
});

type EchoInputT = z.output<typeof EchoInput>;

async function work(input: EchoInputT, ctx: HandlerContext): Promise<void> {
  for (const line of input.logs) ctx.log(line);
  if (input.fail === "crash") {
    // Simulates a runner dying mid-request (segfault, OOM kill).
    setImmediate(() => process.exit(13));
    await new Promise(() => undefined);
  }
  if (input.fail === "hang") {
    // Never settles and ignores the abort signal: the scheduler must kill the runner.
    await new Promise(() => undefined);
  }
  const steps = Math.max(1, input.progress_steps);
  for (let step = 1; step <= steps; step++) {
    if (input.sleep_ms > 0) await sleep(input.sleep_ms / steps, undefined, { signal: ctx.signal });
    ctx.throwIfCancelled();
    if (input.progress_steps > 0) ctx.progress(step, steps, `step ${step}/${steps}`);
    if (input.emit_partials) ctx.emit({ message: input.message, step, total: steps });
  }
  if (input.fail === "error") throw new Error("echo failed on request (fail: error)");
  if (input.fail === "validation") {
    throw new PlatformError("ERR_VALIDATION", {
      fieldErrors: [{ loc: ["body", "fail"], msg: "echo refused the input on request (fail: validation)", type: "value_error" }],
    });
  }
}

async function echo(input: EchoInputT, ctx: HandlerContext): Promise<z.input<typeof EchoOutput>> {
  await work(input, ctx);
  const output: z.input<typeof EchoOutput> = { message: input.message, attempt: ctx.attempt };
  if (input.file_url) {
    const file = await ctx.files.read(input.file_url);
    output.file = await ctx.files.put(file.data, { contentType: file.contentType, fileName: "echo" });
  }
  ctx.bill(1);
  return output;
}

export default defineApp({
  id: "darkroom/echo",
  version: "1.0.0",
  metadata: {
    display_name: "Echo",
    category: "utility",
    description: "Returns its input. For integration tests and benchmarks of the platform itself.",
    tags: ["test", "utility"],
    license: "MIT",
  },
  knobs: { min_runners: 0, max_runners: 2, keep_alive: 300, max_multiplexing: 32, request_timeout: 600, startup_timeout: 60 },
  // The same input gives the same output; requests reuse results when they ask (X-Darkroom-Cache).
  cache: { reuse: "deterministic", default: "off" },
  endpoints: [
    endpoint({ path: "", input: EchoInput, output: EchoOutput, handler: echo }),
    endpoint({
      path: "stream",
      kind: "stream",
      description: "Emits one event per progress step, then the output",
      input: EchoInput,
      output: EchoOutput.extend({ step: z.number().int().optional(), total: z.number().int().optional() }),
      async *handler(input, ctx) {
        for (const line of input.logs) ctx.log(line);
        const steps = Math.max(1, input.progress_steps);
        for (let step = 1; step <= steps; step++) {
          if (input.sleep_ms > 0) await sleep(input.sleep_ms / steps, undefined, { signal: ctx.signal });
          ctx.progress(step, steps);
          if (step < steps) yield { message: input.message, attempt: ctx.attempt, step, total: steps };
        }
        yield { message: input.message, attempt: ctx.attempt, step: steps, total: steps };
      },
    }),
    endpoint({
      path: "realtime",
      kind: "realtime",
      description: "Echoes each realtime message (with its request_id)",
      input: z.object({ message: z.unknown().optional(), request_id: z.string().optional() }).passthrough(),
      output: z.object({ message: z.unknown().optional(), request_id: z.string().optional() }).passthrough(),
      handler: (input) => ({ ...input }),
    }),
  ],
});
