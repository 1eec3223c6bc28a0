"""Async engine and sessionmaker, built from Settings in the app lifespan (never at import)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from base.settings import Settings


def build_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        engine = create_async_engine(settings.database_url, connect_args={"timeout": 30})
        _tune_sqlite(engine)
        return engine
    return create_async_engine(
        settings.database_url, pool_size=20, max_overflow=20, pool_pre_ping=True
    )


def _tune_sqlite(engine: AsyncEngine) -> None:
    # WAL lets readers proceed during a write; foreign keys are off by default in SQLite.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


async def lock_for_write(session: AsyncSession) -> None:
    """Make the session's transaction a writer from its first statement.

    Check-then-write rules (the last OWNER, accepting an invite) must not interleave. On SQLite
    that means taking the write lock up front (BEGIN IMMEDIATE); on PostgreSQL the services
    lock the rows they check (SELECT ... FOR UPDATE, or a conditional UPDATE), so this is a
    no-op there.
    """
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        await session.execute(text("BEGIN IMMEDIATE"))


def build_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)
