import sharp from "sharp";
import { loadUpscaleModel } from "./src/apps/upscale/model-loader.js";
import { upscaleRaw } from "./src/apps/upscale/tiled-upscale.js";
const m = await loadUpscaleModel("slim", 4);
const side = Number(process.argv[2]);
let t = performance.now();
if (side) await upscaleRaw(m, { data: new Uint8Array(side * side * 3), width: side, height: side }, { tileSize: side });
console.log("warmup", side, Math.round(performance.now() - t));
const { data, info } = await sharp("../shared/fixtures/astronaut.png").resize(128, 128).removeAlpha().raw().toBuffer({ resolveWithObject: true });
for (let i = 0; i < 3; i++) { t = performance.now(); await upscaleRaw(m, { data: new Uint8Array(data), width: 128, height: 128 }); console.log("run", i, Math.round(performance.now() - t)); }
const { data: d2 } = await sharp("../shared/fixtures/astronaut.png").resize(256, 256).removeAlpha().raw().toBuffer({ resolveWithObject: true });
for (let i = 0; i < 2; i++) { t = performance.now(); await upscaleRaw(m, { data: new Uint8Array(d2), width: 256, height: 256 }); console.log("run256", i, Math.round(performance.now() - t)); }
