/**
 * `darkroom/speech-to-text`: the parser of pocketsphinx's word timings, and a real transcription of
 * the speech fixture through the platform, scored by word error rate against the known sentence.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { parsePocketsphinx } from "../../src/apps/speech-to-text/app.js";
import { checkPrograms, POCKETSPHINX } from "../../src/media/audio/process.js";
import { wordErrorRate } from "../helpers/word-error-rate.js";
import { FIXTURES, http, REPO_ROOT, startTestPlatform, type TestPlatform } from "../helpers/platform.js";

const APP = "darkroom/speech-to-text";
const FIXTURE_TEXT = "the quick brown fox jumps over the lazy dog welcome to the media platform";


describe("speech-to-text helpers", () => {
  it("computes word error rate", () => {
    assert.equal(wordErrorRate("a b c d", "a b c d"), 0);
    assert.equal(wordErrorRate("a b c d", "a x c"), 0.5);
  });

  it("parses pocketsphinx word timings into phrases, dropping markers and fillers", () => {
    const out = [
      "the quick brown",
      "<s> 0.000 0.140 1.000100",
      "the 0.150 0.270 0.556456",
      "quick 0.280 0.550 0.179389",
      "[NOISE] 0.560 0.700 1.0",
      "brown 0.710 0.900 0.636130",
      "<sil> 0.910 0.950 0.5",
      "to(2) 0.960 1.100 0.49",
      "</s> 1.110 1.200 1.000000",
      "fox",
      "<s> 3.000 3.100 1.0",
      "fox 3.110 3.400 1.0",
      "++BREATH++ 3.410 3.500 1.0",
      "</s> 3.510 3.600 1.0",
    ].join("\n");
    const parsed = parsePocketsphinx(out);
    assert.equal(parsed.text, "the quick brown to fox");
    assert.deepEqual(parsed.chunks, [
      { timestamp: [0.15, 0.55], text: "the quick" },
      { timestamp: [0.71, 0.9], text: "brown" },
      { timestamp: [0.96, 1.1], text: "to" },
      { timestamp: [3.11, 3.4], text: "fox" },
    ]);
    assert.deepEqual(
      parsed.words.map((w) => [w.word, w.start, w.end]).at(-1),
      ["fox", 3.11, 3.4],
      "every word with its times, fillers and pauses left out",
    );
    assert.equal(parsed.words.length, 5);
  });

  it("reports pocketsphinx as missing with a reason and an apt remedy when POCKETSPHINX_PATH is wrong", async () => {
    assert.equal(await checkPrograms([POCKETSPHINX]), null);
    const saved = process.env["POCKETSPHINX_PATH"];
    process.env["POCKETSPHINX_PATH"] = "/nonexistent";
    try {
      const missing = await checkPrograms([POCKETSPHINX]);
      assert.ok(missing);
      assert.match(missing.reason, /pocketsphinx_continuous not found at POCKETSPHINX_PATH=\/nonexistent/);
      assert.match(missing.remedy, /apt-get install pocketsphinx pocketsphinx-en-us/);
    } finally {
      if (saved === undefined) delete process.env["POCKETSPHINX_PATH"];
      else process.env["POCKETSPHINX_PATH"] = saved;
    }
  });
});

describe("darkroom/speech-to-text through the platform", () => {
  let p: TestPlatform;
  let speech: string;
  before(async () => {
    p = await startTestPlatform({ appModules: [path.join(REPO_ROOT, "src/apps/speech-to-text/app.ts")] });
    speech = `data:audio/wav;base64,${(await readFile(path.join(FIXTURES, "speech-16k.wav"))).toString("base64")}`;
  });
  after(async () => {
    await p.close();
  });

  it("transcribes the speech fixture with a low word error rate and increasing phrase times", async () => {
    const started = Date.now();
    const res = await http(p, "POST", `/run/${APP}`, { audio_url: speech });
    const took = Date.now() - started;
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const wer = wordErrorRate(FIXTURE_TEXT, res.body.text);
    console.log(`speech-to-text fixture: WER ${wer.toFixed(3)} in ${took} ms: ${JSON.stringify(res.body.text)}`);
    assert.ok(wer <= 0.35, `WER ${wer} for ${JSON.stringify(res.body.text)}`);
    assert.deepEqual(res.body.inferred_languages, ["en"]);

    const chunks = res.body.chunks as { timestamp: [number, number]; text: string }[];
    assert.ok(chunks.length >= 1);
    assert.equal(chunks.map((c) => c.text).join(" "), res.body.text);
    let last = -1;
    for (const { timestamp: [start, end] } of chunks) {
      assert.ok(start >= 0 && start > last && end > start && end <= 5, `chunk times increase within 5 s: ${JSON.stringify(chunks)}`);
      last = end;
    }

    const usage = await http(p, "GET", `/v1/usage?app=${APP}`);
    assert.ok(usage.body.usage.some((u: { billable_units: number }) => Math.abs(u.billable_units - 5) < 0.1), "bills the seconds of audio");
  });

  it("refuses languages other than English, and undecodable input, with 422s", async () => {
    const fr = await http(p, "POST", `/run/${APP}`, { audio_url: speech, language: "fr" });
    assert.equal(fr.status, 422, JSON.stringify(fr.body));
    assert.deepEqual(fr.body.detail[0].loc, ["body", "language"]);
    assert.match(fr.body.detail[0].msg, /only English models are installed/);

    const junk = await http(p, "POST", `/run/${APP}`, { audio_url: `data:audio/wav;base64,${Buffer.from("not audio at all").toString("base64")}` });
    assert.equal(junk.status, 422, JSON.stringify(junk.body));
    assert.deepEqual(junk.body.detail[0].loc, ["body", "audio_url"]);
  });

  it("refuses audio over 10 minutes with a 422 naming the limit", async () => {
    // 11 minutes of 8 kHz u-law silence is 5 MB: cheap to send, over the length limit.
    const seconds = 660;
    const header = Buffer.alloc(44);
    const dataBytes = seconds * 8000;
    header.write("RIFF", 0);
    header.writeUInt32LE(36 + dataBytes, 4);
    header.write("WAVEfmt ", 8);
    header.writeUInt32LE(16, 16);
    header.writeUInt16LE(7, 20); // mu-law
    header.writeUInt16LE(1, 22);
    header.writeUInt32LE(8000, 24);
    header.writeUInt32LE(8000, 28);
    header.writeUInt16LE(1, 32);
    header.writeUInt16LE(8, 34);
    header.write("data", 36);
    header.writeUInt32LE(dataBytes, 40);
    const wav = Buffer.concat([header, Buffer.alloc(dataBytes, 0xff)]);
    const res = await http(p, "POST", `/run/${APP}`, { audio_url: `data:audio/wav;base64,${wav.toString("base64")}` });
    assert.equal(res.status, 422, JSON.stringify(res.body));
    assert.deepEqual(res.body.detail[0].loc, ["body", "audio_url"]);
    assert.match(res.body.detail[0].msg, /10 minutes/);
  });
});
