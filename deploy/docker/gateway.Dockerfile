# syntax=docker/dockerfile:1
# Darkroom gateway: the fal-compatible HTTP API, the queue (in PostgreSQL) and the runner API.
#   docker build -f deploy/docker/gateway.Dockerfile -t REGISTRY/darkroom-gateway:TAG .

# --- dependencies: a C++ toolchain in case better-sqlite3 has no prebuilt binary for this platform
FROM node:20.20.2-bookworm-slim AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# No CUDA download for onnxruntime-node: this image's npm (10) does not read package.json's
# allowScripts, so the package's own switch says it.
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
# The gateway imports every app module at start (in a probe process) to learn its schemas, and
# refuses requests for an app whose programs it does not find itself, though runners do the work.
# Until that check defers to the runners, it needs the same programs; build with
# --build-arg APP_PACKAGES= for a smaller image that serves only apps needing none.
ARG APP_PACKAGES="ffmpeg flite pocketsphinx pocketsphinx-en-us"
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl tini ${APP_PACKAGES} \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 darkroom \
 && useradd --system --uid 10001 --gid darkroom --home-dir /var/lib/darkroom --create-home --shell /usr/sbin/nologin darkroom
WORKDIR /app
ENV NODE_ENV=production \
    DARKROOM_HOST=0.0.0.0 \
    PORT=8787 \
    DARKROOM_DATA_DIR=/var/lib/darkroom
COPY --from=deps /app/node_modules ./node_modules
COPY --from=deps /app/web/dist ./web/dist
COPY --from=deps /app/dist ./dist
COPY package.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
USER 10001:10001
EXPOSE 8787
# Kubernetes uses its own probes (deploy/kubernetes/gateway.yaml); this serves `docker run`.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT}/health" || exit 1
ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/darkroom.js"]
CMD ["serve"]
