import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import { loadUpscaleModel } from "./src/apps/upscale/model-loader.js";
import { upscaleRaw } from "./src/apps/upscale/tiled-upscale.js";
const { data, info } = await sharp("../shared/fixtures/astronaut.png").resize(256, 256).removeAlpha().raw().toBuffer({ resolveWithObject: true });
const img = { data: new Uint8Array(data), width: info.width, height: info.height };
const m = await loadUpscaleModel("slim", Number(process.argv[2] ?? 4) as 4);
await upscaleRaw(m, { data: img.data.subarray(0, 64*64*3), width: 64, height: 64 });
for (const ts of [64, 96, 128, 192, 256]) {
  const t = performance.now();
  await upscaleRaw(m, img, { tileSize: ts, overlap: 10 });
  const mem = (tf.memory() as any);
  console.log("tile", ts, Math.round(performance.now() - t), "ms", "tensors", mem.numTensors, "rss MB", Math.round(process.memoryUsage().rss / 1e6));
}
