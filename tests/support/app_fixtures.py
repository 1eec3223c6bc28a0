"""App fixtures (integration and user-flow tests): the app in-process on live PostgreSQL and Redis.

Every test starts from empty tables and an empty Redis database. The `any_db_*` fixtures run a
test twice: on PostgreSQL (with Redis) and on a fresh SQLite file (events in memory).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from fastapi import FastAPI
from pytest import FixtureRequest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from app import migrate
from app.main import create_app
from base.db.base import Base
from base.settings import Settings
from tests.support.graphql import GraphQLClient

TEST_SECRET = "integration-tests-secret-0123456789abcdef"


@pytest.fixture(scope="session")
def migrated_postgres(postgres_url: str) -> str:
    url = Settings(database_url=postgres_url).database_url
    migrate.upgrade(url)
    return url


@pytest.fixture
def settings(migrated_postgres: str, redis_url: str, ollama_host: str) -> Settings:
    return Settings(
        app_env="test",
        database_url=migrated_postgres,
        redis_url=redis_url,
        jwt_secret=TEST_SECRET,
        ollama_host=ollama_host,
        # Runs execute in this process, so a test can watch one to its end without a worker;
        # the events still go through the Redis bus. Worker execution is tested end to end.
        run_execution="inline",
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await _reset(application, settings)
        yield application


async def _reset(application: FastAPI, settings: Settings) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with application.state.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    client = redis.from_url(settings.redis_url)
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[GraphQLClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GraphQLClient(http)


@pytest.fixture
def db(app: FastAPI) -> async_sessionmaker[Any]:
    """A sessionmaker on the app's database, for asserting what was (not) written."""
    return app.state.deps.db


@pytest.fixture(params=["postgresql", "sqlite"])
def any_db_settings(request: FixtureRequest, tmp_path: Any) -> Settings:
    if request.param == "postgresql":
        settings: Settings = request.getfixturevalue("settings")
        return settings
    url = f"sqlite+aiosqlite:///{tmp_path / 'kd.sqlite3'}"
    migrate.upgrade(url)
    return Settings(
        app_env="test", database_url=url, jwt_secret=TEST_SECRET, run_execution="inline"
    )


@pytest.fixture
async def any_db_app(any_db_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(any_db_settings)
    async with application.router.lifespan_context(application):
        if not any_db_settings.is_sqlite:  # the SQLite file is new; PostgreSQL is shared
            await _reset(application, any_db_settings)
        yield application


@pytest.fixture
async def any_db_client(any_db_app: FastAPI) -> AsyncIterator[GraphQLClient]:
    transport = httpx.ASGITransport(app=any_db_app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GraphQLClient(http)
