# syntax=docker/dockerfile:1
# One image with both CLIs on PATH: pollen-agent (the entrypoint) and pollen-seed.
#   docker build -t pollen:0.1.0 .
#   docker run --rm pollen:0.1.0 --help
#   docker run --rm --entrypoint pollen-seed pollen:0.1.0 --help
# deploy/kubernetes runs it as the seed Deployment and the agent DaemonSet.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Dependencies first, so that this layer is reused while only the sources change.
# --ignore-scripts skips our own `prepare` (tsc, which needs the sources copied below). The one
# native addon, classic-level (LevelDB), is then set up alone: it ships prebuilt bindings for
# linux-x64 and linux-arm64 (glibc) in node_modules/classic-level/prebuilds, so no compiler is
# needed; its install script fails the build on a platform without one.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts && npm rebuild classic-level
COPY tsconfig.json tsconfig.build.json ./
COPY protocol protocol
COPY content content
COPY agent agent
COPY seed seed
RUN npm run build \
 && npm prune --omit=dev \
 && chmod 0755 dist/agent/main.js dist/seed/main.js

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and not writable by the runtime user: only the data directories are.
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist dist
# The package's "bin" entries. Node resolves the symlink, so the ESM imports stay relative to dist/.
# /app/pollen-data is the default --data parent (./pollen-data/…) for a plain `docker run`.
RUN ln -s /app/dist/agent/main.js /usr/local/bin/pollen-agent \
 && ln -s /app/dist/seed/main.js /usr/local/bin/pollen-seed \
 && mkdir -p /var/lib/pollen-agent /var/lib/pollen-seed /app/pollen-data \
 && chown 1000:1000 /var/lib/pollen-agent /var/lib/pollen-seed /app/pollen-data
# The image's `node` user, numeric so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# agent: mirror 5050, libp2p 5051, metrics 9465; seed: API 5000, libp2p 5001, metrics 9464
EXPOSE 5050 5051 9465 5000 5001 9464
ENTRYPOINT ["pollen-agent"]
CMD ["--help"]
