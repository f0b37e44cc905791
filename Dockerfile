# syntax=docker/dockerfile:1
# The Afterglow image: one image, every role. `docker run IMAGE <all|ingest|stream|live|inference|dashboard>`;
# configuration is environment-only (README.md, "Configuration"). deploy/docker-compose.yml and
# deploy/k8s/ run it.
#
#   docker build -t afterglow:local .
#   docker build --build-arg EMBEDDED_CHDB=0 -t afterglow:server .   # ~550 MB smaller; needs CLICKHOUSE_URL
#
# Stages: manifests (package.json files only, so the npm ci layers stay cached until a dependency
# changes) -> build (all deps, tsc) and prod-deps (runtime deps only) -> runtime (non-root).

# The Node the project pins (the `node` dev dependency in package.json): the same LTS line here.
ARG NODE_VERSION=24.21
# Debian, not Alpine: chDB, onnxruntime-node and sharp ship glibc binaries.
FROM node:${NODE_VERSION}-bookworm-slim AS base
WORKDIR /app
# Never download a CUDA execution provider at install (see DEVELOPERS.md).
ENV ONNXRUNTIME_NODE_INSTALL=skip \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false \
    NPM_CONFIG_UPDATE_NOTIFIER=false

FROM base AS manifests
COPY . /src
# Every workspace's package.json, wherever workspaces are added, with the lockfile and .npmrc.
RUN mkdir -p /manifests && cd /src \
 && find . -name node_modules -prune -o \( -name package.json -o -name package-lock.json -o -name .npmrc \) -type f -print \
    | xargs -r cp --parents -t /manifests

FROM base AS build
COPY --from=manifests /manifests/ ./
RUN --mount=type=cache,target=/root/.npm npm ci
COPY . .
# The roles only (the cli project references every workspace) and the dashboard bundle; tests
# and benches are not shipped.
RUN npx tsc -b cli/tsconfig.json \
 && npx vite build --config dashboard/vite.config.ts --logLevel warn \
 && find . -name node_modules -prune -exec rm -rf {} + \
 && find . -name '*.tsbuildinfo' -delete

FROM base AS prod-deps
COPY --from=manifests /manifests/ ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev
# The embedded ClickHouse (chDB, ~550 MB) is only loaded without CLICKHOUSE_URL; server
# deployments can leave it out.
ARG EMBEDDED_CHDB=1
RUN if [ "$EMBEDDED_CHDB" = "0" ]; then rm -rf node_modules/@chdb node_modules/chdb/node_modules/@chdb; fi

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
LABEL org.opencontainers.image.title="afterglow" \
      org.opencontainers.image.description="Live creative-performance intelligence: one image, every role"
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL=skip \
    HOST=0.0.0.0 \
    PORT=8080 \
    AFTERGLOW_DATA_DIR=/data
WORKDIR /app
# Sources with their compiled dist/ (and data files such as inference/models.manifest.json), then the
# runtime node_modules trees (with the workspace links) over them. Owned by root, read-only to the app.
COPY --from=build /app/ ./
COPY --from=prod-deps /app/ ./
RUN mkdir -p /data && chown node:node /data
# The image's unprivileged user (uid 1000); deploy/k8s runs it with a read-only root filesystem,
# /data and /tmp being the only writable places.
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains (intake stops, the sink flushes and commits); node is PID 1 and handles it.
ENTRYPOINT ["node", "cli/dist/main.js"]
CMD ["all"]
