/**
 * Face detection and description with `@vladmandic/face-api` (SSD MobileNet v1 detector, 68-point
 * landmarks, age/gender and expression nets, weights shipped in the package's `model/` folder) on the
 * tfjs wasm backend. Kept free of platform code so that tests and benchmarks can use it directly.
 * @module
 */
import { createRequire } from "node:module";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { packageDir } from "../../media/tfjs/package-dir.js";
import { initBackend } from "../../media/tfjs/wasm-backend.js";
import type * as FaceApi from "@vladmandic/face-api/dist/face-api.node-wasm.js";

// face-api ships CommonJS builds that are loaded by path.
const require = createRequire(import.meta.url);

export type FaceApiModule = typeof FaceApi;

/** The seven expressions the expression net scores, in a fixed order for the output. */
export const EMOTIONS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"] as const;
export type Emotion = (typeof EMOTIONS)[number];

export interface DetectedFace {
  /** Pixel coordinates in the analysed image. */
  box: { x: number; y: number; width: number; height: number };
  confidence: number;
  /** 68 [x, y] points in iBUG 300-W order (jaw 0–16, brows 17–26, nose 27–35, eyes 36–47, mouth 48–67). */
  landmarks: [number, number][];
  age: number;
  gender: "male" | "female";
  gender_confidence: number;
  emotion: Emotion;
  emotions: Record<Emotion, number>;
}

export interface RgbImage {
  /** Packed RGB, 3 bytes per pixel, row-major. */
  data: Uint8Array;
  width: number;
  height: number;
}

/** Folder holding the weight manifests and shards that face-api ships. */
export function modelDir(): string {
  return path.join(packageDir("@vladmandic/face-api"), "model");
}

/** The loaded nets; face-api keeps them as module singletons, so this is a handle to them. */
export interface FaceModels {
  readonly api: FaceApiModule;
  readonly backend: string;
}

let modelsReady: Promise<FaceModels> | undefined;

/**
 * Loads face-api and the four nets the app uses, once per process (the nets are module singletons in
 * face-api, so loading twice would only waste time). A failed load is forgotten so that it can be
 * retried.
 */
export function loadFaceModels(log: (message: string) => void = () => {}): Promise<FaceModels> {
  modelsReady ??= (async () => {
    const backend = await initBackend(log);
    // The node-wasm build has no exports map, so the subpath resolves; it is CommonJS, hence require.
    const api = require("@vladmandic/face-api/dist/face-api.node-wasm.js") as FaceApiModule;
    const dir = modelDir();
    await Promise.all([
      api.nets.ssdMobilenetv1.loadFromDisk(dir),
      api.nets.faceLandmark68Net.loadFromDisk(dir),
      api.nets.ageGenderNet.loadFromDisk(dir),
      api.nets.faceExpressionNet.loadFromDisk(dir),
    ]);
    return { api, backend };
  })().catch((err: unknown) => {
    modelsReady = undefined;
    throw err;
  });
  return modelsReady;
}

const round = (v: number, digits: number): number => Number(v.toFixed(digits));

/**
 * The detector regresses boxes that can reach past the border for faces cut off by it (a cat filling
 * a 451×300 photo got a 374 px tall box); callers draw and crop with the box, so it is clipped.
 */
function clipBox(
  box: { x: number; y: number; width: number; height: number },
  width: number,
  height: number,
): DetectedFace["box"] {
  const x0 = Math.max(0, box.x);
  const y0 = Math.max(0, box.y);
  const x1 = Math.min(width, box.x + box.width);
  const y1 = Math.min(height, box.y + box.height);
  return { x: round(x0, 1), y: round(y0, 1), width: round(x1 - x0, 1), height: round(y1 - y0, 1) };
}

/** Runs `step` with a tensor of the image and frees the tensor whatever happens. */
async function withImageTensor<T>(
  api: FaceApiModule,
  image: RgbImage,
  step: (t: FaceApi.tf.Tensor3D) => Promise<T>,
): Promise<T> {
  const tensor = api.tf.tensor3d(image.data, [image.height, image.width, 3], "int32");
  try {
    return await step(tensor);
  } finally {
    tensor.dispose();
  }
}

/**
 * Detects faces (highest confidence first, at most `maxFaces`), then describes each: landmarks,
 * age/gender and expressions. The stages are separate so that the caller can report progress and
 * cancellation is honoured between them.
 */
export async function analyseFaces(
  models: FaceModels,
  image: RgbImage,
  options: {
    minConfidence: number;
    maxFaces: number;
    /** Checked after detection: describing is the longer stage when there are several faces. */
    signal?: AbortSignal;
    /** Called between the detect and describe stages, with the number of faces kept. */
    onDetected?: (count: number) => void;
  },
): Promise<DetectedFace[]> {
  const { api } = models;
  return withImageTensor(api, image, async (tensor) => {
    const detectorOptions = new api.SsdMobilenetv1Options({ minConfidence: options.minConfidence, maxResults: options.maxFaces });
    const detections = (await api.detectAllFaces(tensor, detectorOptions))
      .sort((a, b) => b.score - a.score)
      .slice(0, options.maxFaces);
    options.onDetected?.(detections.length);
    options.signal?.throwIfAborted();
    if (detections.length === 0) return [];

    // The describe stage starts from these detections rather than from `detectAllFaces(...)
    // .withFaceLandmarks()`, which would run the detector a second time. face-api exports the task
    // class its own chain uses, so landmarks, alignment and the age/gender and expression nets run
    // exactly as in the usual chain.
    const parent = Promise.resolve(detections.map((d) => api.extendWithFaceDetection({}, d)));
    const described = await new api.DetectAllFaceLandmarksTask(parent, tensor, false)
      .withAgeAndGender()
      .withFaceExpressions();
    return described
      .map((f): DetectedFace => {
        const box = f.detection.box;
        const emotions = Object.fromEntries(EMOTIONS.map((e) => [e, round(f.expressions[e], 4)])) as Record<
          Emotion,
          number
        >;
        // Picked from the unrounded scores, so that rounding cannot turn a narrow lead into a tie.
        const emotion = EMOTIONS.reduce((best, e) => (f.expressions[e] > f.expressions[best] ? e : best), EMOTIONS[0]);
        return {
          box: clipBox(box, image.width, image.height),
          confidence: round(f.detection.score, 4),
          landmarks: f.landmarks.positions.map((p): [number, number] => [round(p.x, 1), round(p.y, 1)]),
          age: round(f.age, 1),
          gender: f.gender === api.Gender.FEMALE ? "female" : "male",
          gender_confidence: round(f.genderProbability, 4),
          emotion,
          emotions,
        };
      });
  });
}
