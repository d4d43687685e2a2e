// Builds the playground into web/dist, which the server serves at `/` (src/gateway/routes/playground.ts).
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const root = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig({
  root,
  base: "/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Served with a strict CSP: no inlined modules or data: scripts.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
    sourcemap: true,
  },
  server: {
    // `npx vite --config web/vite.config.ts` during development: the API is the real server's.
    proxy: Object.fromEntries(["/v1", "/queue", "/rest", "/files", "/run", "/api"].map((p) => [p, { target: process.env["DARKROOM_URL"] ?? "http://127.0.0.1:8787", changeOrigin: false }])),
  },
});
