/**
 * OpenAI's API at /openai/v1 (src/gateway/routes/openai.ts) with the official `openai` SDK, unchanged
 * but for its base URL, on a real server with real models: the models list with OpenAI's aliases;
 * speech, then the transcription of that speech (json, verbose_json with segments and words, srt,
 * vtt, text); speech in every format; images from the tiny pulled diffusion model (url and
 * b64_json); errors raised as the SDK's own classes (404 unknown model, 400 bad input, 401, 429 with
 * Retry-After under a key's limit); and each call one request in /v1/requests and usage.
 * @module
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI, { toFile } from "openai";
import sharp from "sharp";
import { ADMIN_KEY, ECHO_APP, REPO_ROOT, http, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { pullTinySdTurbo } from "../helpers/tiny-text-to-image.js";
import { wordErrorRate } from "../helpers/word-error-rate.js";

const SENTENCE = "the quick brown fox jumps over the lazy dog";
const app = (name: string): string => path.join(REPO_ROOT, `src/apps/${name}/app.ts`);

describe("OpenAI's API with the official openai SDK", { timeout: 180_000 }, () => {
  let dir: string;
  let p: TestPlatform;
  let openai: OpenAI;
  let speechWav: Buffer;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "darkroom-openai-"));
    const dataDir = await pullTinySdTurbo(dir);
    p = await startTestPlatform({ dataDir, appModules: [ECHO_APP, app("text-to-speech"), app("speech-to-text"), app("text-to-image")] });
    openai = new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${p.url}/openai/v1`, maxRetries: 0 });
  });

  after(async () => {
    await p?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lists the apps and the aliases unchanged OpenAI code sends", async () => {
    const ids: string[] = [];
    for await (const model of openai.models.list()) {
      assert.equal(model.object, "model");
      ids.push(model.id);
    }
    for (const id of ["whisper-1", "gpt-4o-transcribe", "tts-1", "gpt-image-1", "dall-e-3", "darkroom/echo", "darkroom/sd-turbo", "darkroom/speech-to-text"]) assert.ok(ids.includes(id), `${id} in ${ids.join(", ")}`);
    const one = await openai.models.retrieve("whisper-1");
    assert.deepEqual([one.id, one.owned_by], ["whisper-1", "darkroom"]);
  });

  it("speaks, then transcribes its own speech back to the sentence, as one request each in /v1/requests and usage", async () => {
    const spoken = await openai.audio.speech.create({ model: "tts-1", voice: "alloy", input: SENTENCE, response_format: "wav" });
    assert.equal(spoken.headers.get("content-type"), "audio/wav");
    speechWav = Buffer.from(await spoken.arrayBuffer());
    assert.equal(speechWav.subarray(0, 4).toString("latin1"), "RIFF");
    assert.ok(speechWav.length > 16_000, `${speechWav.length} bytes of speech`);

    const { data: transcript, response } = await openai.audio.transcriptions.create({ file: await toFile(speechWav, "speech.wav", { type: "audio/wav" }), model: "whisper-1" }).withResponse();
    const wer = wordErrorRate(SENTENCE, transcript.text);
    assert.ok(wer <= 0.5, `WER ${wer} for ${JSON.stringify(transcript.text)}`);

    const requestId = response.headers.get("x-request-id") ?? "";
    const record = await http(p, "GET", `/v1/requests/${requestId}`);
    assert.deepEqual([record.status, record.body.app_id, record.body.state], [200, "darkroom/speech-to-text", "SUCCEEDED"]);
    const usage = await http(p, "GET", "/v1/usage?app=darkroom/speech-to-text");
    assert.ok((usage.body.usage as { request_id: string }[]).some((u) => u.request_id === requestId), "in usage");
  });

  it("gives verbose_json with segments and words, and srt, vtt and text", async () => {
    const file = async (): Promise<File> => await toFile(speechWav, "speech.wav", { type: "audio/wav" });
    const verbose = await openai.audio.transcriptions.create({ file: await file(), model: "whisper-1", response_format: "verbose_json", timestamp_granularities: ["word", "segment"] });
    assert.equal(verbose.language, "english");
    assert.ok(verbose.duration > 1, `duration ${verbose.duration}`);
    assert.ok((verbose.segments ?? []).length >= 1);
    for (const segment of verbose.segments ?? []) assert.ok(segment.start < segment.end, JSON.stringify(segment));
    const words = verbose.words ?? [];
    assert.ok(words.length >= 4, JSON.stringify(words));
    assert.deepEqual(words.map((w) => w.word).join(" "), verbose.text, "the words make the text");
    for (let i = 1; i < words.length; i++) assert.ok((words[i]?.start ?? 0) >= (words[i - 1]?.end ?? 0) - 0.01, "in order");

    const srtText = await openai.audio.transcriptions.create({ file: await file(), model: "whisper-1", response_format: "srt" });
    assert.match(srtText, /^1\n\d\d:\d\d:\d\d,\d\d\d --> \d\d:\d\d:\d\d,\d\d\d\n/);
    const vttText = await openai.audio.transcriptions.create({ file: await file(), model: "whisper-1", response_format: "vtt" });
    assert.match(vttText, /^WEBVTT\n\n\d\d:\d\d:\d\d\.\d\d\d --> /);
    const plain = await openai.audio.transcriptions.create({ file: await file(), model: "whisper-1", response_format: "text" });
    assert.equal(plain.trim(), verbose.text);
  });

  it("speaks in every response format, each what its name says", async () => {
    const bytesOf = async (format: "mp3" | "opus" | "aac" | "flac" | "pcm"): Promise<Buffer> =>
      Buffer.from(await (await openai.audio.speech.create({ model: "tts-1", voice: "onyx", input: "hello there", response_format: format })).arrayBuffer());
    const mp3 = await bytesOf("mp3");
    assert.ok(mp3.subarray(0, 3).toString("latin1") === "ID3" || (mp3[0] === 0xff && ((mp3[1] ?? 0) & 0xe0) === 0xe0), "an MP3 frame or ID3 tag");
    assert.equal((await bytesOf("opus")).subarray(0, 4).toString("latin1"), "OggS");
    assert.equal((await bytesOf("flac")).subarray(0, 4).toString("latin1"), "fLaC");
    const aac = await bytesOf("aac");
    assert.ok(aac[0] === 0xff && ((aac[1] ?? 0) & 0xf0) === 0xf0, "an ADTS header");
    const pcm = await bytesOf("pcm");
    assert.equal(pcm.length % 2, 0);
    const seconds = pcm.length / 2 / 24_000;
    assert.ok(seconds > 0.3 && seconds < 5, `${seconds.toFixed(2)} s of 24 kHz mono`);
  });

  it("makes images from a prompt with the pulled model, as URLs or inline, the same seed the same pixels", async () => {
    // `seed` is a Darkroom addition; the SDK passes a field it does not know on as it is.
    const inline = (await openai.images.generate({ model: "gpt-image-1", prompt: "a red cat", size: "64x64", n: 2, response_format: "b64_json", seed: 7 } as OpenAI.Images.ImageGenerateParamsNonStreaming)) as OpenAI.Images.ImagesResponse;
    assert.equal(inline.data?.length, 2);
    const first = Buffer.from(inline.data?.[0]?.b64_json ?? "", "base64");
    const meta = await sharp(first).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["png", 64, 64]);
    const linked = (await openai.images.generate({ model: "dall-e-3", prompt: "a red cat", size: "64x64", seed: 7 } as OpenAI.Images.ImageGenerateParamsNonStreaming)) as OpenAI.Images.ImagesResponse;
    const url = linked.data?.[0]?.url ?? "";
    const fetched = Buffer.from(await (await fetch(url)).arrayBuffer());
    const [a, b] = await Promise.all([sharp(first).raw().toBuffer(), sharp(fetched).raw().toBuffer()]);
    assert.ok(a.equals(b), "seed 7 gives the same image through either format");
    assert.ok(linked.created > 1_700_000_000);
  });

  it("edits an image (image to image) from a multipart upload", async () => {
    const start = await sharp({ create: { width: 64, height: 64, channels: 3, background: "#2050d0" } }).png().toBuffer();
    const edited = (await openai.images.edit({ model: "gpt-image-1", image: await toFile(start, "start.png", { type: "image/png" }), prompt: "a blue square", size: "64x64", response_format: "b64_json" } as OpenAI.Images.ImageEditParamsNonStreaming)) as OpenAI.Images.ImagesResponse;
    const out = Buffer.from(edited.data?.[0]?.b64_json ?? "", "base64");
    const meta = await sharp(out).metadata();
    assert.deepEqual([meta.width, meta.height], [64, 64]);
  });

  it("raises the SDK's own errors: 404 for an unknown model, 400 for bad input, 401 for a wrong key", async () => {
    await assert.rejects(openai.audio.speech.create({ model: "tts-9000", voice: "alloy", input: "x" }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.NotFoundError, String(err));
      assert.equal(err.code, "model_not_found");
      assert.match(err.message, /tts-9000/);
      return true;
    });
    await assert.rejects(openai.audio.speech.create({ model: "darkroom/echo", voice: "alloy", input: "x" }), OpenAI.NotFoundError, "echo is no speech model");
    await assert.rejects(openai.audio.speech.create({ model: "tts-1", voice: "nobody", input: "x" }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.BadRequestError, String(err));
      assert.equal(err.param, "voice");
      return true;
    });
    await assert.rejects(openai.audio.speech.create({ model: "tts-1", voice: "alloy", input: "x", speed: 9 }), (err: unknown) => err instanceof OpenAI.BadRequestError && err.param === "speed");
    const stranger = new OpenAI({ apiKey: "dk_nobody:wrong-secret", baseURL: `${p.url}/openai/v1`, maxRetries: 0 });
    await assert.rejects(stranger.models.list(), OpenAI.AuthenticationError);
  });

  it("applies the key's limits: 429 with Retry-After once its requests per minute are spent", async () => {
    const created = await http(p, "POST", "/v1/keys", { name: "openai limited", scope: "api", limits: { requests_per_minute: 1 } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const limited = new OpenAI({ apiKey: created.body.key as string, baseURL: `${p.url}/openai/v1`, maxRetries: 0 });
    await limited.audio.speech.create({ model: "tts-1", voice: "alloy", input: "one" });
    await assert.rejects(limited.audio.speech.create({ model: "tts-1", voice: "alloy", input: "two" }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.RateLimitError, String(err));
      assert.ok(Number(err.headers?.get("retry-after")) >= 1);
      return true;
    });
  });
});
