# One image for the api, worker and migrate services of docker-compose.yml.

# The pinned GraphiQL assets (web/package-lock.json): the app serves them itself, offline.
FROM node:20-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH
# The same uv as the Makefile installs.
RUN pip install --no-cache-dir uv==0.13.8 \
    && useradd --system --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app

# Dependencies first, so code changes don't reinstall them. No default groups: the dev tools
# and the local model runtime stay out of the production image.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-default-groups --no-cache

# Only what runs in production (tests, benches, docs and the dev model server stay out).
COPY app ./app
COPY resolvers ./resolvers
COPY workflows ./workflows
COPY runtime ./runtime
COPY nodes ./nodes
COPY services ./services
COPY base ./base
COPY migrations ./migrations
COPY graphql ./graphql
COPY --from=web /web/node_modules ./web/node_modules
COPY web/package.json web/package-lock.json ./web/

# The blob store's mount point, owned by the app user: a fresh named volume takes the owner of
# the directory it is mounted on, so uploads can be written to it.
RUN mkdir -p /var/lib/knowledge-desk/blobs && chown -R app /var/lib/knowledge-desk
USER app
EXPOSE 8000
CMD ["uvicorn", "--factory", "app.main:create_app", "--host", "0.0.0.0", "--port", "8000", "--ws-per-message-deflate", "false"]
