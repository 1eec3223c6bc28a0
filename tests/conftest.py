"""Session-wide live services for the test suite.

Each service starts lazily the first time a test asks for it and stops at the end of the session:
PostgreSQL and Redis as throwaway servers on free loopback ports, the local model server behind
the Ollama API (or the real Ollama named by OLLAMA_HOST when one answers), and a slow link to it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import model_server as model_server_support
from tests.support import services as services_support
from tests.support import slow_link as slow_link_support

pytest_plugins = ["pytester", "tests.support.app_fixtures", "tests.support.process_split"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """postgresql://... URL of a throwaway PostgreSQL 15 server (or TEST_DATABASE_URL)."""
    with services_support.postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """postgresql://... URL of a throwaway PostgreSQL 18 server with pgvector (ADR 0114)."""
    with services_support.pgvector_postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """redis://... URL of a throwaway Redis 7 server (or TEST_REDIS_URL)."""
    with services_support.redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def ollama_host() -> Iterator[str]:
    """http://... base URL of a real model behind the Ollama API."""
    with model_server_support.model_server() as url:
        yield url


SLOW_TOKEN_SECONDS = 0.12


@pytest.fixture(scope="session")
def slow_ollama_host(ollama_host: str) -> Iterator[str]:
    """The model server behind a slow link that passes on one streamed token per 0.12 s, so a
    model check is still in its CHAT step seconds after it started (tests/support/slow_link.py)."""
    with slow_link_support.slow_link(ollama_host, SLOW_TOKEN_SECONDS) as link:
        yield link.url
