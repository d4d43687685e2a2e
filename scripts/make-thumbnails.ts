/**
 * Makes the Playground gallery's thumbnails from what the apps make: each app's handler runs here on
 * the test media (public-domain and CC0 photos, test/fixtures/media/README.md), and its output
 * becomes a 480×300 WebP in web/public/thumbnails/, which the Vite build copies into web/dist.
 *
 *   node --import tsx scripts/make-thumbnails.ts [app ...]
 *
 * The files are committed; run this again when an app's output changes. Apps whose output is not a
 * picture (echo, the platform-only fixtures) keep the gallery's category glyph.
 * @module
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { directContext } from "../bench/lib/direct-context.js";
import { importApp } from "../src/runtime/app-loader.js";
import type { HandlerContext } from "../src/runtime/sdk.js";
import { createLocalStorage } from "../src/storage/local-storage.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const FIXTURES = path.resolve(ROOT, "test/fixtures/media");
const OUT = path.join(ROOT, "web/public/thumbnails");
const WIDTH = 480;
const HEIGHT = 300;

const work = mkdtempSync(path.join(os.tmpdir(), "darkroom-thumbs-"));
const storage = createLocalStorage({ root: work });

function fixtureUri(name: string, type: string): string {
  return `data:${type};base64,${readFileSync(path.join(FIXTURES, name)).toString("base64")}`;
}

async function bufferUri(data: Buffer, type: string): Promise<string> {
  return `data:${type};base64,${data.toString("base64")}`;
}

/** The bytes of an output file: from the run's local storage (the handler stored it there). */
async function outputBytes(file: { url: string }): Promise<Buffer> {
  if (file.url.startsWith("data:")) return Buffer.from(file.url.slice(file.url.indexOf(",") + 1), "base64");
  const key = decodeURIComponent(new URL(file.url).pathname.replace(/^\/files\//, ""));
  const object = await storage.get(key);
  if (!object) throw new Error(`output ${file.url} was not stored`);
  const chunks: Buffer[] = [];
  for await (const chunk of object.body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function run(app: string, input: Record<string, unknown>): Promise<Record<string, unknown>> {
  const defined = await importApp(path.join(ROOT, `src/apps/${app}/app.ts`));
  const state = defined.setup ? await defined.setup(() => undefined) : undefined;
  const endpoint = defined.endpoints.find((e) => e.path === "");
  if (!endpoint) throw new Error(`${app} has no root endpoint`);
  const handler = endpoint.handler as (i: unknown, c: HandlerContext) => Promise<Record<string, unknown>>;
  return handler(endpoint.input.parse(input), directContext(storage, `thumb-${app}`, state));
}

const cover = (input: Buffer | sharp.Sharp): sharp.Sharp => (Buffer.isBuffer(input) ? sharp(input) : input).resize(WIDTH, HEIGHT, { fit: "cover" });

/** Transparent pixels shown on a light checkerboard, as image editors do. */
async function onCheckerboard(png: Buffer): Promise<Buffer> {
  const cell = 20;
  const rects: string[] = [];
  for (let y = 0; y < HEIGHT; y += cell) for (let x = 0; x < WIDTH; x += cell) if ((x / cell + y / cell) % 2 === 0) rects.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}"/>`);
  const board = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}"><rect width="100%" height="100%" fill="#f4f4f4"/><g fill="#dcdcdc">${rects.join("")}</g></svg>`);
  const cut = await sharp(png).resize(WIDTH, HEIGHT, { fit: "contain", background: { r: 0, g: 0, b: 0, alpha: 0 } }).png().toBuffer();
  return sharp(board).composite([{ input: cut }]).webp({ quality: 82 }).toBuffer();
}

/** A waveform of 16-bit PCM WAV audio: min and max per column. */
async function waveform(wav: Buffer): Promise<Buffer> {
  let offset = 12;
  let data: Buffer | null = null;
  while (offset + 8 <= wav.length) {
    const id = wav.toString("ascii", offset, offset + 4);
    const size = wav.readUInt32LE(offset + 4);
    if (id === "data") data = wav.subarray(offset + 8, offset + 8 + size);
    offset += 8 + size + (size % 2);
  }
  if (!data) throw new Error("no data chunk in the WAV");
  const samples = data.length >> 1;
  const bars: string[] = [];
  const mid = HEIGHT / 2;
  for (let x = 0; x < WIDTH; x += 3) {
    const from = Math.floor((x / WIDTH) * samples);
    const to = Math.max(from + 1, Math.floor(((x + 3) / WIDTH) * samples));
    let peak = 0;
    for (let i = from; i < to && i < samples; i++) peak = Math.max(peak, Math.abs(data.readInt16LE(i * 2)));
    const h = Math.max(2, (peak / 32768) * (HEIGHT * 0.8));
    bars.push(`<rect x="${x}" y="${(mid - h / 2).toFixed(1)}" width="2" height="${h.toFixed(1)}" rx="1"/>`);
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}"><defs><linearGradient id="g" x1="0" x2="1"><stop offset="0" stop-color="#7c5cff"/><stop offset="1" stop-color="#22b3c9"/></linearGradient></defs><rect width="100%" height="100%" fill="#14161c"/><g fill="url(#g)">${bars.join("")}</g></svg>`;
  return sharp(Buffer.from(svg)).webp({ quality: 85 }).toBuffer();
}

/** A frame of a video at `seconds`, through Debian's ffmpeg. */
function videoFrame(video: Buffer, seconds: number): Buffer {
  const file = path.join(work, `frame-${Date.now()}.mp4`);
  writeFileSync(file, video);
  return execFileSync("ffmpeg", ["-v", "error", "-ss", String(seconds), "-i", file, "-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "-"], { maxBuffer: 64 * 1024 * 1024 });
}

const THUMBNAILS: Record<string, () => Promise<Buffer>> = {
  // Before | after: the cat's face at its input size (nearest neighbour) beside ESRGAN ×4.
  upscale: async () => {
    const crop = await sharp(path.join(FIXTURES, "chelsea.png")).extract({ left: 150, top: 30, width: 120, height: 75 }).png().toBuffer();
    const out = await run("upscale", { image_url: await bufferUri(crop, "image/png"), scale: 4 });
    const upscaled = await outputBytes(out["image"] as { url: string });
    const half = WIDTH / 2;
    const before = await sharp(crop).resize(WIDTH, HEIGHT, { kernel: "nearest", fit: "cover" }).extract({ left: 0, top: 0, width: half, height: HEIGHT }).toBuffer();
    const after = await cover(upscaled).extract({ left: half, top: 0, width: half, height: HEIGHT }).toBuffer();
    const divider = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="4" height="${HEIGHT}"><rect width="4" height="${HEIGHT}" fill="#fff"/></svg>`);
    return sharp({ create: { width: WIDTH, height: HEIGHT, channels: 3, background: "#000" } })
      .composite([{ input: before, left: 0, top: 0 }, { input: after, left: half, top: 0 }, { input: divider, left: half - 2, top: 0 }])
      .webp({ quality: 82 })
      .toBuffer();
  },
  "remove-background": async () => {
    const out = await run("remove-background", { image_url: fixtureUri("astronaut.png", "image/png") });
    return onCheckerboard(await outputBytes(out["image"] as { url: string }));
  },
  "text-to-speech": async () => {
    const out = await run("text-to-speech", { text: "Hello from Darkroom. Every image, voice and video, on your own machines." });
    return waveform(await outputBytes(out["audio"] as { url: string }));
  },
  // What it transcribes: the fixture's speech.
  "speech-to-text": async () => waveform(readFileSync(path.join(FIXTURES, "speech-16k.wav"))),
  "image-to-video": async () => {
    const out = await run("image-to-video", { image_url: fixtureUri("coffee.png", "image/png"), duration: 2, fps: 12 });
    return cover(videoFrame(await outputBytes(out["video"] as { url: string }), 1.5)).webp({ quality: 82 }).toBuffer();
  },
};

const wanted = process.argv.slice(2);
mkdirSync(OUT, { recursive: true });
try {
  for (const [app, make] of Object.entries(THUMBNAILS)) {
    if (wanted.length > 0 && !wanted.includes(app)) continue;
    const started = performance.now();
    const webp = await make();
    writeFileSync(path.join(OUT, `${app}.webp`), webp);
    process.stderr.write(`${app}: ${webp.length} bytes in ${Math.round(performance.now() - started)} ms\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
