"""Migrations run up, down and up again on SQLite and PostgreSQL, with no drift from the models."""

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy import inspect
from sqlalchemy import text as sql_text
from sqlalchemy.ext.asyncio import create_async_engine

from app import migrate
from base.db.base import Base
from base.db.engine import build_sessionmaker
from base.models.accounts import User, Workspace
from base.models.documents import Chunk, Collection, Document, DocumentStatus
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


def test_postgres_reindexes_chunks_with_their_stop_words(fresh_postgres: str):
    """Migration 0011 indexes every chunk again under `english_with_stop_words` (ADR 0100), and
    its downgrade goes back to `english`."""
    migrate.upgrade(fresh_postgres, "0010")
    asyncio.run(_one_indexed_chunk(fresh_postgres, "with a statement, or not"))
    assert asyncio.run(_indexed_words(fresh_postgres)) == ["statement"]
    migrate.upgrade(fresh_postgres)
    assert asyncio.run(_indexed_words(fresh_postgres)) == ["a", "not", "or", "statement", "with"]
    migrate.downgrade(fresh_postgres, "0010")
    assert asyncio.run(_indexed_words(fresh_postgres)) == ["statement"]
    configurations = "SELECT count(*) FROM pg_ts_config WHERE cfgname = 'english_with_stop_words'"
    assert asyncio.run(_fetch(fresh_postgres, configurations)) == 0
    migrate.upgrade(fresh_postgres)


async def _fetch(url: str, sql: str) -> object:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


async def _indexed_words(url: str) -> object:
    return await _fetch(url, "SELECT tsvector_to_array(search_vector) FROM chunk_search")


async def _one_indexed_chunk(url: str, text: str) -> None:
    """A document with one chunk, indexed as revision 0010 did (the models' tables are the same
    at 0010 and at the head)."""
    engine = create_async_engine(url)
    user, workspace, collection, document, chunk = (uuid.uuid4() for _ in range(5))
    async with build_sessionmaker(engine).begin() as session:
        session.add(User(id=user, email="m@example.com", name="M", password_hash="x"))
        session.add(Workspace(id=workspace, name="W", created_by_id=user))
        await session.flush()
        session.add(Collection(id=collection, workspace_id=workspace, name="C"))
        await session.flush()
        session.add(
            Document(
                id=document,
                workspace_id=workspace,
                collection_id=collection,
                title="D",
                status=DocumentStatus.READY,
                content_type="text/plain",
                content_sha256="0" * 64,
            )
        )
        await session.flush()
        session.add(
            Chunk(
                id=chunk,
                document_id=document,
                workspace_id=workspace,
                position=0,
                text=text,
                heading_path=[],
                char_start=0,
                char_end=len(text),
                token_count=6,
            )
        )
        await session.flush()
        await session.execute(
            sql_text(
                "INSERT INTO chunk_search (chunk_id, document_id, workspace_id, search_vector) "
                "SELECT id, document_id, workspace_id, "
                "setweight(to_tsvector('english', text), 'B') FROM chunks"
            )
        )
    await engine.dispose()
