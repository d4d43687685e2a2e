import sharp from "sharp";
import { loadUpscaleModel } from "./src/apps/upscale/model-loader.js";
import { upscaleRaw } from "./src/apps/upscale/tiled-upscale.js";
const { data } = await sharp("../shared/fixtures/astronaut.png").resize(128, 128).removeAlpha().raw().toBuffer({ resolveWithObject: true });
for (const size of ["slim", "medium", "thick"] as const) {
  let t = performance.now();
  const m = await loadUpscaleModel(size, 4);
  const load = performance.now() - t;
  const times = [];
  for (let i = 0; i < (size === "thick" ? 1 : 3); i++) { t = performance.now(); await upscaleRaw(m, { data: new Uint8Array(data), width: 128, height: 128 }); times.push(Math.round(performance.now() - t)); }
  console.log(size, "load", Math.round(load), "ms; 128→512 ×4", times);
}
