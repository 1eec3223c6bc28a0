"""App fixtures (integration and user-flow tests): the app in-process on live PostgreSQL and Redis.

Every test starts from empty tables and an empty Redis database. A test that needs other
settings says so with a marker, and the app is built with them:

    @pytest.mark.settings(run_execution="queue")  # runs wait in the Redis queue; no worker runs

`other_api(settings, ...)` starts a second app (another API process) on the same database and
Redis; `subscribe` runs a subscription document through the schema of either.

The `any_db_*` fixtures run a test twice: on PostgreSQL (with Redis) and on a fresh SQLite
file (events in memory).

`live_client` sends requests over real HTTP to the app in a uvicorn process (one per test
module) on the same PostgreSQL and Redis; the `app` fixture still empties the tables before each
test, and `db` reads what the server wrote.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from fastapi import FastAPI
from pytest import FixtureRequest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker

from app import migrate
from app.main import create_app
from base.auth.principal import Principal
from base.db.base import Base
from base.settings import Settings
from resolvers.core.context import Context
from tests.support.graphql import GraphQLClient, operation, uuid_of
from tests.support.live_server import live_server
from tests.support.waiting import eventually

TEST_SECRET = "integration-tests-secret-0123456789abcdef"
LIVE_API_START_TIMEOUT = 120.0


def migrated(server_url: str) -> str:
    """The app's URL of the server's database, upgraded to the newest migration."""
    url = Settings(database_url=server_url).database_url
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def migrated_postgres(postgres_url: str) -> str:
    return migrated(postgres_url)


@pytest.fixture
def blob_root(tmp_path: Path) -> Path:
    """The test's own store of uploaded originals (empty at the start)."""
    root = tmp_path / "blobs"
    root.mkdir()
    return root


def blob_files(root: Path) -> list[str]:
    """Every file under a blob store, relative to it (temporary files included)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def settings(
    request: pytest.FixtureRequest,
    migrated_postgres: str,
    redis_url: str,
    ollama_host: str,
    blob_root: Path,
) -> Settings:
    """The throwaway services, inline runs, and the fields of the test's `settings` marker."""
    marker = request.node.get_closest_marker("settings")
    fields: dict[str, Any] = {
        "blob_root": str(blob_root),
        "app_env": "test",
        "database_url": migrated_postgres,
        "redis_url": redis_url,
        "jwt_secret": TEST_SECRET,
        "ollama_host": ollama_host,
        # Runs execute in this process, so a test can watch one to its end without a worker;
        # the events still go through the Redis bus. Worker execution is tested end to end.
        "run_execution": "inline",
    }
    return Settings(**{**fields, **(marker.kwargs if marker else {})})


def changed(settings: Settings, **changes: Any) -> Settings:
    """`settings` with some fields changed, validated like any other."""
    return Settings(**{**settings.model_dump(), **changes})


@asynccontextmanager
async def other_api(
    settings: Settings, *, address: str = "203.0.113.8", **changes: Any
) -> AsyncIterator[tuple[FastAPI, GraphQLClient]]:
    """Another API process on the same database and Redis, with some settings changed: the app
    (its lifespan run) and a client of it whose requests come from `address`."""
    other = create_app(changed(settings, **changes))
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=(address, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as http:
            yield other, GraphQLClient(http)


DEADLOCK_DETECTED = "40P01"  # PostgreSQL's SQLSTATE


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await _reset(application, settings)
        yield application


async def _reset(application: FastAPI, settings: Settings) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    # The app has started: its start-up work (the run sweeper, the upkeep jobs) may hold row
    # locks that the TRUNCATE's table locks cross, and PostgreSQL then picks one of the two as
    # a deadlock's victim. The TRUNCATE is tried again; the app's work finishes on its own.
    for attempt in range(1, 6):
        try:
            async with application.state.engine.begin() as connection:
                await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            break
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) != DEADLOCK_DETECTED or attempt == 5:
                raise
    client = redis.from_url(settings.redis_url)
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[GraphQLClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GraphQLClient(http)


@pytest.fixture(scope="module")
def live_api(migrated_postgres: str, redis_url: str, ollama_host: str) -> Iterator[str]:
    """Base URL of the real app in a uvicorn process on the tests' PostgreSQL and Redis, with
    the `settings` fixture's values (no marker applies to it)."""
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": migrated_postgres,
        "REDIS_URL": redis_url,
        "JWT_SECRET": TEST_SECRET,
        # Every client is 127.0.0.1 and a server outlives a test; the limit has its own test.
        "SIGN_UP_ATTEMPTS_PER_ADDRESS": "1000/hour",
        "OLLAMA_HOST": ollama_host,
        "RUN_EXECUTION": "inline",
        "LOG_LEVEL": "WARNING",
    }
    # Starting takes 2-3 s on an idle machine and 20 s or more when other suites load it.
    with live_server(env, start_timeout=LIVE_API_START_TIMEOUT) as base_url:
        yield base_url


@pytest.fixture
async def live_client(live_api: str, app: FastAPI) -> AsyncIterator[GraphQLClient]:
    """A client of `live_api` over real HTTP; `app` has emptied the tables first."""
    async with httpx.AsyncClient(base_url=live_api, timeout=60) as http:
        yield GraphQLClient(http)


@pytest.fixture
def db(app: FastAPI) -> async_sessionmaker[Any]:
    """A sessionmaker on the app's database, for asserting what was (not) written."""
    return app.state.deps.db


Subscribe = Callable[..., Awaitable[Any]]


@pytest.fixture
def subscribe(app: FastAPI) -> Subscribe:
    """Run a subscription through the real schema as a user.

    `subscribe("RunProgress", {"runId": ...}, user_global_id)` runs the document of
    `graphql/operations/RunProgress.graphql`; a document may also be given whole. It returns what
    `schema.subscribe` returns: an async iterator of results, or one result with the errors when
    the subscription is refused before it starts. `on=` runs it on another app.
    """

    async def _subscribe(
        document: str, variables: dict[str, Any], user_global_id: str, *, on: FastAPI | None = None
    ) -> Any:
        target = on or app
        query = operation(document) if document.isidentifier() else document
        deps = target.state.deps.for_principal(Principal(user_id=uuid_of(user_global_id)))
        context = Context(deps=deps, runner=target.state.runner)
        return await target.state.schema.subscribe(
            query, variable_values=variables, context_value=context
        )

    return _subscribe


async def until_listening(app: FastAPI, before: int) -> None:
    """Until more subscriptions listen on the app's event bus than the `before` counted earlier."""
    await eventually(
        lambda: app.state.deps.bus.subscriber_count > before,
        within=10,
        what="the subscription to listen on the event bus",
    )


async def queued_runs(settings: Settings) -> list[uuid.UUID]:
    """The run ids waiting in the run queue (the Redis stream `kd:runs`), oldest first."""
    client = redis.from_url(settings.redis_url or "")
    try:
        entries = await client.xrange("kd:runs")
    finally:
        await client.aclose()
    return [uuid.UUID(json.loads(fields[b"data"])["args"][0]) for _id, fields in entries]


def sqlite_settings(directory: Path, blob_root: Path, **fields: Any) -> Settings:
    """The embedded default on a new, migrated SQLite file in `directory`: inline runs, events
    in memory, and `fields`."""
    url = f"sqlite+aiosqlite:///{directory / 'kd.sqlite3'}"
    migrate.upgrade(url)
    return Settings(
        app_env="test",
        database_url=url,
        jwt_secret=TEST_SECRET,
        run_execution="inline",
        blob_root=str(blob_root),
        **fields,
    )


@pytest.fixture(params=["postgresql", "sqlite"])
def any_db_settings(request: FixtureRequest, tmp_path: Any, blob_root: Path) -> Settings:
    if request.param == "postgresql":
        settings: Settings = request.getfixturevalue("settings")
        return settings
    marker = request.node.get_closest_marker("settings")
    return sqlite_settings(tmp_path, blob_root, **(marker.kwargs if marker else {}))


@asynccontextmanager
async def started_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan run; a PostgreSQL database (shared by the tests) emptied
    first, a SQLite file (new for each test) as it is."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        if not settings.is_sqlite:
            await _reset(application, settings)
        yield application


@asynccontextmanager
async def client_of(application: FastAPI) -> AsyncIterator[GraphQLClient]:
    transport = httpx.ASGITransport(app=application, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GraphQLClient(http)


@pytest.fixture
async def any_db_app(any_db_settings: Settings) -> AsyncIterator[FastAPI]:
    async with started_app(any_db_settings) as application:
        yield application


@pytest.fixture
async def any_db_client(any_db_app: FastAPI) -> AsyncIterator[GraphQLClient]:
    async with client_of(any_db_app) as client:
        yield client
