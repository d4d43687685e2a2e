/**
 * OpenAI's API at `/openai/v1` (docs/api.md, "OpenAI"), on the same apps, keys, limits, usage and
 * storage as fal's: code written for the `openai` SDK runs here with only its base URL changed
 * (`Authorization: Bearer <Darkroom key>`). Each call is one request of its app through the durable
 * queue (app-call.ts), so it shows in `/v1/requests` and usage like any other.
 *
 *   GET  /models, /models/{model}       app ids and the aliases OpenAI code sends (openai/models.ts)
 *   POST /audio/speech                  text to speech, audio bytes in the asked format
 *   POST /audio/transcriptions          speech to text (multipart), json | text | srt | vtt | verbose_json
 *   POST /images/generations            text to image, url | b64_json
 *   POST /images/edits                  image to image (multipart), where the app has that endpoint
 * @module
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { PlatformError } from "../../core/errors.js";
import type { AppManifest, EndpointManifest, RequestRecord } from "../../core/types.js";
import { parseDataUri, toDataUri } from "../../storage/data-uri.js";
import { originsOf, ownFileKey, readOwnFile } from "../../storage/own-files.js";
import { registerApiScope } from "../api-scope.js";
import { hangUpSignal, runAppCall } from "../app-call.js";
import { requirePrincipal, type GatewayContext } from "../context.js";
import { readFormData, type FormData } from "../form-data.js";
import { appFormatFor, CONTENT_TYPES, convertWav, SPEECH_FORMATS, type SpeechFormat } from "../openai/audio-format.js";
import { sendOpenAiError } from "../openai/errors.js";
import { OpenAiModels, parseOpenAiAliases } from "../openai/models.js";
import { srt, TRANSCRIPT_FORMATS, verboseJson, vtt, type SpeechToTextResult, type TranscriptFormat } from "../openai/transcripts.js";
import { baseUrlOf } from "../wire.js";
import { validatedBody } from "../validated-body.js";

/** OpenAI's own upload limit for audio and images. */
const MAX_UPLOAD_BYTES = 25 * 1024 * 1024;

/**
 * OpenAI's voices, on flite's (the built-in text-to-speech): the women's voices on slt, the men's on
 * rms and kal16, fable (British) on awb (Scottish). A flite voice name is taken as itself.
 */
export const OPENAI_VOICES: Readonly<Record<string, string>> = {
  alloy: "slt",
  coral: "slt",
  nova: "slt",
  sage: "slt",
  shimmer: "slt",
  ash: "rms",
  echo: "rms",
  onyx: "rms",
  ballad: "kal16",
  verse: "kal16",
  fable: "awb",
};

const SpeechBody = z
  .object({
    model: z.string().min(1),
    input: z.string().min(1).max(4096),
    voice: z.union([z.string().min(1), z.object({ id: z.string().min(1) })]),
    response_format: z.enum(SPEECH_FORMATS as [SpeechFormat, ...SpeechFormat[]]).default("mp3"),
    speed: z.number().min(0.25).max(4).default(1),
    instructions: z.string().max(4096).optional(),
    stream_format: z.enum(["audio", "sse"]).optional(),
  })
  .strict();

const ImageBody = z
  .object({
    model: z.string().min(1).default("gpt-image-1"),
    prompt: z.string().min(1).max(32_000),
    n: z.number().int().min(1).max(4).default(1),
    size: z.string().regex(/^(auto|\d{2,4}x\d{2,4})$/, "WIDTHxHEIGHT or auto").default("auto"),
    response_format: z.enum(["url", "b64_json"]).default("url"),
    seed: z.number().int().min(0).optional(),
    // Accepted for compatibility; the model decides.
    quality: z.string().optional(),
    style: z.string().optional(),
    user: z.string().optional(),
    background: z.string().optional(),
    output_format: z.enum(["png", "jpeg", "webp"]).optional(),
    moderation: z.string().optional(),
  })
  .strict();

function endpointOf(app: AppManifest, path: string): EndpointManifest | undefined {
  return app.endpoints.find((e) => e.path === path && e.kind === "http");
}

/** The app's result, or its failure as an error (in OpenAI's shape once sent). */
function outputOf(record: RequestRecord): Record<string, unknown> {
  if (record.state === "SUCCEEDED") return (record.output ?? {}) as Record<string, unknown>;
  const body = record.output as { detail?: unknown } | null;
  if (record.statusCode === 422 && Array.isArray(body?.detail)) throw new PlatformError("ERR_VALIDATION", { fieldErrors: body.detail as never });
  throw new PlatformError(record.state === "CANCELLED" ? "ERR_CLIENT_CANCELLED" : "ERR_APP_ERROR", { message: record.error ?? "The model failed" });
}

/** The bytes of an output file: this server's own, read from storage; inline data as it is. */
async function fileBytes(ctx: GatewayContext, url: string, baseUrl: string): Promise<Buffer> {
  if (url.startsWith("data:")) return parseDataUri(url, Number.MAX_SAFE_INTEGER).data;
  const key = ownFileKey(url, originsOf([baseUrl, ctx.config.publicUrl, ctx.config.filesUrl]));
  const bytes = key !== null ? await readOwnFile(ctx.storage, key) : null;
  if (!bytes) throw new PlatformError("ERR_APP_ERROR", { message: `The model's output file is not in storage: ${url}` });
  return bytes;
}

function formValue(form: FormData, name: string): string | undefined {
  return form.fields.get(name)?.[0];
}

/** The file part `name`, or `alias` where a form may name it so (an edit's `image[]`). */
function requireFile(form: FormData, name: string, alias?: string): { data: Buffer; fileName: string; contentType: string } {
  const file = form.files.get(name) ?? (alias !== undefined ? form.files.get(alias) : undefined);
  if (!file) throw new PlatformError("ERR_VALIDATION", { fieldErrors: [{ loc: ["body", name], msg: `${name} is required (a file part)`, type: "missing" }] });
  return file;
}

function sizeOf(size: string): { width: number; height: number } | undefined {
  if (size === "auto") return undefined;
  const [width = 0, height = 0] = size.split("x").map(Number);
  return { width, height };
}

export function registerOpenAiRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const models = new OpenAiModels(() => ctx.scheduler.apps, parseOpenAiAliases(ctx.config.openaiAliases ?? undefined));

  registerApiScope(app, { prefix: "/openai/v1", name: "OpenAI", sendError: sendOpenAiError }, (scope) => {
    const created = Math.floor(Date.now() / 1000);
    const modelEntry = (id: string, app: AppManifest): Record<string, unknown> => ({ id, object: "model", created, owned_by: app.id.split("/")[0] ?? "darkroom" });

    scope.get("/models", async (request) => {
      requirePrincipal(request);
      return { object: "list", data: models.list().map(({ id, app }) => modelEntry(id, app)) };
    });

    scope.get("/models/*", async (request) => {
      requirePrincipal(request);
      const id = (request.params as { "*": string })["*"];
      const found = models.appOf(id);
      if (!found) throw new PlatformError("ERR_MODEL_NOT_FOUND", { message: `The model '${id}' does not exist here` });
      return modelEntry(id, found);
    });

    scope.post("/audio/speech", async (request, reply) => {
      const principal = requirePrincipal(request);
      const body = validatedBody(SpeechBody, request.body);
      const target = models.resolve(body.model, (a) => endpointOf(a, "") !== undefined && a.metadata.category === "text-to-speech", "a text-to-speech model");
      const asked = typeof body.voice === "string" ? body.voice : body.voice.id;
      const voice = OPENAI_VOICES[asked] ?? asked;
      const baseUrl = baseUrlOf(request, ctx.config.publicUrl);
      const input = { text: body.input, voice, output_format: appFormatFor(body.response_format), speed: Math.min(2, Math.max(0.5, body.speed)) };
      const record = await runAppCall(ctx, { app: target, endpoint: endpointOf(target, "") as EndpointManifest, input, principal, baseUrl }, hangUpSignal(reply));
      const audio = outputOf(record)["audio"] as { url: string } | undefined;
      if (!audio) throw new PlatformError("ERR_APP_ERROR", { message: `${target.id} returned no audio` });
      let bytes = await fileBytes(ctx, audio.url, record.baseUrl);
      const format = body.response_format;
      if (format === "aac" || format === "flac" || format === "pcm") bytes = await convertWav(bytes, format);
      return reply.header("x-request-id", record.id).type(CONTENT_TYPES[format]).send(bytes);
    });

    scope.post("/audio/transcriptions", { config: { wholeFormBytes: MAX_UPLOAD_BYTES } }, async (request, reply) => {
      const principal = requirePrincipal(request);
      const form = await readFormData(request, { maxFileBytes: MAX_UPLOAD_BYTES });
      const target = models.resolve(formValue(form, "model"), (a) => endpointOf(a, "") !== undefined && a.metadata.category === "speech-to-text", "a speech-to-text model");
      const file = requireFile(form, "file");
      const format = (formValue(form, "response_format") ?? "json") as TranscriptFormat;
      if (!TRANSCRIPT_FORMATS.includes(format)) {
        throw new PlatformError("ERR_VALIDATION", { fieldErrors: [{ loc: ["body", "response_format"], msg: `one of ${TRANSCRIPT_FORMATS.join(", ")}`, type: "enum" }] });
      }
      const granularities = [...(form.fields.get("timestamp_granularities[]") ?? []), ...(form.fields.get("timestamp_granularities") ?? [])];
      const words = granularities.includes("word");
      const language = formValue(form, "language") ?? "en";
      const baseUrl = baseUrlOf(request, ctx.config.publicUrl);
      const input = { audio_url: toDataUri(file.data, file.contentType), language, ...(words ? { word_timestamps: true } : {}) };
      const record = await runAppCall(ctx, { app: target, endpoint: endpointOf(target, "") as EndpointManifest, input, principal, baseUrl }, hangUpSignal(reply));
      const result = outputOf(record) as unknown as SpeechToTextResult;
      reply.header("x-request-id", record.id);
      if (format === "text") return reply.type("text/plain; charset=utf-8").send(result.text);
      if (format === "srt") return reply.type("text/plain; charset=utf-8").send(srt(result));
      if (format === "vtt") return reply.type("text/vtt; charset=utf-8").send(vtt(result));
      if (format === "json") return { text: result.text };
      const duration = result.chunks.at(-1)?.timestamp[1] ?? 0;
      return verboseJson(result, { language: language === "en" ? "english" : language, duration, words, segments: granularities.length === 0 || granularities.includes("segment") });
    });

    const images = async (request: FastifyRequest, reply: FastifyReply, edit: { image: { data: Buffer; contentType: string } } | null, body: z.output<typeof ImageBody>): Promise<unknown> => {
      const principal = requirePrincipal(request);
      const path = edit ? "image-to-image" : "";
      const target = models.resolve(body.model, (a) => endpointOf(a, path) !== undefined, edit ? "an image-editing model" : "an image model");
      const baseUrl = baseUrlOf(request, ctx.config.publicUrl);
      const size = sizeOf(body.size);
      const input = {
        prompt: body.prompt,
        num_images: body.n,
        ...(size ? { image_size: size } : {}),
        ...(body.seed !== undefined ? { seed: body.seed } : {}),
        ...(body.output_format ? { output_format: body.output_format === "jpeg" ? "jpeg" : "png" } : { output_format: "png" }),
        // The images come back inline when the caller wants them inline: nothing is stored.
        ...(body.response_format === "b64_json" ? { sync_mode: true } : {}),
        ...(edit ? { image_url: toDataUri(edit.image.data, edit.image.contentType) } : {}),
      };
      const record = await runAppCall(ctx, { app: target, endpoint: endpointOf(target, path) as EndpointManifest, input, principal, baseUrl }, hangUpSignal(reply));
      const output = outputOf(record) as { images?: { url: string }[]; seed?: number };
      const data = await Promise.all(
        (output.images ?? []).map(async (image) =>
          body.response_format === "b64_json" ? { b64_json: (await fileBytes(ctx, image.url, record.baseUrl)).toString("base64") } : { url: image.url },
        ),
      );
      reply.header("x-request-id", record.id);
      return { created: Math.floor((record.finishedAt ?? Date.now()) / 1000), data, ...(output.seed !== undefined ? { seed: output.seed } : {}) };
    };

    scope.post("/images/generations", async (request, reply) => images(request, reply, null, validatedBody(ImageBody, request.body)));

    scope.post("/images/edits", { config: { wholeFormBytes: MAX_UPLOAD_BYTES } }, async (request, reply) => {
      requirePrincipal(request);
      const form = await readFormData(request, { maxFileBytes: MAX_UPLOAD_BYTES });
      const image = requireFile(form, "image", "image[]");
      const fields: Record<string, unknown> = {};
      for (const name of ["model", "prompt", "size", "response_format", "output_format", "quality", "user", "background"]) {
        const value = formValue(form, name);
        if (value !== undefined) fields[name] = value;
      }
      for (const name of ["n", "seed"]) {
        const value = formValue(form, name);
        if (value !== undefined) fields[name] = Number(value);
      }
      return images(request, reply, { image }, validatedBody(ImageBody, fields));
    });
  });
}
