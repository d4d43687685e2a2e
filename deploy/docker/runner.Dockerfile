# syntax=docker/dockerfile:1
# Darkroom runner: serves one app (`--app`), connecting out to the gateway Service for work.
#   docker build -f deploy/docker/runner.Dockerfile -t REGISTRY/darkroom-runner:TAG .

# --- dependencies: a C++ toolchain in case better-sqlite3 has no prebuilt binary for this platform
FROM node:20.20.2-bookworm-slim AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# No CUDA download for onnxruntime-node, the built-in apps run on the CPU: this image's npm (10) does
# not read package.json's allowScripts, so the package's own switch says it.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json tsconfig.json ./
# `npm ci` runs `prepare`, which builds the Playground from web/ (vite is a runtime dependency) and
# compiles src/ once to dist/ (scripts/build-runtime.mjs): runners then start from JavaScript rather
# than through tsx (about 0.5 s less per runner start; dist/ is used only while its stamp matches src/).
COPY web ./web
COPY scripts/build-runtime.mjs ./scripts/
COPY src ./src
RUN npm ci --omit=dev && npm cache clean --force && test -f dist/build-stamp.json

# --- runtime
FROM node:20.20.2-bookworm-slim
# The programs the CPU apps shell out to: video (ffmpeg), speech synthesis (flite), recognition (pocketsphinx).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg flite pocketsphinx pocketsphinx-en-us ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 darkroom \
 && useradd --system --uid 10001 --gid darkroom --home-dir /var/lib/darkroom --create-home --shell /usr/sbin/nologin darkroom
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=deps /app/web/dist ./web/dist
COPY --from=deps /app/dist ./dist
COPY package.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
USER 10001:10001
# tini reaps the app's child processes (ffmpeg, flite) and forwards SIGTERM, on which the runner drains.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/darkroom.js"]
CMD ["runner", "--help"]
