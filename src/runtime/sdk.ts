/**
 * The TypeScript app SDK. An app module default-exports `defineApp({...})`; runners load it, call
 * `setup()` once, then call endpoint handlers with a {@link HandlerContext}.
 *
 * Schemas are authored with zod 4 and exported as JSON Schema 2020-12 for the wire.
 * @module
 */
import type { Readable } from "node:stream";
import { z } from "zod";
import type { AppCachePolicy, AppKnobs, AppMetadata, LogLevel, WeightsRef } from "../core/types.js";

export { z };

/** A stored output file, as returned in fal's `File` shape. */
export interface FileRef {
  url: string;
  content_type: string;
  file_name: string;
  file_size: number;
  width?: number;
  height?: number;
  /** Present in sync mode only (data URI). */
  file_data?: never;
}

export interface PutFileOptions {
  contentType: string;
  fileName?: string;
  /** Image dimensions, copied into the returned FileRef. */
  width?: number;
  height?: number;
}

export interface FileAccess {
  /** Stores bytes or a stream as an output file of this request and returns its fal `File` record. */
  put(body: Buffer | Uint8Array | Readable, options: PutFileOptions): Promise<FileRef>;
  /**
   * Reads an input given as an http(s) URL, a `data:` URI or one of this server's `/files/` URLs.
   * Outside URLs are fetched with the SSRF guard and the size limit; own files are read from storage.
   */
  read(url: string, options?: { maxBytes?: number }): Promise<{ data: Buffer; contentType: string }>;
}

export interface HandlerContext<S = unknown> {
  requestId: string;
  /** What `setup()` returned. */
  state: S;
  /** Aborted when the request is cancelled or the runner drains past its grace period. */
  signal: AbortSignal;
  attempt: number;
  log(message: string, level?: LogLevel): void;
  /** Reports progress of multi-step work. `step` of `total`, with an optional message. */
  progress(step: number, total: number, message?: string): void;
  /** Sends a partial result (streamed to `/stream` clients as an event). */
  emit(partial: unknown): void;
  /** Reports billable units for usage metering (e.g. megapixels, seconds of audio). */
  bill(units: number): void;
  files: FileAccess;
  /** Throws the abort reason if cancelled: call between steps. */
  throwIfCancelled(): void;
}

export type Handler<I, O, S> = (input: I, ctx: HandlerContext<S>) => Promise<O> | O;
/** A streaming handler yields partial results; the last yielded value is the final output. */
export type StreamHandler<I, O, S> = (input: I, ctx: HandlerContext<S>) => AsyncIterable<O>;

/**
 * Declares that an endpoint returns images and takes the platform's `enable_safety_checker`
 * (see `safety-checker.ts`): `defineApp` adds `enable_safety_checker` to the input schema and
 * `has_nsfw_concepts` to the output schema, and the runner screens the images of requests that
 * enable it. Both schemas must be `z.object`s.
 */
export interface SafetyCheckerOption {
  /**
   * `enable_safety_checker` when a request leaves it out. fal's generators default to true; an
   * endpoint that only transforms the client's own image may default to false, sparing its
   * runners the model load (seconds) until a client asks.
   */
  default: boolean;
}

export interface EndpointDefinition<S> {
  /** "" for the root endpoint, else e.g. "stream" or "realtime" */
  path: string;
  kind?: "http" | "stream" | "realtime";
  description?: string;
  input: z.ZodType;
  output: z.ZodType;
  handler: Handler<never, unknown, S> | StreamHandler<never, unknown, S>;
  safetyChecker?: SafetyCheckerOption;
}

export interface AppDefinition<S = unknown> {
  /** `owner/alias` */
  id: string;
  version?: string;
  metadata: Partial<AppMetadata> & { display_name: string; category: string; description: string };
  knobs?: Partial<AppKnobs>;
  /**
   * Whether results may be reused for the same input (docs/result-reuse.md): declare only what is
   * true of the handler. Absent: never.
   */
  cache?: AppCachePolicy;
  /**
   * The model weights the app loads (content hashes, or the packages that ship them), read once
   * when the app is loaded: they are part of the app's revision, so that results made with other
   * weights are never reused, and of each result's manifest (`GET /v1/requests/{id}/manifest`).
   */
  weights?: () => Promise<WeightsRef[]> | WeightsRef[];
  /**
   * Called once in a runner, before it takes requests; its return value is `ctx.state`.
   * `log` reports progress of model loading.
   */
  setup?: (log: (message: string) => void) => Promise<S> | S;
  /** Called when the runner stops. */
  teardown?: (state: S) => Promise<void> | void;
  /** Returns a reason when the app cannot run on this machine (missing system program...). Runs in a runner-side probe. */
  checkAvailability?: () => Promise<{ reason: string; remedy: string } | null> | { reason: string; remedy: string } | null;
  endpoints: EndpointDefinition<S>[];
}

const APP_MARK = Symbol.for("darkroom.App");

export type DefinedApp<S = unknown> = AppDefinition<S> & { [APP_MARK]: true };

/** Input schemas this module has already given `enable_safety_checker`, so that a second `defineApp` leaves them be. */
const SAFETY_EXTENDED = new WeakSet<z.ZodType>();

/** The endpoint with the safety checker's fields in its schemas. */
function withSafetyCheckerFields<S>(appId: string, e: EndpointDefinition<S>, option: SafetyCheckerOption): EndpointDefinition<S> {
  if (SAFETY_EXTENDED.has(e.input)) return e;
  const where = `Endpoint '${e.path}' of ${appId}`;
  if (!(e.input instanceof z.ZodObject) || !(e.output instanceof z.ZodObject)) {
    throw new Error(`${where} declares safetyChecker, which needs z.object() input and output schemas`);
  }
  if ("enable_safety_checker" in e.input.shape) throw new Error(`${where}: enable_safety_checker is the platform's field; remove it from the input`);
  if ("has_nsfw_concepts" in e.output.shape) throw new Error(`${where}: has_nsfw_concepts is the platform's field; remove it from the output`);
  const input = e.input.extend({
    enable_safety_checker: z
      .boolean()
      .default(option.default)
      .describe(
        "Check the output images for NSFW content; flagged images are replaced by a black image or blurred, " +
          "as the server is configured, and has_nsfw_concepts says which",
      ),
  });
  SAFETY_EXTENDED.add(input);
  const output = e.output.extend({
    has_nsfw_concepts: z
      .array(z.boolean())
      .optional()
      .describe("Whether each output image was flagged as NSFW, in output order; present when enable_safety_checker was true"),
  });
  return { ...e, input, output };
}

/** Declares an app. Type parameters flow from `setup()` to handlers. */
export function defineApp<S>(def: AppDefinition<S>): DefinedApp<S> {
  if (!/^[a-z0-9][a-z0-9-]*\/[a-z0-9][a-z0-9._-]*$/.test(def.id)) {
    throw new Error(`Invalid app id ${JSON.stringify(def.id)}: expected owner/alias in lowercase`);
  }
  if (def.endpoints.length === 0) throw new Error(`App ${def.id} has no endpoints`);
  const seen = new Set<string>();
  for (const e of def.endpoints) {
    if (e.path.startsWith("/")) throw new Error(`Endpoint path ${e.path} of ${def.id} must not start with '/'`);
    if (seen.has(e.path)) throw new Error(`Duplicate endpoint path '${e.path}' in ${def.id}`);
    seen.add(e.path);
  }
  if (def.cache && (!["deterministic", "seeded"].includes(def.cache.reuse) || !["use", "off"].includes(def.cache.default))) {
    throw new Error(`App ${def.id}: cache.reuse must be "deterministic" or "seeded" and cache.default "use" or "off"`);
  }
  const endpoints = def.endpoints.map((e) => (e.safetyChecker ? withSafetyCheckerFields(def.id, e, e.safetyChecker) : e));
  return Object.assign(def, { endpoints, [APP_MARK]: true as const });
}

/** Typed endpoint helper so that handler input/output types come from the schemas. */
export function endpoint<I extends z.ZodType, O extends z.ZodType, S = unknown>(def: {
  path: string;
  kind?: "http" | "realtime";
  description?: string;
  input: I;
  output: O;
  handler: Handler<z.output<I>, z.input<O>, S>;
  safetyChecker?: SafetyCheckerOption;
}): EndpointDefinition<S>;
export function endpoint<I extends z.ZodType, O extends z.ZodType, S = unknown>(def: {
  path: string;
  kind: "stream";
  description?: string;
  input: I;
  output: O;
  handler: StreamHandler<z.output<I>, z.input<O>, S>;
  safetyChecker?: SafetyCheckerOption;
}): EndpointDefinition<S>;
export function endpoint<S>(def: EndpointDefinition<S>): EndpointDefinition<S> {
  return def;
}

export function isDefinedApp(value: unknown): value is DefinedApp {
  return typeof value === "object" && value !== null && APP_MARK in value;
}

/** fal's File schema for outputs. */
export const FileSchema = z.object({
  url: z.string(),
  content_type: z.string(),
  file_name: z.string(),
  file_size: z.number().int(),
});

export const ImageSchema = FileSchema.extend({
  width: z.number().int(),
  height: z.number().int(),
});

/** fal's video record; `storeVideo` (`src/media/video/video-file.ts`) stores a file and measures it. */
export const VideoSchema = FileSchema.extend({
  width: z.number().int(),
  height: z.number().int(),
  fps: z.number(),
  duration: z.number().describe("Seconds"),
  num_frames: z.number().int(),
});

/** fal's audio record; `storeAudio` (`src/media/audio/audio-file.ts`) stores a file and measures it. */
export const AudioSchema = FileSchema.extend({
  duration: z.number().describe("Seconds"),
  sample_rate: z.number().int().describe("Hz"),
  channels: z.number().int(),
});

/**
 * An input file field: an http(s) URL or a data: URI (fal accepts both everywhere). Schemes are
 * case-insensitive (RFC 3986 §3.1, RFC 2397), so `HTTP://` and `DATA:` are accepted too.
 */
export const FileUrl = z
  .string()
  // Spelled out per letter rather than with the `i` flag: the gateway validates against the JSON Schema
  // that zod exports, and a JSON Schema `pattern` has no flags, so `/…/i` would lose its meaning there.
  .regex(/^([Hh][Tt][Tt][Pp][Ss]?:\/\/|[Dd][Aa][Tt][Aa]:)/, { message: "must be an http(s) URL or a data: URI" })
  // Handlers (and the runtime's file reader, which tells data: URIs from URLs by a lower-case prefix)
  // get the scheme in lower case, its canonical form; the rest of the URL is left as it was.
  .overwrite((url) => url.replace(/^[A-Za-z]+:/, (scheme) => scheme.toLowerCase()))
  // No `format: "uri"`: validating that format runs a large regex over every byte of a data URI
  // (measured ~5 ms per megabyte-sized image at the gateway); the pattern above is what matters.
  .meta({ "x-darkroom-file": true });
