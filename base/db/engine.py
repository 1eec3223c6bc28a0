"""Async engine and sessionmaker, built from Settings in the app lifespan (never at import)."""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import CompoundSelect, Engine, Executable, Result, Select, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from base import compact_json
from base.db.types import register_sqlite_functions
from base.settings import Settings


def build_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        engine = create_async_engine(
            settings.database_url,
            connect_args={"timeout": 30},
            json_deserializer=compact_json.loads,
        )
        _tune_sqlite(engine)
        return engine
    return create_async_engine(
        settings.database_url,
        json_deserializer=compact_json.loads,
        pool_size=20,
        max_overflow=20,
        pool_pre_ping=True,
        connect_args=postgres_connect_args(settings),
    )


def postgres_connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's arguments for each connection. Directly to PostgreSQL: pgvector's search
    settings as startup parameters, and each connection's statements prepared once and kept.
    Through PgBouncer in transaction mode (ADR 0118) consecutive transactions of one connection
    may reach different server connections, which other clients share: a statement is prepared
    in the transaction that runs it, under a name no other connection uses, and kept by
    nobody; the pooler refuses unknown startup parameters, so pgvector's settings come from the
    database's own (`ALTER DATABASE ... SET`, docs/operations.md)."""
    if settings.database_pooler == "pgbouncer":
        return {
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": _unique_statement_name,
        }
    return {"server_settings": hnsw_search_settings(settings)}


def _unique_statement_name() -> str:
    return f"__kd_{uuid.uuid4().hex}__"


def hnsw_search_settings(settings: Settings) -> dict[str, str]:
    """pgvector's search settings for each connection (ADR 0114): how many candidates the HNSW
    index keeps, and to go on searching past them when other workspaces' rows crowd out the
    searched one's (the rows come back roughly in order; the search orders them). A server
    without pgvector keeps them as unused placeholders."""
    return {
        "hnsw.ef_search": str(settings.search_hnsw_ef_search),
        "hnsw.iterative_scan": "relaxed_order",
    }


# Per SQLite engine, how many times `analyse_sqlite` has run. A connection loads the planner's
# statistics when it opens and keeps them; one opened before the last ANALYZE reloads them
# (`ANALYZE sqlite_schema`) when it is next checked out.
_analyses: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()


def _tune_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    # WAL lets readers proceed during a write; foreign keys are off by default in SQLite.
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        register_sqlite_functions(dbapi_connection)
        record.info["analyses"] = _analyses.get(sync_engine, 0)

    @event.listens_for(sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        analyses = _analyses.get(sync_engine, 0)
        if record.info.get("analyses") != analyses:
            cursor = dbapi_connection.cursor()
            cursor.execute("ANALYZE sqlite_schema")
            cursor.close()
            record.info["analyses"] = analyses


async def analyse_sqlite(engine: AsyncEngine) -> None:
    """Refresh SQLite's planner statistics (ADR 0082); every connection of the engine plans with
    them from its next checkout."""
    async with engine.connect() as connection:
        await connection.execute(text("ANALYZE"))
        await connection.commit()
    _analyses[engine.sync_engine] = _analyses.get(engine.sync_engine, 0) + 1


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


async def take_turn(session: AsyncSession, key: str) -> bool:
    """For work that one process at a time should do (pruning, queueing re-embeddings): take
    the transaction-scoped advisory lock named `key` on PostgreSQL without waiting, or the write
    lock on SQLite (one writer at a time anyway). False when another process has the turn."""
    if session.get_bind().dialect.name != "postgresql":
        await lock_for_write(session)
        return True
    taken = await session.scalar(
        text("SELECT pg_try_advisory_xact_lock(hashtext(:key))"), {"key": key}
    )
    return bool(taken)


def build_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


# Kept while its statement lives: a strong cache would keep the statements built per call
# (search builds some) alive, and the collector's full passes over them cost pauses of 100 ms
# and more at concurrency 8 (ADR 0135).
_COLUMNS_ONLY: weakref.WeakKeyDictionary[object, bool] = weakref.WeakKeyDictionary()


def _selects_columns_only(statement: object) -> bool:
    """Whether `statement` is a SELECT (or a UNION of them) of columns, no mapped objects: its
    rows are the same whether the ORM or the connection runs it. Statements are mostly built
    once (ADR 0078), so the answer is kept for each."""
    known = _COLUMNS_ONLY.get(statement)
    if known is None:
        if isinstance(statement, CompoundSelect):
            known = all(_selects_columns_only(s) for s in statement.selects)
        elif isinstance(statement, Select):
            known = all(isinstance(d["type"], TypeEngine) for d in statement.column_descriptions)
        else:
            known = False
        _COLUMNS_ONLY[statement] = known
    return known


class ReadSession(Session):
    """The session of reads (`build_read_sessionmaker`): a statement that selects columns only
    runs on the session's connection, not through the ORM's execution.

    The ORM's execution of such a statement (autoflush, load options, its own row loading) gives
    the same rows and costs about 0.05 ms of CPU a read (ADR 0135; `bench/bench_id_lists.py`:
    0.211 against 0.159 ms for a row, 0.300 against 0.221 for 25). A read session holds no
    pending objects, so nothing is skipped that a read would see. Statements that load mapped
    objects, and any call with options, keep the ORM's path."""

    def execute(  # the ORM's overloads, one path added
        self,
        statement: Executable,
        params: Any = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
        bind_arguments: Any = None,
        **kw: Any,
    ) -> Result[Any]:
        options = dict(execution_options or {})
        # The async session asks every statement for rows fetched whole; a connection's are
        # (no server-side cursor here), so that option alone still takes the short path.
        options.pop("prebuffer_rows", None)
        plain = not options and bind_arguments is None and not kw
        if plain and _selects_columns_only(statement):
            return self.connection().execute(statement, params)
        return super().execute(
            statement,
            params,
            execution_options=execution_options or {},
            bind_arguments=bind_arguments,
            **kw,
        )


def build_read_sessionmaker(engine: AsyncEngine, settings: Settings) -> async_sessionmaker[Any]:
    """Sessions for reads only (`ReadSession`): each statement runs on its own, with no BEGIN
    and no ROLLBACK.

    PostgreSQL's READ COMMITTED takes a new snapshot per statement anyway, so a transaction
    around reads buys nothing there and costs two round trips (ADR 0076). Behind PgBouncer in
    transaction mode it is what keeps a statement's preparation and its execution on one server
    connection, so there the reads keep their transaction (ADR 0118).

    SQLite's driver begins no transaction before a SELECT, so its reads already run one
    statement at a time on the plain engine. There AUTOCOMMIT would only add an await in the
    driver's thread to each checkout, inside SQLAlchemy's `Connection` constructor: a read
    cancelled at that await left its checked-out connection to the garbage collector (ADR 0076's
    second amendment).
    """
    if settings.database_pooler == "pgbouncer" or engine.dialect.name == "sqlite":
        return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=ReadSession)
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"),
        expire_on_commit=False,
        sync_session_class=ReadSession,
    )


class RequestReads:
    """The one read session of one HTTP request, used in turns by all its reads.

    A screen's query loads through several dataloaders at once; each used to open its own
    session (a pool checkout, a ping, BEGIN, ROLLBACK around each statement). Here they take
    turns on one session whose connection is held until the request ends (`close`). Nested use
    by the task that holds it reuses it. Each use starts with an empty identity map, as a new
    session would, so an object read before a mutation's write is never served stale after it.
    """

    def __init__(self, sessionmaker: async_sessionmaker[Any]) -> None:
        self._sessionmaker = sessionmaker
        self._session: AsyncSession | None = None
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None
        self._closed = False

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        task = asyncio.current_task()
        if self._holder is not None and self._holder is task:
            assert self._session is not None
            yield self._session
            return
        async with self._lock:
            if self._closed:
                # A read still running when its request ended (a field loading beside one whose
                # error ended the operation) gets a session of its own, closed after it: a
                # shared one made now would never be closed, nor its connection returned.
                async with self._sessionmaker() as own:
                    yield own
                return
            self._holder = task
            if self._session is None:
                self._session = self._sessionmaker()
            try:
                yield self._session
            except (SQLAlchemyError, asyncio.CancelledError):
                # A failed or interrupted statement may have broken the connection: the next
                # use starts over.
                await self._discard()
                raise
            finally:
                self._holder = None
                if self._session is not None:
                    self._session.expunge_all()

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            await self._discard()

    async def _discard(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
