# Knowledge Desk: the two set-up commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help
export PATH := $(HOME)/.local/bin:$(PATH)
export UV_LINK_MODE ?= copy
PY := uv run --frozen python
PYTEST_ARGS ?=
# Test processes, each with its own PostgreSQL, Redis and model server (ADR 0145).
TEST_WORKERS ?= 2

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: uv
uv: ## Install uv when missing
	@command -v uv >/dev/null || (python3 -m pip install --quiet --disable-pip-version-check uv==0.13.8)

.PHONY: deps
# llama-cpp-python compiles from source here. Its default, -march=native, crashed on a host whose
# CPU reports AMX and AVX-512 (ADR 0115): x86-64 builds target AVX2 instead, the same everywhere.
LLAMA_CMAKE_ARGS := $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)

deps: uv ## Create .venv from uv.lock (Python packages, the local model runtime and model files)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS) $$CMAKE_ARGS" uv sync --frozen

.PHONY: web
web: ## Install the pinned front-end packages (GraphiQL assets, graphql-ws client)
	@cd web && { [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error; }

.PHONY: models
models: deps ## Convert all-MiniLM-L6-v2 to GGUF for the local model server, once (cached in .venv)
	$(PY) -m model_server.embedding_model

.PHONY: system
system: ## Install PostgreSQL 15, Redis 7, Chromium, python3.11-doc, the test corpus's doc packages and the compose plugin when missing
	bash scripts/ensure-system-packages.sh

.PHONY: migrate
migrate: deps ## Upgrade the database at DATABASE_URL to the newest migration
	$(PY) -m app migrate

.PHONY: run
run: deps web models ## Serve the app at http://127.0.0.1:8000/graphql (GraphiQL) on the embedded default
	$(PY) -m app serve

.PHONY: worker
worker: deps ## Run a worker that executes queued runs (needs REDIS_URL)
	$(PY) -m app worker

.PHONY: model-server
model-server: deps models ## Serve the local models behind the Ollama API on 127.0.0.1:11434
	$(PY) -m model_server --host 127.0.0.1 --port 11434

.PHONY: test
test: system deps web models ## Install what is missing, lint, check imports and types, start PostgreSQL, Redis and the model server, run every test
	uv run --frozen ruff check . && uv run --frozen ruff format --check .
	uv run --frozen lint-imports
	uv run --frozen mypy
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: deps web ## Unit tests only (no services)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: schema
schema: deps ## Export the SDL to graphql/schema.graphql
	$(PY) -m app export-schema > graphql/schema.graphql.tmp && mv graphql/schema.graphql.tmp graphql/schema.graphql

.PHONY: lint
lint: deps ## ruff and the import contracts (import-linter)
	uv run --frozen ruff check . && uv run --frozen ruff format --check .
	uv run --frozen lint-imports

.PHONY: typecheck
typecheck: deps ## mypy --strict over the project's packages (config in pyproject.toml)
	uv run --frozen mypy

.PHONY: bench
bench: deps models ## Run the benchmarks (prints figures; see docs/testing.md)
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
