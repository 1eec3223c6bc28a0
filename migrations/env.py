"""Alembic environment: async engine, URL from Settings (or `config.attributes["url"]`)."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import base.models  # noqa: F401  (registers every table)
from base.db.base import Base
from base.db.types import PgVector
from base.models.documents import (
    DOCUMENT_PGVECTOR_INDEX_PREFIX,
    PGVECTOR_COLUMN,
    PGVECTOR_INDEX_PREFIX,
    PGVECTOR_TABLES,
    TITLE_TRIGRAM_INDEX,
)
from base.models.search import is_full_text_table
from base.settings import Settings

config = context.config
# pgvector's column (ADR 0114) is reflected when the models are compared, then left out below.
ischema_names.setdefault("vector", PgVector)
target_metadata = Base.metadata


def _url() -> str:
    return config.attributes.get("url") or Settings().database_url


def _include_name(name: str | None, type_: str, parents: Any) -> bool:
    """Leave the full-text index (ADR 0050), the titles' trigram index (ADR 0078) and pgvector's
    columns and indexes (ADRs 0114, 0116) out of the comparison: each is one database's own, and
    the ORM does not describe them."""
    if type_ == "index" and (
        name == TITLE_TRIGRAM_INDEX
        or (name or "").startswith((PGVECTOR_INDEX_PREFIX, DOCUMENT_PGVECTOR_INDEX_PREFIX))
    ):
        return False
    if type_ == "column" and name == PGVECTOR_COLUMN and parents["table_name"] in PGVECTOR_TABLES:
        return False
    return not (type_ == "table" and is_full_text_table(name))


def _configure(connection: Connection | None = None) -> None:
    url = _url()
    context.configure(
        connection=connection,
        url=None if connection is not None else url,
        target_metadata=target_metadata,
        render_as_batch=url.startswith("sqlite"),  # SQLite needs table rebuilds for ALTERs
        compare_type=True,
        include_name=_include_name,
    )


def run_migrations_offline() -> None:
    _configure()
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
