/**
 * `darkroom/text-to-speech`: real synthesis through the platform, checked by ffprobe, by the
 * loudness of the samples and by a round trip through `darkroom/speech-to-text`; the limits,
 * cancellation that leaves no flite behind, and the availability check.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { probeAudio } from "../../src/media/audio/audio-file.js";
import { checkPrograms, FLITE } from "../../src/media/audio/process.js";
import textToSpeech from "../../src/apps/text-to-speech/app.js";
import { eventually, http, REPO_ROOT, startTestPlatform, type TestPlatform } from "../helpers/platform.js";
import { processMatches } from "../helpers/processes.js";
import { cancelAndWait, submit, waitFor } from "../helpers/queue.js";
import { wordErrorRate } from "../helpers/word-error-rate.js";

const APP = "darkroom/text-to-speech";
const STT = "darkroom/speech-to-text";
const SENTENCE = "The quick brown fox jumps over the lazy dog";


/** RMS of a 16-bit PCM WAV's samples, 0..1, found by walking the RIFF chunks to `data`. */
function wavRms(wav: Buffer): number {
  assert.equal(wav.toString("ascii", 0, 4), "RIFF");
  let offset = 12;
  while (offset + 8 <= wav.length) {
    const id = wav.toString("ascii", offset, offset + 4);
    const size = wav.readUInt32LE(offset + 4);
    if (id === "data") {
      const end = Math.min(wav.length, offset + 8 + size);
      let sum = 0;
      let n = 0;
      for (let i = offset + 8; i + 1 < end; i += 2, n++) sum += (wav.readInt16LE(i) / 32768) ** 2;
      return Math.sqrt(sum / Math.max(1, n));
    }
    offset += 8 + size + (size & 1);
  }
  throw new Error("no data chunk");
}

describe("text-to-speech availability", () => {
  it("reports flite as missing with a reason and remedy when FLITE_PATH is wrong, and present again once restored", async () => {
    const check = textToSpeech.checkAvailability!;
    assert.equal(await check(), null);
    const saved = process.env["FLITE_PATH"];
    process.env["FLITE_PATH"] = "/nonexistent";
    try {
      const missing = await check();
      assert.ok(missing, "a missing flite is reported");
      assert.match(missing.reason, /flite not found at FLITE_PATH=\/nonexistent/);
      assert.match(missing.remedy, /apt-get install flite/);
      assert.deepEqual(await checkPrograms([FLITE]), missing);
    } finally {
      if (saved === undefined) delete process.env["FLITE_PATH"];
      else process.env["FLITE_PATH"] = saved;
    }
    assert.equal(await check(), null);
  });
});

describe("darkroom/text-to-speech through the platform", () => {
  let p: TestPlatform;
  let work: string;
  before(async () => {
    // Both apps in one platform: the round trip transcribes the synthesised speech.
    p = await startTestPlatform({
      appModules: [path.join(REPO_ROOT, "src/apps/text-to-speech/app.ts"), path.join(REPO_ROOT, "src/apps/speech-to-text/app.ts")],
    });
    work = await mkdtemp(path.join(tmpdir(), "darkroom-tts-test-"));
  });
  after(async () => {
    await p.close();
    await rm(work, { recursive: true, force: true });
  });

  /** Runs the app and returns the response's audio record, its bytes and ffprobe's view of them. */
  async function synthesise(input: Record<string, unknown>, name: string) {
    const res = await http(p, "POST", `/run/${APP}`, input);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const audio = res.body.audio;
    const bytes = Buffer.from(await (await fetch(audio.url)).arrayBuffer());
    assert.equal(bytes.length, audio.file_size);
    const file = path.join(work, name);
    await writeFile(file, bytes);
    return { audio, bytes, info: await probeAudio(file) };
  }

  let wavBytes: Buffer;
  let wavDuration = 0;

  it("speaks a sentence with slt as an audible 16 kHz WAV of plausible length", async () => {
    const started = Date.now();
    const { audio, bytes, info } = await synthesise({ text: SENTENCE, voice: "slt" }, "slt.wav");
    const took = Date.now() - started;
    assert.equal(audio.content_type, "audio/wav");
    assert.equal(info.codec, "pcm_s16le");
    assert.deepEqual([audio.sample_rate, audio.channels], [info.sample_rate, info.channels]);
    assert.deepEqual([info.sample_rate, info.channels], [16000, 1]);
    assert.ok(audio.duration >= 1.5 && audio.duration <= 5, `duration ${audio.duration}`);
    assert.ok(Math.abs(audio.duration - info.duration) < 0.01);
    const rms = wavRms(bytes);
    console.log(`text-to-speech slt: ${audio.duration} s of audio, RMS ${rms.toFixed(4)}, ${took} ms`);
    assert.ok(rms > 0.02, `the speech is not silent (RMS ${rms})`);
    wavBytes = bytes;
    wavDuration = audio.duration;

    const usage = await http(p, "GET", `/v1/usage?app=${APP}`);
    assert.ok(usage.body.usage.some((u: { billable_units: number }) => u.billable_units === SENTENCE.length), "bills the characters");
  });

  it("encodes MP3 and Opus of about the same length", async () => {
    const mp3 = await synthesise({ text: SENTENCE, output_format: "mp3" }, "slt.mp3");
    assert.equal(mp3.audio.content_type, "audio/mpeg");
    assert.equal(mp3.info.codec, "mp3");
    const opus = await synthesise({ text: SENTENCE, output_format: "opus" }, "slt.opus");
    assert.equal(opus.audio.content_type, "audio/ogg");
    assert.equal(opus.info.codec, "opus");
    for (const { audio } of [mp3, opus]) {
      assert.ok(Math.abs(audio.duration - wavDuration) < 0.15, `${audio.content_type} lasts ${audio.duration} s vs ${wavDuration} s`);
    }
  });

  it("speaks faster at speed 2 than at speed 1", async () => {
    const fast = await synthesise({ text: SENTENCE, speed: 2 }, "fast.wav");
    console.log(`text-to-speech speed 2: ${fast.audio.duration} s vs ${wavDuration} s at speed 1`);
    assert.ok(fast.audio.duration < wavDuration * 0.75, `${fast.audio.duration} s at speed 2 vs ${wavDuration} s`);
  });

  it("round-trips through speech-to-text", async () => {
    const res = await http(p, "POST", `/run/${STT}`, { audio_url: `data:audio/wav;base64,${wavBytes.toString("base64")}` });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const wer = wordErrorRate(SENTENCE, res.body.text);
    console.log(`text-to-speech round trip: WER ${wer.toFixed(3)}: ${JSON.stringify(res.body.text)}`);
    assert.ok(wer <= 0.5, `WER ${wer} for ${JSON.stringify(res.body.text)}`);
  });

  it("refuses text over 5000 characters, and unknown voices, with 422s", async () => {
    const long = await http(p, "POST", `/run/${APP}`, { text: "a".repeat(5001) });
    assert.equal(long.status, 422, JSON.stringify(long.body));
    assert.deepEqual(long.body.detail[0].loc, ["body", "text"]);
    assert.match(JSON.stringify(long.body.detail), /5000/);

    const voice = await http(p, "POST", `/run/${APP}`, { text: "hi", voice: "awb_time" });
    assert.equal(voice.status, 422, JSON.stringify(voice.body));
  });

  it("cancels a long synthesis: the request ends cancelled at once and flite is killed", async () => {
    // 5000 characters at half speed keep flite busy for over 10 s.
    const text = "The quick brown fox jumps over the lazy dog. ".repeat(112).slice(0, 5000);
    const id = await submit(p, APP, { text, speed: 0.5 });
    await waitFor(p, APP, id, "IN_PROGRESS");
    // flite's command line names the per-request temp folder, which carries the request id.
    await eventually(() => processMatches(id), 15_000, 50);

    const took = await cancelAndWait(p, APP, id);
    console.log(`text-to-speech cancel: request ended ${took} ms after the cancel`);
    assert.ok(took < 1400, `flite is killed within the grace period (${took} ms)`);
    assert.equal(await processMatches(id), false, "no flite of this request is left");
    await eventually(() => !readdirSync(tmpdir()).some((d) => d.includes(id)), 5000);
  });
});
