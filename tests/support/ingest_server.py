"""A real API process that ingests with the local model, for the user flows that upload
documents: its own PostgreSQL database, Redis database 9, blob store and runs in-process.

A test module that uses them binds them to its own names (`server = ingest_server.server`, and
so on for `flow_database`, `blobs` and `http`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_api_e2e import JWT_SECRET, _other_redis_db
from tests.support.databases import fresh_database
from tests.support.ingest import STAGES
from tests.support.live_server import live_server

STATUS_ORDER = {"QUEUED": 0, "PROCESSING": 1, "READY": 2, "FAILED": 2}


@pytest.fixture
def flow_database(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url, "flow_upload") as url:
        yield url


@pytest.fixture
def blobs(tmp_path: Path) -> Path:
    root = tmp_path / "blobs"
    root.mkdir()
    return root


@pytest.fixture
def server(flow_database: str, redis_url: str, ollama_host: str, blobs: Path) -> Iterator[str]:
    env = {
        "RUN_EXECUTION": "inline",
        "OLLAMA_HOST": ollama_host,
        "APP_ENV": "test",
        "DATABASE_URL": flow_database,
        "REDIS_URL": _other_redis_db(redis_url),
        "JWT_SECRET": JWT_SECRET,
        # Every client is 127.0.0.1 and a server outlives a test; the limit has its own test.
        "SIGN_UP_ATTEMPTS_PER_ADDRESS": "1000/hour",
        "BLOB_ROOT": str(blobs),
        # The local model on a shared 2-core machine can be slow to answer; a slow answer is
        # not what these flows are about (MODEL_UNAVAILABLE has its own tests).
        "LLM_TIMEOUT_SECONDS": "300",
        # Each execution of a run is bounded by this too (600 s by default).
        "WORKFLOW_EXECUTION_TIMEOUT_SECONDS": "3000",
        "LOG_LEVEL": "WARNING",
    }
    with live_server(env, start_timeout=120) as base_url:
        yield base_url


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=120) as client:
        yield client


def check_rows(rows: list[dict[str, Any]], document_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The UploadProgress subscription's rules: every document first, in the order asked; then
    per document status and percent only move forward, stages come in the pipeline's order, and
    exactly one row is final. Returns each document's final row."""
    assert [r["documentId"] for r in rows[: len(document_ids)]] == document_ids
    finals = {}
    for document_id in document_ids:
        mine = [r for r in rows if r["documentId"] == document_id]
        statuses = [STATUS_ORDER[r["status"]] for r in mine]
        assert statuses == sorted(statuses), mine
        percents = [r["percent"] for r in mine]
        assert percents == sorted(percents), mine
        stages = [STAGES.index(r["stage"]) for r in mine if r["stage"]]
        assert stages == sorted(stages), mine
        assert [r["done"] for r in mine].count(True) == 1 and mine[-1]["done"], mine
        finals[document_id] = mine[-1]
    return finals
