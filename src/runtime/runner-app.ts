/**
 * An app as a runner describes it (the `app` of a remote runner's registration, and what
 * `python -m darkroom_runner --manifest` prints), checked, and turned into the gateway's manifest.
 * One description for both ways a gateway learns of an app it does not load itself: a remote
 * runner registering it, and `darkroom serve --apps path/app.py::Class` probing the file.
 * @module
 */
import { z } from "zod";
import { DEFAULT_KNOBS, type AppManifest } from "../core/types.js";

const RunnerEndpoint = z.object({
  path: z.string().max(200).regex(/^[A-Za-z0-9_\-/]*$/),
  kind: z.enum(["http", "stream", "realtime"]).default("http"),
  input: z.record(z.string(), z.unknown()),
  output: z.record(z.string(), z.unknown()).default({}),
  description: z.string().max(2000).optional(),
});

export const RunnerApp = z.object({
  id: z.string().min(1).max(200).regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+$/, "app id must look like owner/name"),
  version: z.string().max(64).default("0.1.0"),
  endpoints: z.array(RunnerEndpoint).min(1).max(100),
  knobs: z.record(z.string(), z.number()).default({}),
  metadata: z
    .object({
      display_name: z.string().max(200).optional(),
      category: z.string().max(100).optional(),
      description: z.string().max(5000).optional(),
      tags: z.array(z.string().max(50)).max(20).optional(),
      license: z.string().max(200).optional(),
      // What the app asks of its machine (a fal app's class options), shown in /v1/models.
      machine_type: z.string().max(100).optional(),
      num_gpus: z.number().int().min(0).max(64).optional(),
      requirements: z.array(z.string().max(300)).max(200).optional(),
    })
    .default({}),
  // The runner found that the app cannot run where it is (a fal app's requirements missing):
  // listed, refused with the remedy, and leased nothing until a runner registers it without this.
  unavailable: z.object({ reason: z.string().min(1).max(2000), remedy: z.string().min(1).max(2000) }).optional(),
  // Whether its results may be reused (docs/result-reuse.md).
  cache: z.object({ reuse: z.enum(["deterministic", "seeded"]), default: z.enum(["use", "off"]).default("off") }).optional(),
});
export type RunnerApp = z.infer<typeof RunnerApp>;

/**
 * The gateway's manifest of an app a runner described: knobs it does not know are dropped, the
 * rest over the defaults. `modulePath` is what a runner is started with ("" for a remote app).
 */
export function manifestOfRunnerApp(app: RunnerApp, modulePath: string, options: { remote: boolean }): AppManifest {
  const knobs = { ...DEFAULT_KNOBS };
  for (const [name, value] of Object.entries(app.knobs)) if (name in knobs) (knobs as Record<string, number>)[name] = value;
  const metadata = app.metadata;
  return {
    id: app.id,
    version: app.version,
    metadata: {
      display_name: metadata.display_name ?? app.id,
      category: metadata.category ?? "other",
      description: metadata.description ?? "",
      tags: metadata.tags ?? [],
      ...(metadata.license ? { license: metadata.license } : {}),
      ...(metadata.machine_type ? { machine_type: metadata.machine_type } : {}),
      ...(metadata.num_gpus !== undefined ? { num_gpus: metadata.num_gpus } : {}),
      ...(metadata.requirements ? { requirements: metadata.requirements } : {}),
    },
    knobs,
    endpoints: app.endpoints.map((e) => ({ path: e.path.replace(/^\/+/, ""), kind: e.kind, input: e.input, output: e.output, ...(e.description ? { description: e.description } : {}) })),
    modulePath,
    unavailable: app.unavailable ?? null,
    ...(options.remote ? { remote: true } : {}),
    ...(app.cache ? { cache: app.cache } : {}),
  };
}
