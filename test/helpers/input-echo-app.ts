/**
 * A test app that returns its input as received (`{ received }`), for browser tests that check
 * what the playground's form sends for a given input schema.
 * @module
 */
import { defineApp, endpoint, z, type DefinedApp } from "../../src/runtime/sdk.js";

export function inputEchoApp(options: { id: string; displayName: string; description: string; input: z.ZodType }): DefinedApp {
  return defineApp({
    id: options.id,
    version: "1.0.0",
    metadata: { display_name: options.displayName, category: "utility", description: options.description, tags: ["test"] },
    knobs: { min_runners: 0, max_runners: 1, max_multiplexing: 4, keep_alive: 60, request_timeout: 60, startup_timeout: 60 },
    endpoints: [
      endpoint({
        path: "",
        input: options.input,
        output: z.object({ received: z.unknown() }),
        handler: (input) => ({ received: input }),
      }),
    ],
  });
}
