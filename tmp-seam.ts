import sharp from "sharp";
import { loadUpscaleModel } from "./src/apps/upscale/model-loader.js";
import { upscaleRaw } from "./src/apps/upscale/tiled-upscale.js";
const { data, info } = await sharp("../shared/fixtures/astronaut.png").extract({ left: 180, top: 60, width: 96, height: 80 }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
const img = { data: new Uint8Array(data), width: info.width, height: info.height };
function psnr(a: Uint8Array, b: Uint8Array) { let se = 0, mx = 0; for (let i = 0; i < a.length; i++) { const d = a[i]! - b[i]!; se += d * d; mx = Math.max(mx, Math.abs(d)); } const mse = se / a.length; return [mse === 0 ? Infinity : 10 * Math.log10(255 * 255 / mse), mx]; }
for (const size of (process.argv[2] ?? "slim,medium,thick").split(",") as ("slim")[]) {
  const m = await loadUpscaleModel(size, 4);
  let t = performance.now();
  const ref = await upscaleRaw(m, img, { tileSize: 1000, overlap: 0 });
  console.log(size, "single", Math.round(performance.now() - t), "ms");
  for (const ov of (size === "thick" ? [8, 16, 32] : [0, 8, 10, 16, 18, 24, 32])) {
    t = performance.now();
    const r = await upscaleRaw(m, img, { tileSize: 32, overlap: ov });
    console.log(size, "ov", ov, psnr(ref.data, r.data), Math.round(performance.now() - t), "ms");
  }
}
