# syntax=docker/dockerfile:1
# The webhook registry image: one image for the API (`node dist/main.js`, the
# default), the projector (`node dist/cli/main.js project`) and the operator
# commands (`webhook-registry <command>`, e.g. `webhook-registry audit verify`).
# See docs/scaling-out.md for the distributed setup (docker-compose.yml).
# The build context is filtered by .dockerignore (no node_modules, data, .env).

# ---- build: compile TypeScript, then drop dev dependencies -------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 (the embedded engine) ships prebuilt binaries; the toolchain is
# the fallback when none matches this platform.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY console ./console
# tsconfig.build.json: src/ → dist/ (dist/main.js, dist/cli/main.js); then the
# web console into console/dist/ (served at /console/).
RUN npm run build \
  && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: compiled code, production dependencies, non-root ----------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/console/dist ./console/dist
# The event-type catalog is read at run time: dist/catalog.js loads
# ../catalog/event-types.json, i.e. /app/catalog/event-types.json.
COPY catalog ./catalog
# The package's command-line entry (runs dist/cli/main.js), on the PATH.
COPY --chmod=0755 bin ./bin
RUN ln -s /app/bin/webhook-registry.js /usr/local/bin/webhook-registry
# DATA_DIR: SQLite files (embedded engine) and development keys. Owned by the
# unprivileged `node` user (uid 1000) of the base image; a named volume mounted
# here inherits that ownership.
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 3000
VOLUME ["/data"]
CMD ["node", "dist/main.js"]
