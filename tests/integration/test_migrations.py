"""Migrations run up, down and up again on SQLite and PostgreSQL, with no drift from the models."""

import asyncio

import asyncpg
import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from app import migrate
from base.db.base import Base
from base.models.search import FULL_TEXT_TABLES


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names


def _round_trip(url: str) -> None:
    # The models' tables, and the full-text index the ORM does not describe (ADR 0050).
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    expected = {t.name for t in Base.metadata.sorted_tables} | FULL_TEXT_TABLES[dialect]
    migrate.upgrade(url)
    assert asyncio.run(_tables(url)) == expected | {"alembic_version"}
    migrate.check(url)  # raises when models and migrations differ
    migrate.downgrade(url, "base")
    assert asyncio.run(_tables(url)) == {"alembic_version"}
    migrate.upgrade(url)
    assert asyncio.run(_tables(url)) == expected | {"alembic_version"}


def test_sqlite_up_down_up_and_no_drift(tmp_path):
    _round_trip(f"sqlite+aiosqlite:///{tmp_path}/kd.sqlite3")


@pytest.fixture
def fresh_postgres(postgres_url: str):
    async def create() -> None:
        connection = await asyncpg.connect(postgres_url)
        await connection.execute("DROP DATABASE IF EXISTS migrations_check")
        await connection.execute("CREATE DATABASE migrations_check")
        await connection.close()

    asyncio.run(create())
    base, _, _ = postgres_url.rpartition("/")
    return f"{base}/migrations_check".replace("postgresql://", "postgresql+asyncpg://")


def test_postgres_up_down_up_and_no_drift(fresh_postgres: str):
    _round_trip(fresh_postgres)
    assert asyncio.run(_title_index(fresh_postgres)) == (
        "CREATE INDEX ix_documents_title_trgm ON public.documents USING gin "
        "(lower((title)::text) gin_trgm_ops)"
    )
    migrate.downgrade(fresh_postgres, "0006")
    assert asyncio.run(_title_index(fresh_postgres)) is None
    migrate.upgrade(fresh_postgres)


async def _title_index(url: str) -> str | None:
    """The definition of the titles' trigram index, which only a migration makes (ADR 0078)."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await connection.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_documents_title_trgm'"
        )
    finally:
        await connection.close()
